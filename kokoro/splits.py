"""The paper's splits as deterministic id lists.

Counselor (§5.1.1, App. D.1): test = score ≥ 99; Low < 70, High 70–98, Full ≤ 98, each split
90/10 train/validation. Scorer (App. D.2): 8:1:1 with a fixed test and train/validation
re-drawn per seed (1–5). Membership is decided by ranking ids on a salted SHA-256, so it does
not depend on file order, Python version or platform, and any tool can recompute it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Sequence

from .dataset import Dialogue

TEST_MIN_SCORE = 99
LOW_MAX_EXCL = 70
HIGH_MAX = 98
SUBSETS = ("low", "high", "full")
SCORER_SEEDS = (1, 2, 3, 4, 5)
VAL_FRACTION = 0.1
TEST_FRACTION = 0.1


def _id_key(i: str):
    return (0, int(i), "") if i.isdigit() else (1, 0, i)


def sort_ids(ids) -> list[str]:
    return sorted(ids, key=_id_key)


def _rank(ids: Sequence[str], salt: str) -> list[str]:
    return sorted(ids, key=lambda i: hashlib.sha256(f"{salt}:{i}".encode()).hexdigest())


def holdout(ids: Sequence[str], fraction: float, salt: str) -> tuple[list[str], list[str]]:
    """Split ``ids`` into (rest, held_out) with round(len*fraction) held out, deterministically."""
    ranked = _rank(ids, salt)
    n = round(len(ranked) * fraction)
    return sort_ids(ranked[n:]), sort_ids(ranked[:n])


def ids_hash(ids: Sequence[str]) -> str:
    return hashlib.sha256(json.dumps(sort_ids(ids)).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Split:
    name: str
    train: tuple[str, ...]
    validation: tuple[str, ...]
    test: tuple[str, ...]

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "train": list(self.train),
            "validation": list(self.validation),
            "test": list(self.test),
            "hash": {k: ids_hash(getattr(self, k)) for k in ("train", "validation", "test")},
        }


def subset_filter(subset: str):
    if subset == "low":
        return lambda s: s < LOW_MAX_EXCL
    if subset == "high":
        return lambda s: LOW_MAX_EXCL <= s <= HIGH_MAX
    if subset == "full":
        return lambda s: s <= HIGH_MAX
    raise ValueError(f"unknown counselor subset {subset!r}; choose one of {list(SUBSETS)}")


def counselor_split(dialogues: Sequence[Dialogue], subset: str = "full") -> Split:
    keep = subset_filter(subset)
    test = [d.id for d in dialogues if d.score >= TEST_MIN_SCORE]
    pool = [d.id for d in dialogues if keep(d.score)]
    train, val = holdout(pool, VAL_FRACTION, "counselor-validation")
    return Split(f"counselor-{subset}", tuple(train), tuple(val), tuple(sort_ids(test)))


def scorer_split(dialogues: Sequence[Dialogue], seed: int = 1) -> Split:
    if not isinstance(seed, int) or seed < 1:
        raise ValueError(f"scorer seed must be a positive integer (the paper used 1-5), got {seed!r}")
    ids = [d.id for d in dialogues]
    rest, test = holdout(ids, TEST_FRACTION, "scorer-test")
    # validation is 1/9 of the rest, i.e. 10 % of all: 8:1:1
    train, val = holdout(rest, len(ids) * VAL_FRACTION / max(len(rest), 1), f"scorer-seed-{seed}")
    return Split(f"scorer-seed{seed}", tuple(train), tuple(val), tuple(test))


def all_splits(dialogues: Sequence[Dialogue]) -> dict[str, dict]:
    out = {}
    for s in SUBSETS:
        sp = counselor_split(dialogues, s)
        out[sp.name] = sp.as_dict()
    for seed in SCORER_SEEDS:
        sp = scorer_split(dialogues, seed)
        out[sp.name] = sp.as_dict()
    return out
