"""`python -m bot safety-eval --split FILE`: a split written outside the team, measured as its writer
runs it (issue 30): figures by rung that are the bot's own decisions, its first run kept in a ledger,
lines near the training sets named, and bad rows named with what to write."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO

from bot.safety import is_crisis
from bot.safety_eval import labelled_lines
from bot.safety_split import GOAL, HIGH, NEAR, goal
from kokoro.conversation import grams, jaccard


def run(*args):
    r = subprocess.run(
        [sys.executable, "-m", "bot", "safety-eval", *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )  # a bound, not a wait: the learned layer trains at first use (seconds)
    return r.returncode, (json.loads(r.stdout) if r.returncode == 0 else None), r.stderr


def write(path, rows, header="# a split written by someone else\n"):
    path.write_text(header + "".join(f"{a}\t{b}\t{c}\n" for a, b, c in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def outside_rows():
    """Lines of the newest held-out split (never trained on, none near a training line): 12 crisis
    lines across the rungs and 12 ordinary ones stand in for a stranger's."""
    rows = labelled_lines("cssrs_holdout5")
    crisis = [r for r in rows if r[0] == "crisis"][::13][:12]
    ordinary = [r for r in rows if r[0] == "none"][::13][:12]
    return crisis + ordinary


def test_a_split_is_measured_as_the_bot_decides_and_its_first_run_is_kept(outside_rows, tmp_path):
    split, ledger = write(tmp_path / "mine.tsv", outside_rows), tmp_path / "runs.jsonl"
    rc, first, err = run("--split", split, "--ledger", ledger)
    assert rc == 0, err
    crisis = [(c, t) for lab, c, t in outside_rows if lab == "crisis"]
    ordinary = [t for lab, _, t in outside_rows if lab == "none"]
    both = first["both"]
    assert both["crisis_lines"] == len(crisis) and both["non_crisis_lines"] == len(ordinary)
    assert both["recall"] == round(sum(is_crisis(t) for _, t in crisis) / len(crisis), 4)  # the bot's own decision
    assert both["false_alarms"] == sum(is_crisis(t) for t in ordinary)
    for rung in {c for c, _ in crisis}:
        lines = [t for c, t in crisis if c == rung]
        assert both["recall_by_category"][rung] == round(sum(map(is_crisis, lines)) / len(lines), 4)
    assert first["near_training"] == {} and first["goal"]["lines_each"] is False  # 24 lines are not 150 + 150
    assert first["ledger"]["runs_before"] == 0 and first["ledger"]["first_run"] is None
    assert not any(t in json.dumps(first, ensure_ascii=False) for _, _, t in outside_rows)  # no line text unasked

    rc, again, err = run("--split", split, "--ledger", ledger)
    assert rc == 0, err
    assert again["ledger"]["runs_before"] == 1
    assert again["ledger"]["first_run"]["both"]["recall"] == both["recall"]
    assert again["ledger"]["first_run"]["code"] == first["code"]

    write(split, outside_rows[1:])  # another file: its own first run
    rc, other, err = run("--split", split, "--ledger", ledger, "--misses")
    assert rc == 0, err
    assert other["ledger"]["runs_before"] == 0
    missed = {m["text"] for m in other["missed"]}
    assert missed == {t for lab, _, t in outside_rows[1:] if lab == "crisis" and not is_crisis(t)}
    assert {m["text"] for m in other["false_alarm_lines"]} == {t for t in ordinary if is_crisis(t)}
    assert len(ledger.read_text(encoding="utf-8").splitlines()) == 3


def test_a_line_near_a_training_line_is_named_and_left_out_of_the_clean_figures(outside_rows, tmp_path):
    trained = [r for r in labelled_lines("cssrs_train") if r[0] == "crisis"][0]
    copied = (trained[0], trained[1], "ねえ聞いて、" + trained[2] + "って最近思う")  # reworded, still near
    assert NEAR <= jaccard(grams(copied[2]), grams(trained[2])) < 0.8
    split = write(tmp_path / "mixed.tsv", [copied] + outside_rows)
    rc, out, err = run("--split", split)
    assert rc == 0, err
    assert out["near_training"] == {"2": "cssrs_train"}  # line 2: after the header comment
    assert out["without_near_lines"]["crisis_lines"] == out["both"]["crisis_lines"] - 1


@pytest.mark.parametrize(
    "row, says",
    [
        ("crsis\tmethod\t…", ["mixed.tsv:2", "'crisis'", "'none'"]),
        ("crisis\tsuicide\t…", ["mixed.tsv:2", "not a rung", "preparatory"]),
        ("crisis\tmethod", ["mixed.tsv:2", "3 tab-separated columns"]),
    ],
)
def test_a_bad_row_is_named_with_what_to_write(outside_rows, tmp_path, row, says):
    split = tmp_path / "mixed.tsv"
    write(split, outside_rows, header="# header\n" + row + "\n")
    rc, _, err = run("--split", split)
    assert rc == 2 and "Traceback" not in err
    assert all(s in err for s in says), err


def test_a_broken_ledger_is_named_and_kept(outside_rows, tmp_path):
    ledger = tmp_path / "runs.jsonl"
    ledger.write_text('{"sha256": "x"}\nnot json\n', encoding="utf-8")
    rc, _, err = run("--split", write(tmp_path / "s.tsv", outside_rows), "--ledger", ledger)
    assert rc == 2 and f"{ledger}:2" in err and "Traceback" not in err
    assert ledger.read_text(encoding="utf-8") == '{"sha256": "x"}\nnot json\n'


def figures(recall_by, crisis=160, ordinary=160, alarms=0.0):
    return {
        "recall_by_category": recall_by,
        "recall": sum(recall_by.values()) / len(recall_by),
        "false_alarm_rate": alarms,
        "crisis_lines": crisis,
        "non_crisis_lines": ordinary,
    }


def test_the_bar_asks_for_every_high_rung_enough_lines_and_few_alarms():
    perfect = {r: 1.0 for r in HIGH} | {"wish_dead": 1.0}
    assert goal(figures(perfect))["met"] is True
    assert goal(figures(perfect | {"plan": 0.96}))["recall_high_rungs"] is False  # one high rung under 97 %
    missing = {r: 1.0 for r in HIGH if r != "preparatory"}
    assert goal(figures(missing))["met"] is False  # a split without preparatory lines cannot show the bar
    assert goal(figures(perfect, crisis=GOAL["lines_each"] - 1))["met"] is False
    assert goal(figures(perfect, alarms=0.031))["false_alarms"] is False
