import json
import subprocess
import sys

import pytest

from conftest import REPO


@pytest.fixture(scope="module")
def small_scorer(kokoro_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("cpu") / "scorer"
    r = subprocess.run([sys.executable, "-m", "training", "scorer", "--preset", "cpu", "--data", str(kokoro_dir),
                        "--out", str(out), "--set", "limit=500", "--set", "max_features=5000"],
                       cwd=REPO, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    return out, json.loads(r.stdout.strip().splitlines()[-1])


def test_cpu_scorer_prints_metrics_json(small_scorer):
    _, metrics = small_scorer
    assert {"acc", "acc_soft", "mae"} <= set(metrics)
    assert 0 <= metrics["acc"] <= 100 and metrics["acc_soft"] >= metrics["acc"] and 0 <= metrics["mae"] <= 5
    assert metrics["split"] == "scorer-seed1"


def test_artifact_loads_and_scores_like_training(small_scorer, dialogues):
    from kokoro.cpu_scorer import CpuScorer
    from kokoro.scoring import score_metrics
    from kokoro.splits import scorer_split

    out, metrics = small_scorer
    scorer = CpuScorer.load(out)
    assert scorer.identity["kind"] == "kokoro-cpu-scorer" and len(scorer.identity["items"]) == 20
    by = {d.id: d for d in dialogues}
    test_ids = list(scorer_split(dialogues, 1).test)[: metrics["n_test"]]
    pred = [scorer.predict(by[i].turns) for i in test_ids]
    assert all(len(p) == 20 and all(0 <= x <= 5 for x in p) for p in pred)
    m = score_metrics(pred, [by[i].items for i in test_ids])
    assert round(m["acc"], 2) == metrics["acc"] and round(m["mae"], 4) == metrics["mae"]
    with pytest.raises(ValueError, match="empty session"):
        scorer.predict([])


def test_missing_artifact_says_how_to_build(tmp_path):
    from kokoro.cpu_scorer import CpuScorer, ScorerArtifactError

    with pytest.raises(ScorerArtifactError, match="--preset cpu"):
        CpuScorer.load(tmp_path)


def test_numeric_features_use_times_and_lengths():
    from kokoro.cpu_scorer import NUMERIC, numeric_features
    from kokoro.dataset import Turn

    turns = [Turn("counselor", "2020-01-01T10:00:00", "こんにちは"), Turn("client", "2020-01-01T10:01:00", "はい"),
             Turn("counselor", "2020-01-01T10:01:30", "どうぞ")]
    f = numeric_features(turns)
    import math
    assert len(f) == len(NUMERIC)
    assert f[0] == pytest.approx(math.log1p(1)) and f[1] == pytest.approx(math.log1p(2))
    assert f[5] == pytest.approx(math.log1p(1.5))  # 90 s
    assert f[6] == pytest.approx(math.log1p(30)) and f[7] == pytest.approx(math.log1p(60))
    assert f[8] == pytest.approx(2 / 10)
