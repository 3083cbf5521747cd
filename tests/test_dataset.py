import json
import subprocess
import sys

import pytest
from conftest import REPO, good_record, write_json

from kokoro.dataset import DataError, Turn, load_dialogue, load_dir, merge_turns, resolve_data_dir
from kokoro.stats import STATS_KEYS, compute_stats

PAPER = {
    "dialogues": 6589,
    "utterances": 600939,
    "counselor_utterances": 306495,
    "client_utterances": 294444,
    "avg_utterances_per_dialogue": 91.20,
    "avg_chars_per_utterance": 28.39,
    "avg_chars_counselor": 35.84,
    "avg_chars_client": 20.63,
    "speakers": 480,
    "counselor_speakers": 424,
    "client_speakers": 463,
    "score_mean": 63.58,
    "score_median": 64.00,
    "test_dialogues": 118,
    "low": 3870,
    "high": 2601,
    "full": 6471,
    "flag_harmful": 8,
    "flag_unethical": 4,
    "flag_unwilling": 209,
    "merged_turns": 471940,
    "test_merged_counselor_turns": 4742,
}


def test_full_data_loads_strictly_and_score_rule_holds_on_every_file(dialogues):
    # strict loading recomputes the total of every file from its items and flags
    assert len(dialogues) == 6589
    assert all(len(d.items) == 20 for d in dialogues)
    ids = [int(d.id) for d in dialogues]
    assert ids == sorted(ids) and len(set(ids)) == 6589


def test_stats_equal_paper_table3_and_checked_counts(dialogues):
    st = compute_stats(dialogues)
    assert tuple(st) == STATS_KEYS
    assert st == PAPER


