"""Issue 33: the interval a feedback card and a scorer's report give around a predicted total
(kokoro.interval): its bounds worked by hand, its stated coverage met on fresh draws (whole-number
totals, errors that differ by predicted level), and the card that shows it."""

import random

import pytest

from kokoro.interval import IntervalError, _bounds, calibrate, coverage, interval


def test_bounds_by_hand():
    # 20 residuals: -3 ×2, -1 ×4, 0 ×8, 1 ×4, 4 ×2. At 80 %, each tail nearest 10 %:
    # below -1 holds 10 % (2/20), above 1 holds 10 %  → [-1, 1]
    r = [-3] * 2 + [-1] * 4 + [0] * 8 + [1] * 4 + [4] * 2
    assert _bounds(r, 0.8) == [-1.0, 1.0]
    # at 40 %, tails nearest 30 %: below 0 holds 30 % (6/20), above 0 holds 30 % → [0, 0]
    assert _bounds(r, 0.4) == [0.0, 0.0]
    # at 98 %, tails nearest 1 %: below -3 is 0 %, below -1 is 10 % → the widest, [-3, 4]
    assert _bounds(r, 0.98) == [-3.0, 4.0]


def draws(rng, n):
    """Whole-number totals whose error shrinks with the predicted level and leans upward at the top
    (as the scorer's do): one interval for all levels would miss at both ends. Away from 0 and 100,
    where the cap itself would cover."""
    pred = [rng.randint(35, 80) for _ in range(n)]
    gold = [p + round(rng.gauss(4 if p > 68 else -3, 18 if p < 47 else 10)) for p in pred]
    return pred, gold


@pytest.mark.parametrize("level", [0.8, 0.9])
def test_stated_coverage_is_met_on_fresh_draws_at_each_end(level):
    rng = random.Random(7)
    table = calibrate(*draws(rng, 6000), on="draws")
    pred, gold = draws(rng, 30000)
    got = coverage(table, pred, gold)[str(level)]["covered"]
    assert abs(got - 100 * level) <= 2, got
    for part in (lambda p: p < 45, lambda p: p > 70):  # each end, not only on average
        sub = [(p, g) for p, g in zip(pred, gold) if part(p)]
        end = coverage(table, *zip(*sub))[str(level)]["covered"]
        assert abs(end - 100 * level) <= 3, end


def test_interval_stays_within_0_and_100_and_contains_the_total():
    table = calibrate([0, 100] * 200, [30, 60] * 200, on="x")
    for total in (0, 50, 100):
        lo, hi = interval(table, total)
        assert 0 <= lo <= hi <= 100


def test_bad_calibration_is_named():
    with pytest.raises(IntervalError, match="calibration"):
        calibrate([], [], on="x")
    with pytest.raises(IntervalError, match="2 predictions but 1"):
        calibrate([1, 2], [1], on="x")
    with pytest.raises(IntervalError, match="levels"):
        interval(calibrate([50] * 30, [50] * 30, on="x"), 50, level=0.5)


def test_the_card_says_how_sure_the_total_is_in_plain_words():
    import json

    from bot.feedback import card, summary

    items = (3,) * 20
    c = json.dumps(card(items, 60, (48, 75)), ensure_ascii=False)
    assert "48〜75" in c and "10回に8回" in c
    assert "48〜75" in summary(items, 60, (48, 75))
    assert "〜" not in json.dumps(card(items, 60, None), ensure_ascii=False).replace("0〜5", "")
