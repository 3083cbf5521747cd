"""The human pairwise evaluation (Figure 5): prepare through the CLI (a fake OpenAI-compatible
server as the model under test), the raters' app through Flask's test client, the statistics on
hand-worked examples. The real-browser run is tests/test_humaneval_browser.py."""

import json
import subprocess
import sys

import pytest
from conftest import REPO
from fake_openai import FakeOpenAI

from evaluation.humaneval.report import fleiss_kappa, majority, sign_test


def cli(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "evaluation", "humaneval", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def prepare_folder(tmp_path, kokoro_dir, dialogues=2, histories=2, raters=3):
    """A comparison folder: 'fake' (a model behind a fake endpoint) against Human."""
    fake = FakeOpenAI(answer=lambda body: "そうなんですね。もう少し教えていただけますか。")
    try:
        r = cli(
            "prepare",
            "--out",
            str(tmp_path / "he"),
            "--source",
            "fake=endpoint:gpt-fake",
            "--endpoint",
            fake.url,
            "--cache",
            str(tmp_path / "cache.sqlite3"),
            "--data",
            str(kokoro_dir),
            "--dialogues",
            str(dialogues),
            "--histories",
            str(histories),
            "--raters",
            str(raters),
        )
    finally:
        fake.close()
    assert r.returncode == 0, r.stderr[-2000:]
    return tmp_path / "he", json.loads(r.stdout.splitlines()[-1])


def test_fleiss_kappa_on_the_textbook_example():
    # Fleiss (1971) as worked on Wikipedia: 10 subjects, 14 raters, 5 categories -> 0.210
    table = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    assert fleiss_kappa(table) == pytest.approx(0.2099, abs=1e-4)
    assert fleiss_kappa([[3, 0, 0], [0, 3, 0]]) == pytest.approx(1.0)
    assert fleiss_kappa([[3, 0, 0], [3, 0, 0]]) is None  # one category only: undefined
    with pytest.raises(ValueError):
        fleiss_kappa([[3, 0, 0], [1, 1, 0]])


def test_sign_test_by_hand():
    assert sign_test(8, 2) == pytest.approx(2 * (1 + 10 + 45) / 1024)
    assert sign_test(2, 8) == sign_test(8, 2)
    assert sign_test(5, 5) == 1.0 and sign_test(0, 0) == 1.0
    assert sign_test(10, 0) == pytest.approx(2 / 1024)


@pytest.mark.parametrize(
    "votes, result",
    [
        (["a", "a", "a", "b", "tie"], "a"),  # three of five: over half
        (["a", "a", "b", "b", "tie"], "tie"),  # no side over half
        (["tie", "tie", "tie", "a", "a"], "tie"),  # ties over half
        (["b", "b", "b", "b", "a"], "b"),
        (["a", "b", "tie"], "tie"),
        (["a", "a", "tie"], "a"),
        (["a", "b"], "tie"),  # half is not over half
    ],
)
def test_the_papers_majority_rule(votes, result):
    assert majority(votes, "a", "b") == result


def test_prepare_samples_like_the_paper_and_hides_nothing_it_should_not(tmp_path, kokoro_dir):
    folder, out = prepare_folder(tmp_path, kokoro_dir, dialogues=3, histories=4)
    c = json.loads((folder / "comparison.json").read_text(encoding="utf-8"))
    assert out["items"] == 12 and out["pairs"] == [["fake", "Human"]] and len(out["raters"]) == 3
    assert len({h["dialogue"] for h in c["histories"]}) == 3
    for d in {h["dialogue"] for h in c["histories"]}:
        lengths = [len(h["history"]) for h in c["histories"] if h["dialogue"] == d]
        assert len(lengths) == 4 and lengths == sorted(lengths) and len(set(lengths)) == 4  # varying length
    for h in c["histories"]:
        assert h["responses"]["fake"] == "そうなんですね。もう少し教えていただけますか。"
        assert h["responses"]["Human"] and h["history"][-1]["role"] == "client"
    assert {tuple(x["shown"]) for x in c["items"]} == {("fake", "Human"), ("Human", "fake")}  # both orders occur
    assert c["settings"]["sources"]["fake"]["model"] == "gpt-fake" and "split:" in c["signature"]
    again, _ = prepare_folder(tmp_path / "b", kokoro_dir, dialogues=3, histories=4)
    c2 = json.loads((again / "comparison.json").read_text(encoding="utf-8"))
    assert c2["histories"] == c["histories"] and c2["items"] == c["items"]  # seeded
    r = cli("prepare", "--out", str(folder), "--source", "x=demo", "--data", str(kokoro_dir))
    assert r.returncode == 2 and "comparison.json exists" in r.stderr  # answers are never orphaned


def test_a_bad_source_is_named(tmp_path, kokoro_dir):
    (tmp_path / "r.jsonl").write_text('{"dialogue": "x", "turn": 1, "model": "m"}\n', encoding="utf-8")
    r = cli(
        "prepare",
        "--out",
        str(tmp_path / "o"),
        "--source",
        f"m=replies:{tmp_path / 'r.jsonl'}",
        "--data",
        str(kokoro_dir),
    )
    assert r.returncode == 2 and "lacks" in r.stderr and "without --limit" in r.stderr
    r = cli("prepare", "--out", str(tmp_path / "o"), "--source", "m")
    assert r.returncode == 2 and "NAME=SPEC" in r.stderr
    r = cli("prepare", "--out", str(tmp_path / "o"), "--source", "m=nothing.gguf", "--data", str(kokoro_dir))
    assert r.returncode == 2 and "nothing.gguf" in r.stderr
    assert not (tmp_path / "o" / "comparison.json").exists()


def test_a_rater_signs_in_answers_blind_stops_and_resumes(tmp_path, kokoro_dir):
    from evaluation.humaneval.app import create_app

    folder, out = prepare_folder(tmp_path, kokoro_dir)
    code = out["raters"][0]
    app = create_app(folder, {"TESTING": True})
    c = app.test_client()
    assert c.post("/signin", data={"code": "wrong"}).status_code == 403
    page = c.post("/signin", data={"code": code}, follow_redirects=True).get_data(as_text=True)
    assert "回答済み 0 / 4" in page and "応答 A" in page and "応答 B" in page
    assert "fake" not in page and "Human" not in page and "gpt-fake" not in page  # sources hidden
    assert 'name="viewport"' in page  # readable on a phone
    with c.session_transaction() as s:
        csrf = s["csrf"]
    order = app.extensions["humaneval"].order(code)
    assert c.post("/answer", data={"item": order[0], "choice": "A"}).status_code == 400  # no form token
    assert c.post("/answer", data={"item": order[0], "choice": "A", "csrf": csrf}).status_code == 302
    store = app.extensions["humaneval"]
    shown = store.items[order[0]]["shown"]
    assert store.votes()[order[0]] == {code: shown[0]}  # saved at once, as the source shown as A
    c.post("/signout")
    assert c.get("/item").status_code == 302  # signed out
    # a restarted server (a new app on the same folder) resumes the rater at the next item
    c = create_app(folder, {"TESTING": True}).test_client()
    page = c.post("/signin", data={"code": code}, follow_redirects=True).get_data(as_text=True)
    assert "回答済み 1 / 4" in page and "2 問目" in page
    with c.session_transaction() as s:
        csrf = s["csrf"]
    assert "回答済み: A" in c.get("/item?at=0").get_data(as_text=True)
    c.post("/answer", data={"item": order[0], "choice": "tie", "csrf": csrf})  # a changed answer replaces the old
    assert store.votes()[order[0]] == {code: "tie"}
    for item in order[1:]:
        c.post("/answer", data={"item": item, "choice": "B", "csrf": csrf})
    done = c.get("/item").get_data(as_text=True)
    assert "すべて回答しました" in done and len(store.answered(code)) == 4


def test_report_applies_the_majority_rule_and_draws_figure_5(tmp_path, kokoro_dir):
    from evaluation.humaneval.answers import Folder

    folder, out = prepare_folder(tmp_path, kokoro_dir)
    f = Folder(folder)
    r1, r2, r3 = out["raters"]
    for item in f.items.values():
        human = "A" if item["shown"][0] == "Human" else "B"
        f.save(r1, item["id"], human)
        f.save(r2, item["id"], human if item["history"] < 3 else "tie")
        f.save(r3, item["id"], "tie")
    r = cli("report", str(folder), "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    p = json.loads(r.stdout)["pairs"][0]
    assert (p["upper"], p["lower"], p["win"], p["lose"], p["tie"]) == ("fake", "Human", 0, 3, 1)
    assert p["raters_per_item"] == 3 and p["kappa_items"] == 4
    # by hand: items [0,2,1] x3 and [0,1,2]: P_i = 1/3 each; p = (0, 7/12, 5/12); Pe = 74/144
    assert p["fleiss_kappa"] == pytest.approx((1 / 3 - 74 / 144) / (1 - 74 / 144))
    assert p["sign_test_p"] == pytest.approx(2 * 1 / 8)
    md = (folder / "report.md").read_text(encoding="utf-8")
    assert "| fake vs Human | 0 | 1 | 3 | 4 / 4 | 3 |" in md
    assert (folder / "figure5.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
