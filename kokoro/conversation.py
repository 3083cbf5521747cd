"""Session-level repetition: the one rule the bot, evaluation and the benchmark share.

A counselor reply *near-duplicates* an earlier counselor turn of the same session when their
character-3-gram sets have Jaccard similarity ≥ ``NEAR_DUP`` (0.6; measured on KokoroChat's merged
counselor turns, human counselors do this in ~4 % of turns). A reply *re-asks* when one of its
questions is mostly contained in a question asked earlier (overlap of 3-gram sets ≥ ``REASK`` of
the smaller one), e.g. 「年齢と性別を教えていただけますか？」 after the opening asked it.

``choose`` picks, among candidate replies, the first that does neither, else the least similar:
the generation backends call it with their candidates (``kokoro.prompts`` keeps the text, this
module keeps the judgement).
"""

from __future__ import annotations

import re
from typing import Callable, Iterable, Sequence

NEAR_DUP = 0.6
REASK = 0.7
SECOND_TEMPERATURE = 0.8  # a second try that repeats less is sampled: greedy decoding would write the first again
_SPLIT = re.compile(r"(?<=[。！？!?\n])")
_END_ASK = re.compile(r"(?:[？?]|か|かね|かな)$")
_REQUEST = re.compile(r"(?:教えて|聞かせて|お聞かせ)(?:いただけ|ください|くださ|もらえ|ほし|願)")


def grams(text: str, n: int = 3) -> frozenset[str]:
    t = re.sub(r"\s+", "", text)
    return frozenset(t[i : i + n] for i in range(len(t) - n + 1)) if len(t) >= n else frozenset({t} if t else ())


def jaccard(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def overlap(a: frozenset, b: frozenset) -> float:
    return len(a & b) / min(len(a), len(b)) if a and b else 0.0


def similarity(reply: str, earlier: Iterable[str]) -> float:
    """The highest char-3-gram Jaccard of ``reply`` against the earlier counselor turns."""
    g = grams(reply)
    return max((jaccard(g, grams(e)) for e in earlier), default=0.0)


def near_duplicate(reply: str, earlier: Iterable[str], threshold: float = NEAR_DUP) -> bool:
    return similarity(reply, earlier) >= threshold


def sentences(text: str) -> list[str]:
    """The non-empty sentences of a text, each with its end mark (。！？ or a line break), stripped."""
    return [x.strip() for x in _SPLIT.split(text) if x.strip()]


def without(text: str, cut: Sequence[str]) -> str:
    """``text`` with the given sentences (``sentences(text)`` items) taken out as written: what
    is left keeps its line breaks; emptied lines go."""
    for s in cut:
        text = text.replace(s, "", 1)
    return "\n".join(x.strip() for x in text.splitlines() if x.strip())


def questions(text: str) -> list[str]:
    """The question sentences of a text: ending in ？ / ? or か, or asking to be told (教えてください …)."""
    return [
        q
        for q in sentences(text)
        if len(re.sub(r"\W", "", q)) >= 4 and (_END_ASK.search(q.rstrip("…。！!、 　")) or _REQUEST.search(q))
    ]


_GENERIC = frozenset(
    "こと 事 もの 物 の ほう 方 感じ 時 とき よう 今日 本日 今 何 どれ ここ そこ それ これ 相談 ご相談 お話 話".split()
)


def topics(question: str) -> frozenset[str]:
    """What a question is about: its content nouns (UniDic lemmas; generic ones dropped)."""
    from .morph import tokens

    return frozenset(
        t.lemma for t in tokens(question) if t.pos1 == "名詞" and t.pos2 != "数詞" and t.lemma not in _GENERIC
    )


def re_asks(reply: str, earlier: Iterable[str], threshold: float = REASK) -> bool:
    """One of the reply's questions was asked before: worded mostly the same (3-gram overlap ≥
    ``threshold``), or about the same things (every content noun of the question, at least one,
    was in one earlier question: 「年齢と性別をお聞かせください」 after 「…年齢と性別を教えていただけますか？」)."""
    return _asked_before(_asked(reply), [a for e in earlier for a in _asked(e)], threshold)


def _asked(text: str) -> list[tuple[frozenset, frozenset]]:
    """(3-grams, topics) of each question of a text: what ``re_asks`` compares."""
    return [(grams(q), topics(q)) for q in questions(text)]


def _asked_before(qs, asked, threshold: float = REASK) -> bool:
    return any(overlap(g, ag) >= threshold or (n and n <= an) for g, n in qs for ag, an in asked)


def reask_share(turns: Sequence[str], analyse: Callable[[str], list] | None = None) -> float:
    """The share of a counselor's turns, after the first, that re-ask a question of an earlier
    turn (the ``re_asks`` rule, each question analysed once). The coherence model reads it: a
    counselor who keeps asking what was already answered is not listening. ``analyse``: ``_asked``
    or a memo of it (a scorer build analyses each text once for all its copies)."""
    asked: list[tuple[frozenset, frozenset]] = []
    hits = 0
    for i, text in enumerate(turns):
        qs = (analyse or _asked)(text)
        hits += bool(i and _asked_before(qs, asked))
        asked += qs
    return hits / (len(turns) - 1) if len(turns) > 1 else 0.0


def repeats(reply: str, earlier: Sequence[str]) -> bool:
    return near_duplicate(reply, earlier) or re_asks(reply, earlier)


def choose(candidates: Sequence[str], earlier: Sequence[str]) -> str:
    """The first non-empty candidate that neither near-duplicates nor re-asks, else the one least
    similar to the earlier turns (ties: the earlier candidate, i.e. the more likely one)."""
    cands = [c for c in candidates if c.strip()]
    if not cands:
        return candidates[0] if candidates else ""
    for c in cands:
        if not repeats(c, earlier):
            return c
    return min(cands, key=lambda c: (re_asks(c, earlier), similarity(c, earlier)))


def second_try(earlier: Sequence[str], temperature: float = 0.0) -> dict:
    """The decoding override of the second try at a reply that repeated ``earlier``: sampled at
    ``SECOND_TEMPERATURE`` (or the configured temperature, if higher), seeded by the session's
    length so a replayed session gets the same reply."""
    return {"temperature": max(SECOND_TEMPERATURE, temperature), "seed": len(earlier)}


def ask_again_if_repeats(ask: Callable[[dict], str], earlier: Sequence[str], temperature: float = 0.0):
    """Repetition control for a model behind a server (no logits processor there): ``ask(override)``
    generates with the decoding overridden; a first, greedy reply that repeats ``earlier`` is asked
    again once with ``second_try``'s sampling and the better kept. (reply, tries)."""
    first = ask({})
    if not earlier or not repeats(first, earlier):
        return first, 1
    return choose([ask(second_try(earlier, temperature)), first], earlier), 2


def session_figures(replies: Sequence[str], before: Sequence[str] = ()) -> dict:
    """Per session: how many replies near-duplicate / re-ask an earlier counselor turn. ``before``:
    counselor turns not counted as replies but already said (the bot's scripted opening)."""
    said, dup, reask = list(before), 0, 0
    for r in replies:
        dup += near_duplicate(r, said)
        reask += re_asks(r, said)
        said.append(r)
    return {"replies": len(replies), "near_duplicates": dup, "re_asks": reask}
