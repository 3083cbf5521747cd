"""Crisis detection in client messages: suicidal intent, self-harm, danger to others.

Text is normalized first (NFKC, katakana → hiragana, spaces/symbols/emoji removed) so variants
like 「死 に た い」, 「シニタイ」, 「しにたい…😢」 match the same patterns. Detection errs toward
answering: a false alarm costs one caring message, a miss costs far more. Resources come from
crisis_resources.json, which carries its last-checked date.
"""
from __future__ import annotations

import json
import re
import unicodedata
from functools import lru_cache
from pathlib import Path

RESOURCES = Path(__file__).with_name("crisis_resources.json")

# written in normalized form: hiragana, no spaces or symbols
PATTERNS = [
    r"(死|し)(に|ん)たい", r"(死|し)んでしまいたい", r"(死|し)のうと(思|おも)", r"(死|し)(ぬ|ねる)(方法|ほうほう)",
    r"(消|き)えてしまいたい", r"(消|き)えたい", r"(生|い)きてい?たくない", r"(生|い)きるのが(つら|辛)くて(もう|限界)",
    r"(自殺|じさつ|自死|じし(?!ん))", r"(首|くび)を?(吊|つ)", r"(飛|と)び(降|お)り", r"(線路|せんろ)に(飛|と)び",
    r"りすか|りすとかっと|(手首|てくび)を?(切|き)", r"(自傷|じしょう)", r"(過量服薬|odし|odする|くすりをたくさんのん)",
    r"(殺|ころ)したい", r"(殺|ころ)してやる", r"(殺|ころ)そうと(思|おも)",
]
# idioms that contain the words without the intent
NOT_CRISIS = [r"(死|し)ぬほど(忙|いそが|おもしろ|面白|笑|わら|うれし|嬉|おいし|美味)", r"(死|し)ぬかと(思|おも)った"]
_rx = re.compile("|".join(PATTERNS))
_not = re.compile("|".join(NOT_CRISIS))


def normalize(text: str) -> str:
    t = unicodedata.normalize("NFKC", text).lower()
    t = "".join(chr(ord(c) - 0x60) if "ァ" <= c <= "ヶ" else c for c in t)  # katakana → hiragana
    return "".join(c for c in t if unicodedata.category(c)[0] in "LN")  # letters and numbers only


def is_crisis(text: str) -> bool:
    t = normalize(text)
    return bool(_rx.search(_not.sub("", t)))


@lru_cache(maxsize=1)
def resources() -> dict:
    return json.loads(RESOURCES.read_text(encoding="utf-8"))


def crisis_message() -> str:
    lines = [f"・{r['name']}：{r['contact']}" + (f"（{r['note']}）" if r["note"] else "") for r in resources()["resources"]]
    return ("とてもつらい気持ちを打ち明けてくださって、ありがとうございます。あなたの安全がいちばん大切です。\n"
            "今すぐ危険を感じるときは、ためらわずに 119 か 110 に電話してください。"
            "ひとりで抱えずに、次の窓口にも相談できます。\n" + "\n".join(lines) +
            "\n\nこの相談はこのまま続けられます。よければ、今の気持ちをもう少し聞かせてください。")


# ---------------------------------------------------------------- the bot's own words
# The platform's screening items (paper App. A.3): harmful remarks from ignorance or carelessness,
# statements that read as a diagnosis or medication advice, occult claims, sexual remarks.
DRAFT_RULES = {
    "harmful": [r"(普通|ふつう)じゃない", r"(異常|いじょう)(だ|です)", r"あなた(にも|が)(悪|わる)い", r"(責任|せきにん)は?あなた",
                r"(我慢|がまん)(が|し)(足|た)りない", r"(甘|あま)えて?(いる|る|だ|です)", r"もう(一人|ひとり)(産|う)め",
                r"(いじめ|虐待)(られる|される)(方|ほう)にも", r"(死|し)ね", r"(気|き)にしすぎ(だ|です)"],
    "medical": [r"(うつ|鬱|そう|統合失調|発達障害|adhd|パニック障害|適応障害|双極)(病|症)?(です|だと思います|でしょう)(ね|よ)?$",
                r"(診断|しんだん)(します|できます|すると)", r"(薬|くすり)(を|は)(やめ|止め|増や|減ら|飲ん|のん)",
                r"(服用|ふくよう)(して|を)", r"(睡眠薬|抗うつ薬|安定剤|ss?ri)を"],
    "occult": [r"(霊|れい)(が|の)(せい|仕業|しわざ|障り)", r"(呪|のろ)い", r"(前世|ぜんせ)の", r"(祟|たた)り", r"(除霊|お祓い|おはらい)"],
    "sexual": [r"(性的|せいてき)な", r"(体|からだ)の(関係|かんけい)", r"(下着|したぎ)", r"(裸|はだか)", r"(胸|むね)の(大き|サイズ)"],
}
_draft = {k: re.compile("|".join(v)) for k, v in DRAFT_RULES.items()}
SAFE_REPLY = "お話ししてくださってありがとうございます。よろしければ、そのときのお気持ちをもう少し聞かせていただけますか？"


def screen_draft(text: str) -> list[str]:
    """The screening items a draft reply would fail (empty = fine)."""
    t = unicodedata.normalize("NFKC", text).lower()
    return [k for k, rx in _draft.items() if rx.search(t)]
