"""How sure a predicted total is: an interval calibrated on sessions the scorer predicted unseen.

A scorer's calibration pairs (its predicted total, the client's real total — the paper's rule,
flags included) are split into ``BINS`` bins of the predicted total (errors differ at the ends:
a session predicted at 85 is more often rated higher, one predicted at 50 lower). Per bin and
level, the interval is the predicted total plus two residual bounds, each tail holding as close
to (1 − level)/2 of the bin's residuals as the whole points allow. Totals are whole numbers, so
each residual value holds 1–3 % of the sessions: the usual conformal quantiles (each tail at
most (1 − level)/2) then cover several points more than stated; nearest-to-nominal trades that
guarantee for a stated level that is met on average (tests/test_interval.py checks it on fresh
draws). The rule is applied to a table; the table is stored with the scorer that made the pairs.
"""

from __future__ import annotations

import math
from typing import Sequence

LEVELS = (0.8, 0.9)
SHOWN = 0.8  # the level on the client's card: "8 sessions in 10 like this one"
BINS = 4
PER_BIN = 200
LOWEST, HIGHEST = 0, 100


class IntervalError(ValueError):
    pass


def _bounds(r: Sequence[float], level: float) -> list[float]:
    """[lo, hi]: the residual values whose tails (below lo, above hi) are nearest (1 − level)/2;
    ties go to the wider bound."""
    tail, n = (1 - level) / 2, len(r)
    values = sorted(set(r))
    below = lambda v: sum(1 for x in r if x < v) / n
    above = lambda v: sum(1 for x in r if x > v) / n
    lo = min(values, key=lambda v: (abs(below(v) - tail), v))
    hi = min(values, key=lambda v: (abs(above(v) - tail), -v))
    return [float(lo), float(hi)]


def calibrate(pred: Sequence[float], gold: Sequence[float], on: str, levels=LEVELS, bins: int = BINS) -> dict:
    """The interval table of calibration pairs; ``on`` says which sessions made them. Fewer bins
    when the pairs are few (at least ``PER_BIN`` a bin; a smoke build's handful gets one)."""
    if len(pred) != len(gold):
        raise IntervalError(f"{len(pred)} predictions but {len(gold)} real totals")
    if not pred:
        raise IntervalError("no calibration sessions: an interval needs sessions the scorer predicted unseen")
    bins = max(1, min(bins, len(pred) // PER_BIN))
    order = sorted(pred)
    edges = sorted({float(order[len(order) * b // bins]) for b in range(1, bins)})
    table = []
    for b in range(len(edges) + 1):
        r = [g - p for p, g in zip(pred, gold) if _bin(edges, p) == b]
        table.append({"n": len(r)} | {str(lv): _bounds(r, lv) for lv in levels})
    out = {
        "rule": "residual bounds by predicted-total bin, each tail nearest (1 - level)/2",
        "on": on,
        "n": len(pred),
        "levels": list(levels),
        "edges": edges,
        "bins": table,
    }
    out["calibration_coverage"] = {lv: c["covered"] for lv, c in coverage(out, pred, gold).items()}
    return out


def _bin(edges: Sequence[float], total: float) -> int:
    return sum(1 for e in edges if total >= e)


def interval(table: dict, total: float, level: float = SHOWN) -> tuple[int, int]:
    """The interval around a predicted total, in whole points within 0–100."""
    key = str(level)
    if key not in table["bins"][0]:
        raise IntervalError(f"the interval table has levels {table['levels']}, not {level}")
    lo, hi = table["bins"][_bin(table["edges"], total)][key]
    return max(LOWEST, math.floor(total + lo)), min(HIGHEST, math.ceil(total + hi))


def coverage(table: dict, pred: Sequence[float], gold: Sequence[float]) -> dict:
    """Per level: the share of real totals inside their interval (%), and the mean width."""
    out = {}
    for lv in table["levels"]:
        spans = [interval(table, p, lv) for p in pred]
        inside = sum(1 for (lo, hi), g in zip(spans, gold) if lo <= g <= hi)
        out[str(lv)] = {
            "nominal": round(100 * lv, 1),
            "covered": round(100 * inside / max(len(gold), 1), 2),
            "mean_width": round(sum(hi - lo for lo, hi in spans) / max(len(spans), 1), 1),
        }
    return out
