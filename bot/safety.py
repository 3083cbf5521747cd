"""Crisis detection in client messages: suicidal ideation, plans and methods, self-harm, harm to
others, indirect ideation.

Matching is on Japanese morphology (MeCab lemmas and word sequences, so 死にたい・死にたくて・
死にたかった・死にてえ are one rule), on kana for all-hiragana or katakana writing, and on English
and romaji, after normalization (NFKC, spaces and emoji removed). The rules are data:
bot/crisis_lexicon.yaml, one entry per line with its category, for clinical review.
Detection errs toward answering: a false alarm costs one caring message, a miss costs far more.
Resources come from crisis_resources.json, which carries its last-checked date.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from kokoro.lexicon import Lexicon, normalize, variants

RESOURCES = Path(__file__).with_name("crisis_resources.json")
LEXICON = Path(__file__).with_name("crisis_lexicon.yaml")
MAX_CHECKED_CHARS = 4000  # a LINE text is at most 5,000 characters; longer input is checked in pieces


@lru_cache(maxsize=1)
def lexicon() -> Lexicon:
    return Lexicon(LEXICON)


def detect(text: str) -> list[str]:
    """The crisis categories ``text`` matches (empty = none), in lexicon order."""
    if not text or not text.strip():
        return []
    lex = lexicon()
    found: list[str] = []
    for i in range(0, len(text), MAX_CHECKED_CHARS):
        piece = text[max(0, i - 40) : i + MAX_CHECKED_CHARS]  # overlap: a phrase cut at a boundary still counts
        t = lex.substitute(normalize(piece))
        if not t:
            continue
        for e in lex.hits(t, variants(t)):
            if e.category not in found:
                found.append(e.category)
    return found


LEARNED = "learned"  # the category of a message only the learned layer flagged (its rung is not named)


def _probability(text: str, cats: list[str]) -> float:
    """The learned layer's calibrated probability (it reads the lexicon's decisions too)."""
    from .crisis_model import model

    if not text or not text.strip():
        return 0.0
    return model().probability(text[-MAX_CHECKED_CHARS:], cats)


def assess(text: str) -> tuple[list[str], float]:
    """Both layers: the lexicon's categories and the learned layer's calibrated probability."""
    cats = detect(text)
    return cats, _probability(text, cats)


def crisis_categories(text: str, joined: bool = False) -> list[str]:
    """What the bot acts on: the lexicon's categories, or ``[LEARNED]`` when only the learned layer
    is over its threshold (bot/crisis_model.THRESHOLD; JOINED_THRESHOLD for messages read together);
    empty when neither fires. A lexicon hit decides alone, so it never waits for the model (which
    trains for seconds when a process starts)."""
    from .crisis_model import JOINED_THRESHOLD, THRESHOLD

    cats = detect(text)
    return cats or ([LEARNED] if _probability(text, cats) >= (JOINED_THRESHOLD if joined else THRESHOLD) else [])


RECENT_MESSAGES = 3  # how many earlier messages of the client a new one is read with


def read_message(text: str, earlier: Callable[[], list[str]]) -> tuple[list[str], int]:
    """(what the bot acts on, how many messages it read): ``text`` alone first, then with the
    client's recent messages, ``earlier()``, fetched only then (``read_together``)."""
    cats = crisis_categories(text)
    if cats:
        return cats, 1
    recent = earlier()[-RECENT_MESSAGES:]
    return read_together(recent, text), len(recent) + 1


def read_together(earlier: list[str], text: str) -> list[str]:
    """A plan or a farewell split over messages: the client's recent messages (at most
    RECENT_MESSAGES, after the last crisis answer) and the new one, read as one utterance."""
    earlier = earlier[-RECENT_MESSAGES:]
    return crisis_categories("、".join(earlier + [text]), joined=True) if earlier else []


def is_crisis(text: str) -> bool:
    return bool(crisis_categories(text))


@lru_cache(maxsize=1)
def resources() -> dict:
    return json.loads(RESOURCES.read_text(encoding="utf-8"))


def resource_lines() -> str:
    return "\n".join(
        f"・{r['name']}：{r['contact']}" + (f"（{r['note']}）" if r["note"] else "") for r in resources()["resources"]
    )


def crisis_message(categories: list[str] | None = None) -> str:
    """The crisis protocol, one message: acknowledge, ask about immediate safety, give the
    resources, invite them to keep talking. It replaces the model's reply for that turn."""
    others = bool(categories) and set(categories) <= {"harm_others"}
    ack = (
        "とても強い気持ちを打ち明けてくださって、ありがとうございます。それほど追い詰められているのですね。"
        if others
        else "とてもつらい気持ちを打ち明けてくださって、ありがとうございます。ここまでひとりで抱えてこられたのですね。"
    )
    safety = (
        "まず教えてください。今、あなたやまわりの人の身に危険が迫っていますか？"
        if others
        else "まず教えてください。今、あなたは安全な場所にいますか？ 自分を傷つける方法が手の届くところにありますか？"
    )
    return (
        f"{ack}\n{safety}\n"
        "今すぐ危険を感じるときは、ためらわずに 119（救急）か 110（警察）に電話してください。"
        "ひとりで抱えずに、次の窓口にも今すぐ相談できます。\n"
        + resource_lines()
        + "\n\nわたしはこのままここでお話を聞きます。よければ、今の気持ちや状況を聞かせてください。"
    )
