import json
import random
import subprocess
import sys

import pytest
from conftest import REPO

from kokoro.splits import SCORER_SEEDS, counselor_split, holdout, scorer_split


def test_counselor_test_set_is_the_118_best(dialogues):
    sp = counselor_split(dialogues, "full")
    by = {d.id: d for d in dialogues}
    assert len(sp.test) == 118 and all(by[i].score >= 99 for i in sp.test)
    assert sum(d.score >= 99 for d in dialogues) == 118


@pytest.mark.parametrize(
    "subset,n,rule",
    [("low", 3870, lambda s: s < 70), ("high", 2601, lambda s: 70 <= s <= 98), ("full", 6471, lambda s: s <= 98)],
)
def test_counselor_subsets_90_10(dialogues, subset, n, rule):
    sp = counselor_split(dialogues, subset)
    by = {d.id: d for d in dialogues}
    assert len(sp.train) + len(sp.validation) == n
    assert len(sp.validation) == round(n * 0.1)
    assert not set(sp.train) & set(sp.validation)
    assert not (set(sp.train) | set(sp.validation)) & set(sp.test)
    assert all(rule(by[i].score) for i in sp.train + sp.validation)


def test_unknown_subset():
    with pytest.raises(ValueError, match="low"):
        counselor_split([], "mid")


def test_scorer_split_8_1_1_fixed_test_seeded_validation(dialogues):
    splits = [scorer_split(dialogues, s) for s in SCORER_SEEDS]
    n = len(dialogues)
    for sp in splits:
        assert (len(sp.train), len(sp.validation), len(sp.test)) == (n - 2 * 659, 659, 659)
        assert len(set(sp.train) | set(sp.validation) | set(sp.test)) == n
        assert sp.test == splits[0].test
    assert len({sp.validation for sp in splits}) == 5


def test_splits_do_not_depend_on_order(dialogues):
    shuffled = list(dialogues)
    random.Random(0).shuffle(shuffled)
    assert scorer_split(shuffled, 3) == scorer_split(dialogues, 3)
    assert counselor_split(shuffled, "high") == counselor_split(dialogues, "high")


def test_holdout_is_pinned():
    # the hash ranking is part of the contract: other tools recompute it
    rest, held = holdout([str(i) for i in range(20)], 0.1, "scorer-test")
    assert len(held) == 2 and len(rest) == 18
    import hashlib

    ranked = sorted((str(i) for i in range(20)), key=lambda i: hashlib.sha256(f"scorer-test:{i}".encode()).hexdigest())
    assert held == sorted(ranked[:2], key=int)


def test_bad_seed():
    with pytest.raises(ValueError, match="positive integer"):
        scorer_split([], 0)


def test_splits_cli_writes_id_lists(kokoro_dir, tmp_path, dialogues):
    out = tmp_path / "splits.json"
    subprocess.run(
        [sys.executable, "-m", "kokoro", "splits", "--data", str(kokoro_dir), "--out", str(out)],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    obj = json.loads(out.read_text())
    assert set(obj) == {"counselor-low", "counselor-high", "counselor-full"} | {f"scorer-seed{s}" for s in SCORER_SEEDS}
    assert obj["scorer-seed2"]["test"] == list(scorer_split(dialogues, 2).test)
    assert len(obj["counselor-full"]["hash"]["test"]) == 16
