"""The CPU scorer's stretch about the mean (issue 33: calibration at the ends): the build's choice
of factor, and the runtime applying what the artifact says."""

import numpy as np
import pytest


def _shrunk(seed: int, n: int = 2000, shrink: float = 0.6, noise: float = 0.35):
    """Sessions whose true quality varies, rated with noise, and predicted by a ridge-like model that
    keeps ``shrink`` of each session's distance from the mean (a ridge pulls sessions towards it)."""
    rng = np.random.default_rng(seed)
    quality = rng.normal(0.0, 0.6, size=(n, 1))
    item_means = rng.uniform(3.0, 4.0, size=(1, 20))
    truth = item_means + quality + rng.normal(0, 0.3, size=(n, 20))
    gold = np.clip(np.rint(truth + rng.normal(0, noise, size=truth.shape)), 0, 5)
    raw = item_means + shrink * quality + rng.normal(0, 0.3, size=(n, 20))
    return raw, gold


def test_a_shrunk_prediction_is_stretched_and_no_worse():
    from training.cpu_scorer import _choose_stretch

    raw, gold = _shrunk(1)
    got = _choose_stretch(raw, gold, gold.sum(1), 0.3, (1.0, 1.2, 1.4, 1.6, 1.8, 2.0))
    s = got["stretch"]
    assert s["factor"] > 1.0, s["tried"]
    base, chosen = s["tried"][0], next(r for r in s["tried"] if r["factor"] == s["factor"])
    assert chosen["share_high"] > base["share_high"] and chosen["share_high"] <= s["rated_share_high"]
    assert chosen["acc"] >= base["acc"] and chosen["acc_soft"] >= base["acc_soft"] and chosen["mae"] <= base["mae"]
    assert got["calib"].shape == gold.shape and got["offsets"].shape == (20,)
    assert [r["factor"] for r in s["tried"]] == [1.0, 1.2, 1.4, 1.6, 1.8, 2.0]  # beyond the stop too


def test_a_prediction_that_is_not_shrunk_stays():
    from training.cpu_scorer import _choose_stretch

    raw, gold = _shrunk(2, shrink=1.0, noise=0.0)
    everyone_high = np.full(len(gold), 100)  # the share cap never binds: the items decide
    got = _choose_stretch(raw, gold, everyone_high, 0.3, (1.0, 1.2, 1.4))
    assert got["stretch"]["factor"] == 1.0, got["stretch"]["tried"]


def test_the_rated_share_caps_the_factor():
    from training.cpu_scorer import _choose_stretch

    raw, gold = _shrunk(3)
    free = _choose_stretch(raw, gold, gold.sum(1), 0.3, (1.0, 1.2, 1.4, 1.6))["stretch"]["factor"]
    capped = _choose_stretch(raw, gold, np.zeros(len(gold)), 0.3, (1.0, 1.2, 1.4, 1.6))
    assert free > 1.0 and capped["stretch"]["factor"] == 1.0  # nobody rated >= 90: no total may reach it
    assert capped["stretch"]["rated_share_high"] == 0.0


def test_the_runtime_applies_the_artifacts_stretch():
    from kokoro.cpu_scorer import CpuScorer, stretch

    raw = np.array([[4.4] * 20, [3.0] * 20, [2.0] * 20])
    plain = CpuScorer(None, None, None, None, None, np.zeros(20), {})  # a scorer built before the stretch
    assert plain.rounded(raw) == [(4,) * 20, (3,) * 20, (2,) * 20]
    s = CpuScorer(None, None, None, None, None, np.zeros(20), {"stretch": {"factor": 1.5, "center": 3.0}})
    assert s.rounded(raw) == [(5,) * 20, (3,) * 20, (2,) * 20]  # 4.4 -> 5.1, 3 stays, 2 -> 1.5 rounds to 2
    assert stretch(raw, 1.5, 3.0)[2, 0] == pytest.approx(1.5)
    assert stretch(raw, 1.0, 3.0) == pytest.approx(raw)
