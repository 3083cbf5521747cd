"""Perturbed copies of a session: what a scorer should notice when the counselor is bad.

A sensitivity test, not agreement with raters: nobody rated these sessions. Each perturbation
keeps the client's side as it was and changes only the counselor's (or, for ``cut``, the
length). Counselor *blocks* are merged counselor turns (consecutive utterances, paper §5.1);
a replaced block keeps the original block's time, so reply delays and duration stay as they were.

Deterministic: the same session, pool, name and seed give the same copy on any platform.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Sequence

from .dataset import Turn

BACKCHANNEL = "そうなんですね。"
# the suite's remarks: the second held-out list, written before the flag rules (the first,
# remarks_holdout.tsv, was read again by the session that wrote them: no longer held out for them)
REMARKS_HOLDOUT = Path(__file__).with_name("rule_sets") / "remarks_holdout2.tsv"
EARLIER_REMARKS = (Path(__file__).with_name("rule_sets") / "remarks_holdout.tsv",)

PERTURBATIONS = {
    "other_sessions": "every counselor block replaced by a counselor block of another session",
    "backchannel": f"every counselor block replaced by one back-channel 「{BACKCHANNEL}」",
    "shuffle_within": "the counselor's own blocks in a random order (client turns in place)",
    "cut_quarter": "the session cut after its first quarter of blocks",
    "harmful": "one counselor block in the middle replaced by a harmful remark",
    "harmful_two": "two counselor blocks (a third and two thirds of the way) replaced by harmful remarks",
    "echo_client": "every counselor block replaced by a parrot of the client block before it "
    f"(「{BACKCHANNEL}」 + its last sentence + 「、ということですね。」)",
}
ECHO_SUFFIX = "、ということですね。"
ECHO_CHARS = 24


def echo(client_text: str, prefix: str = BACKCHANNEL, suffix: str = ECHO_SUFFIX, max_chars: int = ECHO_CHARS) -> str:
    """A parrot's reply: the client's last sentence (at most ``max_chars``, its end kept) wrapped
    in a back-channel and a reflection ending — fluent, on topic, and saying nothing."""
    import re

    parts = [x for x in re.split(r"[。！？!?\n]+", client_text) if x.strip()]
    last = (parts[-1] if parts else client_text).strip()[-max_chars:]
    return f"{prefix}{last}{suffix}"


def blocks(turns: Sequence[Turn]) -> list[list[Turn]]:
    """Consecutive same-role utterances, as lists (unlike merge_turns, utterances are kept)."""
    out: list[list[Turn]] = []
    for t in turns:
        if out and out[-1][0].role == t.role:
            out[-1].append(t)
        else:
            out.append([t])
    return out


def first_client_blocks(turns: Sequence[Turn], k: int) -> list[Turn]:
    """The session as far as its first ``k`` client blocks went: every utterance before the
    client's next block, so the counselor's answer to the k-th is kept (a replay's human
    counselor, a shorter session the bot might hold)."""
    out, seen = [], 0
    for t, prev in zip(turns, [None, *turns]):
        if t.role == "client" and (prev is None or prev.role != "client"):
            seen += 1
            if seen > k:
                break
        out.append(t)
    return out


def counselor_blocks(turns: Sequence[Turn]) -> list[list[Turn]]:
    return [b for b in blocks(turns) if b[0].role == "counselor"]


def _rng(key: str, name: str, seed: int) -> random.Random:
    return random.Random(int(hashlib.sha256(f"{seed}:{name}:{key}".encode()).hexdigest()[:16], 16))


def _retimed(block: Sequence[Turn], time: str) -> list[Turn]:
    return [Turn("counselor", time, t.text) for t in block]


def _key(turns: Sequence[Turn]) -> str:
    return "\x1f".join(t.text for t in turns[:4]) + f"#{len(turns)}"


def perturb(
    turns: Sequence[Turn],
    name: str,
    *,
    pool: Sequence[Sequence[Turn]] = (),
    remarks: Sequence[str] = (),
    seed: int = 0,
    fraction: float = 1.0,
    backchannel: str = BACKCHANNEL,
    echo_with: tuple[str, str, int] = (BACKCHANNEL, ECHO_SUFFIX, ECHO_CHARS),
) -> list[Turn]:
    """A perturbed copy of ``turns``. ``pool``: counselor blocks of *other* sessions (for
    ``other_sessions``); ``remarks``: harmful remarks (for ``harmful``); ``fraction``: the share
    of counselor blocks changed by ``other_sessions`` / ``backchannel`` (1.0 = all);
    ``backchannel``: the text that replaces them (the suite's is fixed; training varies it);
    ``echo_with``: (prefix, suffix, max chars) of ``echo_client``'s parrot (training varies it)."""
    if name not in PERTURBATIONS:
        raise ValueError(f"unknown perturbation {name!r}; use one of {sorted(PERTURBATIONS)}")
    rng = _rng(_key(turns), name, seed)
    bl = blocks(turns)
    co = [i for i, b in enumerate(bl) if b[0].role == "counselor"]
    chosen = set(co if fraction >= 1.0 else rng.sample(co, max(1, round(fraction * len(co)))) if co else [])
    if name == "other_sessions":
        if not pool:
            raise ValueError("other_sessions needs a pool of counselor blocks from other sessions")
        for i in sorted(chosen):
            bl[i] = _retimed(pool[rng.randrange(len(pool))], bl[i][0].time)
    elif name == "backchannel":
        for i in chosen:
            bl[i] = [Turn("counselor", bl[i][0].time, backchannel)]
    elif name == "echo_client":
        for i in chosen:
            client = next((b for b in reversed(bl[:i]) if b[0].role == "client"), None)
            if client is not None:  # the opening, before any client turn, stays
                text = echo("\n".join(t.text for t in client), *echo_with)
                bl[i] = [Turn("counselor", bl[i][0].time, text)]
    elif name == "shuffle_within":
        order = list(co)
        for _ in range(10):  # a permutation that moves something, where one exists
            rng.shuffle(order)
            if order != co or len(co) < 2:
                break
        moved = {i: _retimed(bl[j], bl[i][0].time) for i, j in zip(co, order)}
        bl = [moved.get(i, b) for i, b in enumerate(bl)]
    elif name == "cut_quarter":
        bl = bl[: max(2, len(bl) // 4)]
    elif name in ("harmful", "harmful_two"):
        if not remarks:
            raise ValueError(f"{name} needs a list of harmful remarks")
        at = [len(co) // 2] if name == "harmful" else sorted({len(co) // 3, 2 * len(co) // 3})
        for i in [co[k] for k in at] if co else []:
            bl[i] = [Turn("counselor", bl[i][0].time, remarks[rng.randrange(len(remarks))])]
    return [t for b in bl for t in b]


def held_out_remarks(label: str = "harmful") -> list[str]:
    """The held-out counselor remarks of one label (harmful | unethical | ok): written before the flag
    rules and never trained or tuned on (kokoro/rule_sets/remarks_holdout2.tsv, frozen)."""
    from .labelled import read_tsv

    return [text for lab, text in read_tsv(REMARKS_HOLDOUT, 2) if lab == label]


def suite(
    sessions: Sequence[Sequence[Turn]], name: str, remarks: Sequence[str] = (), seed: int = 0
) -> list[list[Turn]]:
    """One perturbed copy of every session; ``other_sessions`` draws from the other sessions given."""
    own = [counselor_blocks(t) for t in sessions]
    pool = [b for bs in own for b in bs]
    starts = [0]
    for bs in own:
        starts.append(starts[-1] + len(bs))
    out = []
    for k, t in enumerate(sessions):
        others = pool[: starts[k]] + pool[starts[k + 1] :] if name == "other_sessions" else ()
        out.append(perturb(t, name, pool=others, remarks=remarks, seed=seed))
    return out


def auc(higher: Sequence[float], lower: Sequence[float]) -> float:
    """P(a value from ``higher`` > one from ``lower``), ties count half (Mann–Whitney)."""
    from bisect import bisect_left, bisect_right

    lo = sorted(lower)
    if len(higher) == 0 or len(lo) == 0:
        return float("nan")
    s = 0.0
    for h in higher:
        s += bisect_left(lo, h) + 0.5 * (bisect_right(lo, h) - bisect_left(lo, h))
    return s / (len(higher) * len(lo))
