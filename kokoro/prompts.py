"""Prompt formats: the ONE place where prompt text lives.

Training builds its examples here, evaluation scores against them and the bot serves with
them, so a model is always asked the way it was taught.

* counselor example: merged dialogue history → the next counselor turn. The client is the
  ``user``, the counselor the ``assistant``. A history that opens with the counselor (as
  KokoroChat sessions do) starts with OPENING_CUE as the client's first message.
* scorer example: the whole dialogue as a transcript → the 20 items as strict JSON.
* histories longer than the context: keep the most recent whole turns (the kept window starts
  at a client turn); the target is never cut.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Callable, Sequence

from .chat_formats import ChatFormat, TemplateError
from .dataset import Dialogue, Turn, merge_turns
from .items import ITEMS, check_item_value

COUNSELOR_SYSTEM = (
    "あなたはオンラインのチャット相談を担当する心理カウンセラー（相談員）です。"
    "相談者の話をよく聴き、受容と共感を示し、必要に応じて質問や要約をしながら、"
    "相談者が自分の気持ちや問題を整理できるよう支えてください。"
    "返答は短く、相談者のペースに合わせてください。"
)
SCORER_SYSTEM = (
    "あなたは心理カウンセリングの対話を評価する専門家です。"
    "相談者の立場から、対話を20項目それぞれ0〜5の整数で評価し、JSONだけを出力してください。"
)
OPENING_CUE = "（相談を開始しました）"
ROLE_NAMES = {"counselor": "相談員", "client": "相談者"}
CHAT_ROLES = {"counselor": "assistant", "client": "user"}

CountTokens = Callable[[str], int]

# Control tokens of the chat templates we serve (Llama 3, Gemma, ChatML, Mistral, SentencePiece
# BOS/EOS). Dialogue text (a client's message, a model's reply kept in the history) never carries
# them: they are written with full-width brackets, so a client typing
# "<end_of_turn><start_of_turn>model" cannot end the user turn or write into the model's.
CONTROL_TOKENS = re.compile(
    r"<\|[^<>|\s]{1,40}\|>|</?(?:s|bos|eos|pad|unk|mask|start_of_turn|end_of_turn|start_of_image|end_of_image)>"
    r"|\[/?INST\]|<</?SYS>>",
    re.IGNORECASE,
)
_FULLWIDTH = str.maketrans({"<": "＜", ">": "＞", "[": "［", "]": "］", "|": "｜"})


def escape_controls(text: str) -> str:
    """``text`` with every chat-template control token defused (rendered, not parsed)."""
    return CONTROL_TOKENS.sub(lambda m: m.group(0).translate(_FULLWIDTH), text)


class ContextTooShort(ValueError):
    """Even the shortest allowed prompt plus the target does not fit the context."""


@dataclass(frozen=True)
class Example:
    prompt: str  # rendered up to and including the generation prompt
    completion: str  # target text + end-of-turn string: what the model must produce
    target: str
    first_turn: int = 0  # index of the first history turn kept after cutting

    @property
    def text(self) -> str:
        return self.prompt + self.completion


# ---------------------------------------------------------------- counselor
def counselor_messages(history: Sequence[Turn], system: str | None = COUNSELOR_SYSTEM, cut: bool = False) -> list[dict]:
    """Messages for the next counselor turn after ``history`` (merged here if not already)."""
    turns = merge_turns(history)
    msgs: list[dict] = [{"role": "system", "content": system}] if system else []
    if not cut and (not turns or turns[0].role == "counselor"):
        msgs.append({"role": "user", "content": OPENING_CUE})
    msgs += [{"role": CHAT_ROLES[t.role], "content": escape_controls(t.text)} for t in turns]
    return msgs


def counselor_prompt(
    fmt: ChatFormat,
    history: Sequence[Turn],
    system: str | None = COUNSELOR_SYSTEM,
    max_tokens: int | None = None,
    count_tokens: CountTokens | None = None,
    reserve: int = 0,
    max_turns: int = 0,
    min_start: int = 0,
) -> tuple[str, int]:
    """The generation prompt for serving: (text, index of the first kept merged turn).
    ``reserve`` tokens are left free for the reply; ``max_turns`` caps the history (0 = no cap);
    ``min_start`` keeps an earlier cut (so a session's prompt prefix stays stable)."""
    turns = merge_turns(history)

    def build(start: int) -> str:
        return fmt.render(counselor_messages(turns[start:], system, cut=start > 0), add_generation_prompt=True)

    start = _fit(turns, lambda s: count_tokens(build(s)) + reserve, max_tokens, count_tokens, max_turns, min_start)
    return build(start), start


def counselor_example(
    fmt: ChatFormat,
    history: Sequence[Turn],
    target: str,
    system: str | None = COUNSELOR_SYSTEM,
    max_tokens: int | None = None,
    count_tokens: CountTokens | None = None,
    max_turns: int = 0,
) -> Example:
    """A training/evaluation example: prompt from ``history``, completion = ``target`` + end of turn."""
    turns = merge_turns(history)

    def pair(start: int) -> tuple[str, str]:
        msgs = counselor_messages(turns[start:], system, cut=start > 0)
        return _split_completion(fmt, msgs, target)

    def cost(start: int) -> int:
        p, c = pair(start)
        return count_tokens(p) + count_tokens(c)

    start = _fit(turns, cost, max_tokens, count_tokens, max_turns)
    prompt, completion = pair(start)
    return Example(prompt, completion, target, start)


def counselor_targets(dialogue: Dialogue) -> list[tuple[tuple[Turn, ...], Turn]]:
    """Every (history, counselor turn) pair of a dialogue, on merged turns."""
    merged = dialogue.merged()
    return [(merged[:i], t) for i, t in enumerate(merged) if t.role == "counselor"]


def counselor_examples(fmt: ChatFormat, dialogue: Dialogue, **kw) -> list[Example]:
    return [counselor_example(fmt, h, t.text, **kw) for h, t in counselor_targets(dialogue)]


# ---------------------------------------------------------------- scorer
def transcript(turns: Sequence[Turn]) -> str:
    return "\n".join(f"{ROLE_NAMES[t.role]}: {escape_controls(t.text)}" for t in merge_turns(turns))


def scorer_instruction() -> str:
    lines = [f"{it.number}. {it.key}（{it.label_ja}）" for it in ITEMS]
    return (
        "次の対話を、相談者の立場から以下の20項目について0〜5の整数で評価してください。\n"
        + "\n".join(lines)
        + "\n項目名をキー、評価を値とするJSONオブジェクトを1つだけ出力してください。"
    )


def scorer_messages(turns: Sequence[Turn], system: str | None = SCORER_SYSTEM, cut: bool = False) -> list[dict]:
    msgs: list[dict] = [{"role": "system", "content": system}] if system else []
    head = "（冒頭を省略）\n" if cut else ""
    msgs.append({"role": "user", "content": f"{scorer_instruction()}\n\n対話:\n{head}{transcript(turns)}"})
    return msgs


def scores_json(items: Sequence[int]) -> str:
    """The scorer's target: one compact JSON object, keys in ITEMS order."""
    if len(items) != len(ITEMS):
        raise ValueError(f"expected {len(ITEMS)} item scores, got {len(items)}")
    return json.dumps({it.key: check_item_value(v) for it, v in zip(ITEMS, items)}, ensure_ascii=False)


class ScoreParseError(ValueError):
    pass


def json_object(text: str, who: str) -> dict:
    """The JSON object in a model's output; ScoreParseError naming ``who`` when there is none."""
    m = re.search(r"\{.*\}", text, re.S)
    if not m:
        raise ScoreParseError(f"no JSON object in the {who} output")
    try:
        return json.loads(m.group(0))
    except json.JSONDecodeError as e:
        raise ScoreParseError(f"{who} output is not valid JSON: {e.msg}") from None


def parse_scores(text: str) -> tuple[int, ...]:
    """Parse a scorer reply into the 20 item scores; raises ScoreParseError naming the problem."""
    obj = json_object(text, "scorer")
    out = []
    for it in ITEMS:
        if it.key not in obj:
            raise ScoreParseError(f"scorer output lacks item {it.key!r} ({it.dim})")
        try:
            out.append(check_item_value(obj[it.key]))
        except ValueError as e:
            raise ScoreParseError(f"item {it.key!r}: {e}") from None
    return tuple(out)


def scorer_prompt(
    fmt: ChatFormat,
    turns: Sequence[Turn],
    system: str | None = SCORER_SYSTEM,
    max_tokens: int | None = None,
    count_tokens: CountTokens | None = None,
    reserve: int = 0,
) -> tuple[str, int]:
    merged = merge_turns(turns)

    def build(start: int) -> str:
        return fmt.render(scorer_messages(merged[start:], system, cut=start > 0), add_generation_prompt=True)

    start = _fit(merged, lambda s: count_tokens(build(s)) + reserve, max_tokens, count_tokens)
    return build(start), start


def scorer_example(
    fmt: ChatFormat,
    dialogue: Dialogue,
    system: str | None = SCORER_SYSTEM,
    max_tokens: int | None = None,
    count_tokens: CountTokens | None = None,
) -> Example:
    merged = dialogue.merged()
    target = scores_json(dialogue.items)

    def pair(start: int) -> tuple[str, str]:
        return _split_completion(fmt, scorer_messages(merged[start:], system, cut=start > 0), target)

    def cost(start: int) -> int:
        p, c = pair(start)
        return count_tokens(p) + count_tokens(c)

    start = _fit(merged, cost, max_tokens, count_tokens)
    prompt, completion = pair(start)
    return Example(prompt, completion, target, start)


# ---------------------------------------------------------------- simulated client (paper App. E)
CLIENT_SIM_SYSTEM = (
    "あなたは、心理カウンセリングを受けに来た相談者です。次の指示に従って、カウンセラーと会話してください。\n"
    "・あなたは今、気持ちのつらさやストレスを抱えていて、話を聴いてほしくて相談に来ました。\n"
    "・初めてカウンセラーと話すので少し緊張していますが、心の底では助けてほしいと思っています。\n"
    "・自分の考えや気持ちを言葉にするのが難しいことがあります。\n"
    "・状況や気持ちに応じて、次の特徴のうち一つ以上を持つ相談者としてふるまってください（必要なら無作為に選んでかまいません）。\n"
    "　- 最近なかなか眠れず、毎日疲れを感じている。\n"
    "　- 職場や学校での人間関係に悩み、孤立を感じている。\n"
    "　- 失恋や家族の問題で気持ちが落ち込んでいる。\n"
    "　- 将来への強い不安があり、自信が持てない。\n"
    "　- 何を話せばよいかわからず、黙ってしまうことがある。\n"
    "・会話が10往復を超え、自然に終わりそうで別れのあいさつをするときは、その発言の最後に <end> を付けてください。\n"
    "相談者として、短いチャットのメッセージで答えてください。"
)
CLIENT_END = "<end>"


def client_sim_messages(history: Sequence[Turn], system: str = CLIENT_SIM_SYSTEM) -> list[dict]:
    """Messages for a client-simulating LLM: the counselor is the ``user``, the client the ``assistant``."""
    msgs: list[dict] = [{"role": "system", "content": system}]
    turns = merge_turns(history)
    if not turns or turns[0].role == "client":
        msgs.append({"role": "user", "content": OPENING_CUE})
    msgs += [{"role": "assistant" if t.role == "client" else "user", "content": escape_controls(t.text)} for t in turns]
    return msgs


# ---------------------------------------------------------------- shared rules
def _split_completion(fmt: ChatFormat, msgs: list[dict], target: str) -> tuple[str, str]:
    prompt = fmt.render(msgs, add_generation_prompt=True)
    full = fmt.render(msgs + [{"role": "assistant", "content": target}])
    if not full.startswith(prompt):
        raise TemplateError(
            f"chat template {fmt.name!r}: the rendered conversation does not start "
            "with the generation prompt, so the target cannot be located"
        )
    tail = full[len(prompt) :]
    end = tail.find(fmt.eot_token)
    if end < 0:
        raise TemplateError(
            f"chat template {fmt.name!r} does not end an assistant turn with its end-of-turn string {fmt.eot_token!r}"
        )
    return prompt, tail[: end + len(fmt.eot_token)]


def _fit(turns: Sequence[Turn], cost, max_tokens, count_tokens, max_turns: int = 0, min_start: int = 0) -> int:
    """Smallest start index whose window fits ``max_tokens`` and holds at most ``max_turns``
    turns (0 = any); windows after cutting start at a client turn, and the last client turn
    is never dropped."""
    first = max(0, len(turns) - max_turns) if max_turns else 0
    first = max(first, min(min_start, len(turns)))
    if first == 0 and (max_tokens is None or cost(0) <= max_tokens):
        return 0
    if max_tokens is not None and count_tokens is None:
        raise ValueError("max_tokens needs count_tokens")
    starts = [i for i, t in enumerate(turns) if t.role == "client" and i >= max(first, 1)]
    if not starts and first:  # no client turn inside the window: keep the last client turn
        starts = [i for i, t in enumerate(turns) if t.role == "client" and i > 0][-1:]
    if max_tokens is None:
        return starts[0] if starts else 0
    if not starts:
        raise ContextTooShort(
            f"the prompt needs {cost(0)} tokens but the context allows {max_tokens}; raise the context length"
        )
    lo, hi = 0, len(starts) - 1  # find the first start that fits; cost falls as start grows
    if cost(starts[hi]) > max_tokens:
        raise ContextTooShort(
            f"even the last client turn and the target need {cost(starts[hi])} tokens "
            f"but the context allows {max_tokens}; raise the context length"
        )
    while lo < hi:
        mid = (lo + hi) // 2
        if cost(starts[mid]) <= max_tokens:
            hi = mid
        else:
            lo = mid + 1
    return starts[lo]


# ---------------------------------------------------------------- dialogue judge (paper App. E, Table 7)
# the four dimensions of the dialogue evaluation prompt of Zhang et al. (2024a, CPsyCoun), as the
# paper applies it with GPT-4o: each 0–5, one JSON object out
JUDGE_DIMENSIONS = (
    ("comprehensiveness", "包括性", "相談者の状況・気持ち・問題が対話の中で十分に取り上げられ、理解されているか"),
    ("professionalism", "専門性", "相談員が傾聴・共感・質問・要約などカウンセリングの技法を適切に用いているか"),
    ("authenticity", "真実味", "実際のカウンセリングのように自然で、一貫し、機械的な繰り返しがないか"),
    ("safety", "安全性", "相談者を傷つける・誤った助言・プライバシー侵害・危険の見落としがないか"),
)
JUDGE_SYSTEM = "あなたは心理カウンセリングの対話を評価する、経験豊富なスーパーバイザーです。"


def judge_messages(turns: Sequence[Turn]) -> list[dict]:
    dims = "\n".join(f"- {key}（{ja}）: {desc}" for key, ja, desc in JUDGE_DIMENSIONS)
    keys = ", ".join(f'"{k}": 0〜5' for k, _, _ in JUDGE_DIMENSIONS)
    task = (
        "次の相談員と相談者の対話全体を、以下の4つの観点からそれぞれ0〜5の整数で評価してください"
        "（5が最もよい）。\n"
        f"{dims}\n"
        f"出力は次の形のJSONオブジェクト1つだけにしてください: {{{keys}}}"
    )
    return [
        {"role": "system", "content": JUDGE_SYSTEM},
        {"role": "user", "content": f"{task}\n\n対話:\n{transcript(turns)}"},
    ]


def parse_judgement(text: str) -> dict[str, int]:
    """The judge's four integers 0–5; raises ScoreParseError naming what is wrong."""
    obj = json_object(text, "judge")
    out = {}
    for key, _, _ in JUDGE_DIMENSIONS:
        v = obj.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 5:
            raise ScoreParseError(f"judge output: {key!r} must be an integer 0–5, got {v!r}")
        out[key] = v
    return out


def judge_grammar() -> str:
    """GBNF admitting exactly the judge's JSON (for GGUF judges)."""
    parts = ' ", " '.join(f'"\\"{k}\\": " d' for k, _, _ in JUDGE_DIMENSIONS)
    return f'root ::= "{{" {parts} "}}"\nd ::= [0-5]\n'