def test_stats_cli_json(kokoro_dir):
    out = subprocess.run(
        [sys.executable, "-m", "kokoro", "stats", "--data", str(kokoro_dir), "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    got = json.loads(out)
    assert {k: got[k] for k in PAPER} == PAPER
    # PsyDial's LDD per role: PUW (%) × UWPD, over all 6,589 dialogues
    parts = got["ldd_counselor_parts"]
    assert got["ldd_counselor"] == pytest.approx(100 * parts["unique_words"] ** 2 / parts["words"] / 6589, rel=1e-4)
    assert got["ldd_client"] > 0 and got["ldd_client_parts"]["words"] > 0


def test_ldd_on_a_hand_worked_example():
    from kokoro.stats import lexical_diversity

    r = lexical_diversity([["a b a"], ["b c"]], words=str.split)
    # 3 unique words of 5 → PUW 60 %; 3 unique words over 2 dialogues → UWPD 1.5; LDD = 90
    assert (r["puw"], r["uwpd"], r["ldd"], r["unique_words"], r["words"]) == (60.0, 1.5, 90.0, 3, 5)
    mecab = lexical_diversity([["私は元気です。"], ["私は眠いです。"]])
    assert mecab["words"] == 10 and mecab["unique_words"] == 6  # 私 は 元気 です 。 / 眠い


def test_merge_rule():
    turns = [
        Turn("counselor", "t1", "a"),
        Turn("counselor", "t2", "b"),
        Turn("client", "t3", "c"),
        Turn("counselor", "t4", "d"),
        Turn("client", "t5", "e"),
        Turn("client", "t6", "f"),
    ]
    assert merge_turns(turns) == (
        Turn("counselor", "t1", "a\nb"),
        Turn("client", "t3", "c"),
        Turn("counselor", "t4", "d"),
        Turn("client", "t5", "e\nf"),
    )
    assert merge_turns([]) == ()


def test_good_fixture_loads(tmp_path):
    d = load_dialogue(write_json(tmp_path / "42.json", good_record(flags={"unwilling_to_continue": True})))
    assert d.id == "42" and d.score == 30 and d.flags["unwilling_to_continue"]
    assert [t.role for t in d.merged()] == ["counselor", "client", "counselor"]


def _broken(tmp_path, mutate):
    rec = good_record()
    mutate(rec)
    return write_json(tmp_path / "7.json", rec)


@pytest.mark.parametrize(
    "mutate,field,problem",
    [
        (lambda r: r["review_by_client_en"].pop("felt_respected"), "review_by_client_en.felt_respected", "missing"),
        (lambda r: r.pop("dialogue"), "dialogue", "missing"),
        (
            lambda r: r["review_by_client_en"].update(gained_new_insights=6),
            "review_by_client_en.gained_new_insights",
            "0-5",
        ),
        (lambda r: r["review_by_client_en"].update(felt_respected="3"), "review_by_client_en.felt_respected", "0-5"),
        (lambda r: r["dialogue"][2].update(role="therapist"), "dialogue[2].role", "unknown role 'therapist'"),
        (lambda r: r["dialogue"][1].update(time="yesterday"), "dialogue[1].time", "ISO 8601"),
        (lambda r: r["dialogue"][0].pop("utterance"), "dialogue[0].utterance", "missing"),
        (
            lambda r: r["review_by_client_en"].update(unwilling_to_continue="yes"),
            "review_by_client_en.unwilling_to_continue",
            "チェックあり",
        ),
        (lambda r: r["review_by_client_en"].update(score=99), "review_by_client_en.score", "is 99 but"),
        (lambda r: r.update(dialogue=[]), "dialogue", "non-empty"),
    ],
)
def test_bad_file_error_names_file_and_field(tmp_path, mutate, field, problem):
    path = _broken(tmp_path, mutate)
    with pytest.raises(DataError) as e:
        load_dialogue(path)
    assert e.value.path == str(path) and e.value.field == field
    assert problem in str(e.value) and str(path) in str(e.value)


def test_not_json(tmp_path):
    p = tmp_path / "3.json"
    p.write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match="not valid JSON") as e:
        load_dialogue(p)
    assert e.value.path == str(p) and e.value.field is None


def test_missing_and_empty_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("KOKOROCHAT_DIR", raising=False)
    with pytest.raises(DataError, match="--data DIR or set KOKOROCHAT_DIR"):
        resolve_data_dir(None)
    with pytest.raises(DataError, match="folder not found"):
        load_dir(tmp_path / "nope")
    with pytest.raises(DataError, match=r"no \*\.json"):
        load_dir(tmp_path)


def test_env_and_clone_root_are_accepted(tmp_path, monkeypatch):
    sub = tmp_path / "kokorochat_dialogues"
    sub.mkdir()
    write_json(sub / "1.json", good_record())
    monkeypatch.setenv("KOKOROCHAT_DIR", str(tmp_path))
    assert resolve_data_dir(None) == sub
    assert [d.id for d in load_dir().dialogues] == ["1"]


def test_strict_raises_lenient_skips_and_counts(tmp_path):
    for i in (1, 2, 10):
        write_json(tmp_path / f"{i}.json", good_record())
    (tmp_path / "5.json").write_text("[]", encoding="utf-8")
    write_json(tmp_path / "6.json", {"dialogue": []})
    with pytest.raises(DataError):
        load_dir(tmp_path)
    res = load_dir(tmp_path, lenient=True)
    assert [d.id for d in res.dialogues] == ["1", "2", "10"]  # numeric order
    assert res.skipped == 2 and {e.path.rsplit("/", 1)[-1] for e in res.errors} == {"5.json", "6.json"}


def test_cli_reports_bad_data_clearly(tmp_path):
    write_json(tmp_path / "1.json", good_record())
    (tmp_path / "2.json").write_text("oops", encoding="utf-8")
    r = subprocess.run(
        [sys.executable, "-m", "kokoro", "stats", "--data", str(tmp_path), "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "2.json" in r.stderr and "not valid JSON" in r.stderr and not r.stdout
    r = subprocess.run(
        [sys.executable, "-m", "kokoro", "stats", "--data", str(tmp_path), "--json", "--lenient"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and "skipped 1 bad file" in r.stderr
    assert json.loads(r.stdout)["dialogues"] == 1
