"""The next counselor turn, one rule for every caller (the bot, its console drafts, `evaluation
responses`): which history the prompt holds, how a rendered prompt becomes tokens, and how a draft
is kept to what the client said. Backend-agnostic: a caller passes its token counter and a
``generate(avoid, openers)`` function, so a llama.cpp model, a server or a test double get the same turn.

- ``window``: the latest turns that fit the budget, never starting before the session's current
  window (so llama.cpp reuses the cached prefix); when the window has to move, it is cut to
  ``WINDOW_SLACK`` of the budget so the next turns fit without moving it again; one message too
  long for any window is answered from its end.
- ``prompt_tokens``: a rendered prompt already holds BOS where the chat template writes it, so it
  is tokenized without adding one (a second BOS shifts every logit of a model trained with one).
- ``next_turn``: the draft is asked to avoid what the counselor already said and the questions the
  client already answered, and not to open as the session's worn openers do (``worn_openers``:
  no opener above ``OPENER_SHARE`` of the counselor's turns; a one-token opener such as 「ええ」,
  which the logits leave free, is cut from the reply when enough remains), then shaped by kokoro.memory (a
  told fact asked again, an invented person, the session declared over: cut; the client's words
  about the conversation: answered); a question the session already asked in other words is cut,
  and a reply that was only that question becomes a line without pressure (``GENTLE``). A draft
  written wholly in brackets (a stage direction) is read as plain words (``unbracket``); a reply
  left with nothing (``LISTEN``) or with a fragment (「）」) becomes a line the session has not said.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence

from .dataset import Turn, merge_turns
from .prompts import COUNSELOR_SYSTEM, ContextTooShort, counselor_prompt

WINDOW_SLACK = 0.6  # after a cut, keep this share of the budget so the next turns reuse the prefix
OPENER_SHARE = 0.3  # no opener above this share of a session's counselor turns (issue 32: ≤ 35 %)
MIN_REST = 6  # characters a reply must keep after a worn opener is cut from it


def prompt_tokens(llm, prompt: str) -> list[int]:
    """The tokens of a rendered prompt: no BOS added (the template wrote it), special tokens parsed."""
    return llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)


def token_counter(llm) -> Callable[[str], int]:
    """How many tokens a piece of rendered prompt takes, counted as ``prompt_tokens`` counts it."""
    return lambda text: len(prompt_tokens(llm, text))


def window(
    fmt,
    history: Sequence[Turn],
    *,
    budget: int,
    start: int,
    count_tokens: Callable[[str], int],
    max_turns: int = 0,
    system: str | None = None,
) -> tuple[str, int]:
    """(the counselor prompt, the first merged turn it holds) for ``history`` within ``budget``
    tokens, starting no earlier than ``start`` (the session's current window)."""
    kw = dict(system=system or COUNSELOR_SYSTEM, count_tokens=count_tokens, max_turns=max_turns)
    try:
        prompt, first = counselor_prompt(fmt, history, max_tokens=budget, min_start=start, **kw)
        if first != start:  # the window moved: leave slack for the next turns
            prompt, first = counselor_prompt(fmt, history, max_tokens=int(budget * WINDOW_SLACK), min_start=first, **kw)
        return prompt, first
    except ContextTooShort:  # one huge message: answer its end
        merged = merge_turns(list(history))
        last = merged[-1]
        tail = [Turn(last.role, last.time, last.text[-max(16, budget // 4) :])]
        return counselor_prompt(fmt, tail, max_tokens=budget, **kw)[0], len(merged) - 1


def worn_openers(said: Sequence[str], share: float = OPENER_SHARE) -> list[str]:
    """The openers (kokoro.session_audit.opener) of the session's counselor turns that one more use
    would lift above ``share`` of them: the next reply should open otherwise."""
    from .session_audit import opener

    counts = Counter(o for o in map(opener, said) if o)
    return sorted(o for o, c in counts.items() if (c + 1) / (len(said) + 1) > share)


def next_turn(
    generate: Callable[[list[str], list[str]], str], turns: Sequence[tuple[str, str]]
) -> tuple[str, list[str]]:
    """(the counselor's next turn, the names of the rules that shaped it). ``turns``: the whole
    session so far as (role, text), not only the window; ``generate(avoid, openers)`` drafts a
    reply that avoids the given texts (the repetition control's second try) and does not open
    with the given openers (where the backend can steer its logits)."""
    from .conversation import near_duplicate, questions, re_asks, sentences, without
    from .memory import GENTLE, LISTEN, facts, known_questions, shape
    from .session_audit import after_opener, backchannel, opener

    said = [text for role, text in turns if role == "counselor"]
    client = [text for role, text in turns if role == "client"]
    known = facts(client)
    worn = worn_openers(said)
    draft = generate(said + known_questions(known), worn)
    if not draft:
        return draft, []
    canned = lambda lines: next((g for g in lines if not near_duplicate(g, said)), lines[-1])  # not said yet
    plain = unbracket(draft)
    o, rest = opener(plain), after_opener(plain)
    worn_kept = o in worn and backchannel(o) and len(rest) >= MIN_REST  # a worn one the logits kept
    text, applied = shape(rest if worn_kept else plain, known, client)
    applied = [*applied, "opener"] if worn_kept else applied
    applied = [*applied, "brackets"] if plain != draft else applied
    if re_asks(text, said):  # a question the session already asked, in other words: circling
        circling = [s for s in sentences(text) if questions(s) and re_asks(s, said)]
        text = without(text, circling) or canned(GENTLE)
        applied = [*applied, "circling"]
    broken = [s for s in sentences(text) if _BROKEN.search(s)]  # 「今日、。」: a sentence that stopped
    if broken:
        text, applied = without(text, broken), [*applied, "fragment"]
    if text == LISTEN or len(_WORD.findall(text)) < MIN_WORDS:  # nothing of the draft could stay, or a fragment
        applied = applied if text == LISTEN or "fragment" in applied else [*applied, "fragment"]
        text = canned((LISTEN, *GENTLE))  # one the session has not said yet
    return text, applied


_WRAPPED = re.compile(r"[（(]([^（()）]*)[）)]?")
_WORD = re.compile(r"\w")
_BROKEN = re.compile(r"[、,][）)」』]*([。．.！!？?]|$)")  # a comma right before the sentence's end: it stopped
MIN_WORDS = 2  # word characters a reply needs: 「）」 or 「（。）」 left by the model or a cut is no reply


def unbracket(draft: str) -> str:
    """A draft written wholly in brackets, as a stage direction (「（お話ししてくださって、ありがとう
    ございます。）」, which the 270M demo writes in about 5 % of replayed replies), as plain words; so
    each line of it, and a bracket left without its pair (「ありがとうございます。）」) is dropped, and a
    line of punctuation alone (「。）」). Before 2026-12-07 「。）\n（本日は、）」 reached a client."""
    lines = []
    for line in draft.split("\n"):
        m = _WRAPPED.fullmatch(line.strip())
        line = _unpaired(m.group(1).strip() if m else line)
        if _WORD.search(line):
            lines.append(line)
    return "\n".join(lines)


def _unpaired(line: str) -> str:
    """``line`` without the round brackets that have no pair in it."""
    opened, stray = [], set()
    for i, ch in enumerate(line):
        if ch in "（(":
            opened.append(i)
        elif ch in "）)":
            if opened:
                opened.pop()
            else:
                stray.add(i)
    stray |= set(opened)
    return "".join(ch for i, ch in enumerate(line) if i not in stray)
