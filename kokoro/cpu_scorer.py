"""The CPU scorer: char n-gram TF-IDF blocks + session-shape features → one linear model for the
20 items, with per-item rounding offsets. Trained by ``python -m training scorer --preset cpu``;
loaded here by the bot and evaluation (numpy + scikit-learn, no torch).

Features come only from the session itself (text, lengths, times) — never from rater ids — so
the same model scores a new LINE user's session.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

from .dataset import Turn, merge_turns, parse_time
from .items import ITEMS, MAX_ITEM, MIN_ITEM

ARTIFACT = "cpu_scorer.joblib"
CARD = "scorer.json"
LAST_N = 6


class ScorerArtifactError(ValueError):
    pass


def text_blocks(turns: Sequence[Turn]) -> tuple[str, str, str, str]:
    """All client text, all counselor text, the last six client and last six counselor utterances."""
    cl = [t.text for t in turns if t.role == "client"]
    co = [t.text for t in turns if t.role == "counselor"]
    return "\n".join(cl), "\n".join(co), "\n".join(cl[-LAST_N:]), "\n".join(co[-LAST_N:])


NUMERIC = (
    "client_utterances",
    "counselor_utterances",
    "client_chars",
    "counselor_chars",
    "merged_turns",
    "minutes",
    "counselor_reply_seconds",
    "client_reply_seconds",
    "client_share",
)


def numeric_features(turns: Sequence[Turn]) -> list[float]:
    """Session shape: counts and lengths (log1p), duration, mean reply delays, client share of text."""
    cl = [t for t in turns if t.role == "client"]
    co = [t for t in turns if t.role == "counselor"]
    times = []
    for t in turns:
        try:
            times.append(parse_time(t.time))
        except (TypeError, ValueError):
            times.append(None)
    delays = {"counselor": [], "client": []}
    for (a, ta), (b, tb) in zip(zip(turns, times), zip(turns[1:], times[1:])):
        if a.role != b.role and ta and tb:
            delays[b.role].append(max(0.0, (tb - ta).total_seconds()))
    span = (times[-1] - times[0]).total_seconds() / 60 if times and times[0] and times[-1] else 0.0
    ccl, cco = sum(len(t.text) for t in cl), sum(len(t.text) for t in co)
    mean = lambda xs: sum(xs) / len(xs) if xs else 0.0
    raw = [
        len(cl),
        len(co),
        ccl,
        cco,
        len(merge_turns(turns)),
        max(span, 0.0),
        mean(delays["counselor"]),
        mean(delays["client"]),
    ]
    return [math.log1p(x) for x in raw] + [ccl / (ccl + cco) if ccl + cco else 0.0]


class CpuScorer:
    """A fitted CPU scorer. ``predict_raw`` gives continuous scores, ``predict`` integers 0–5."""

    def __init__(self, vectorizers, numeric_mean, numeric_scale, coef, intercept, offsets, identity: dict):
        self.vectorizers, self.numeric_mean, self.numeric_scale = vectorizers, numeric_mean, numeric_scale
        self.coef, self.intercept, self.offsets, self.identity = coef, intercept, offsets, identity

    def features(self, sessions: Sequence[Sequence[Turn]]):
        import numpy as np
        import scipy.sparse as sp

        blocks = list(zip(*[text_blocks(t) for t in sessions]))
        mats = [v.transform(b) * w for (v, w), b in zip(self.vectorizers, blocks)]
        num = (np.array([numeric_features(t) for t in sessions]) - self.numeric_mean) / self.numeric_scale
        return sp.hstack(mats + [sp.csr_matrix(num)]).tocsr()

    def predict_raw(self, sessions: Sequence[Sequence[Turn]]):
        return self.features(sessions) @ self.coef + self.intercept

    def predict_many(self, sessions: Sequence[Sequence[Turn]]) -> list[tuple[int, ...]]:
        import numpy as np

        raw = self.predict_raw(sessions) + self.offsets
        return [tuple(int(x) for x in row) for row in np.clip(np.rint(raw), MIN_ITEM, MAX_ITEM)]

    def predict(self, turns: Sequence[Turn]) -> tuple[int, ...]:
        if not turns:
            raise ValueError("cannot score an empty session")
        return self.predict_many([list(turns)])[0]

    def save(self, folder: Path) -> None:
        import joblib

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for v, _ in self.vectorizers:
            if hasattr(v, "stop_words_"):
                v.stop_words_ = None  # sklearn keeps every pruned n-gram here; not needed to predict
        joblib.dump(
            {
                "vectorizers": self.vectorizers,
                "numeric_mean": self.numeric_mean,
                "numeric_scale": self.numeric_scale,
                "coef": self.coef,
                "intercept": self.intercept,
                "offsets": self.offsets,
            },
            folder / ARTIFACT,
            compress=3,
        )
        (folder / CARD).write_text(json.dumps(self.identity, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: Path | str) -> "CpuScorer":
        folder = Path(folder)
        if not (folder / ARTIFACT).is_file() or not (folder / CARD).is_file():
            raise ScorerArtifactError(
                f"{folder} is not a CPU scorer folder (needs {ARTIFACT} and {CARD}); build one with "
                "`python -m training scorer --preset cpu --data DIR --out DIR`"
            )
        import joblib

        d = joblib.load(folder / ARTIFACT)
        identity = json.loads((folder / CARD).read_text(encoding="utf-8"))
        if identity.get("items") != [it.key for it in ITEMS]:
            raise ScorerArtifactError(f"{folder}: the scorer's item list differs from kokoro.items")
        return cls(
            d["vectorizers"], d["numeric_mean"], d["numeric_scale"], d["coef"], d["intercept"], d["offsets"], identity
        )
