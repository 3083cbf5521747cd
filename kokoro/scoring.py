"""Score metrics (ACC, ACC_soft, MAE as in the paper's Tables 5 and 8) and the scorer interface.

``acc`` and ``acc_soft`` are percentages, ``mae`` is in points; each is the mean over the 20
items of the per-item value (the paper's averaging), with the per-item values alongside.
"""

from __future__ import annotations

import statistics
from typing import Protocol, Sequence

from .dataset import Turn
from .items import ITEMS


def score_metrics(pred: Sequence[Sequence[float]], gold: Sequence[Sequence[int]]) -> dict:
    """Metrics of predicted vs gold item scores (one row of 20 per dialogue). Predictions are
    compared as given for MAE and rounded-and-clipped to 0–5 for ACC / ACC_soft."""
    if len(pred) != len(gold):
        raise ValueError(f"{len(pred)} predictions for {len(gold)} gold rows")
    if not gold:
        raise ValueError("no dialogues to score")
    n_items = len(ITEMS)
    for row in list(pred) + list(gold):
        if len(row) != n_items:
            raise ValueError(f"every row needs {n_items} item scores, got {len(row)}")
    per = []
    for j, it in enumerate(ITEMS):
        p = [float(r[j]) for r in pred]
        g = [int(r[j]) for r in gold]
        pi = [min(5, max(0, int(round(x)))) for x in p]
        per.append(
            {
                "item": it.key,
                "dim": it.dim,
                "acc": 100.0 * sum(a == b for a, b in zip(pi, g)) / len(g),
                "acc_soft": 100.0 * sum(abs(a - b) <= 1 for a, b in zip(pi, g)) / len(g),
                "mae": sum(abs(a - b) for a, b in zip(p, g)) / len(g),
            }
        )
    out = {k: statistics.fmean(x[k] for x in per) for k in ("acc", "acc_soft", "mae")}
    out.update({f"{k}_std": statistics.pstdev([x[k] for x in per]) for k in ("acc", "acc_soft", "mae")})
    out["n"] = len(gold)
    out["per_item"] = per
    return out


class Scorer(Protocol):
    """Anything that scores a session: the CPU scorer artifact or a scorer GGUF."""

    identity: dict

    def predict(self, turns: Sequence[Turn]) -> tuple[int, ...]: ...
