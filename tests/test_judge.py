"""`python -m evaluation judge` (Table 7) driven through the CLI: an endpoint judge behind the fake
OpenAI server (malformed answers asked again, then named), and a GGUF judge under its grammar."""

import json
import subprocess
import sys

import pytest
from conftest import REPO
from fake_openai import FakeOpenAI

from kokoro.prompts import JUDGE_SYSTEM, parse_judgement

DIALOGUES = {
    "good": [
        ["client", "最近眠れなくて"],
        ["counselor", "眠れないのですね。いつ頃からですか？"],
        ["client", "先月から"],
    ],
    "poor": [["client", "仕事がつらい"], ["counselor", "そうですか"], ["client", "はい"], ["counselor", "そうですか"]],
}


def write_sessions(tmp_path):
    files = []
    for name, turns in DIALOGUES.items():
        d = tmp_path / name
        d.mkdir()
        recs = [{"turns": [{"role": r, "text": t + "。" * k} for r, t in turns]} for k in range(2)]  # two dialogues
        (d / "sessions.jsonl").write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in recs))
        files.append(d / "sessions.jsonl")
    return files


def answer(body):
    """Deterministic judge: malformed on its first look at the 'poor' dialogue, else scores from it."""
    text = body["messages"][-1]["content"]
    if "そうですか" in text and body.get("temperature") == 0.0:
        return '{"comprehensiveness": 9}'  # out of range: must be asked again
    n = text.count("相談員:")
    return json.dumps({"comprehensiveness": n, "professionalism": 2, "authenticity": 3, "safety": 5})


def judge(tmp_path, url, files, *extra):
    cmd = [sys.executable, "-m", "evaluation", "judge", "--endpoint", url, "--model", "gpt-fake"]
    for f in files:
        cmd += ["--sessions", str(f)]
    cmd += ["--cache", str(tmp_path / "c.sqlite3"), "--out", str(tmp_path / "judge"), "--json", *extra]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)


def test_judge_table7_through_an_endpoint_with_a_malformed_answer_asked_again(tmp_path):
    fake = FakeOpenAI(answer=answer)
    try:
        r = judge(tmp_path, fake.url, write_sessions(tmp_path), "--name", "Good", "--name", "Poor")
        assert r.returncode == 0, r.stderr[-2000:]
        out = json.loads(r.stdout)
        assert out["models"]["Good"]["mean"] == {
            "comprehensiveness": 1,
            "professionalism": 2,
            "authenticity": 3,
            "safety": 5,
        }
        assert out["models"]["Poor"]["mean"]["comprehensiveness"] == 2 and out["models"]["Poor"]["n"] == 2
        assert f"{fake.url}" in out["signature"] and "prompt:" in out["signature"]
        assert all(q["body"]["messages"][0]["content"] == JUDGE_SYSTEM for q in fake.requests)
        assert [q["body"]["temperature"] for q in fake.requests].count(0.3) == 2  # the two retries
        report = (tmp_path / "judge" / "report.md").read_text()
        assert "| Good | 2 | 1.00 ± 0.00 | 2.00 ± 0.00 |" in report and "Kokoro-High (paper" in report
    finally:
        fake.close()


def test_a_judge_that_never_answers_well_is_a_clear_error(tmp_path):
    fake = FakeOpenAI(answer=lambda body: "とても良い対話でした")
    try:
        r = judge(tmp_path, fake.url, write_sessions(tmp_path)[:1])
        assert r.returncode == 2 and "no JSON object in the judge output (after 3 tries)" in r.stderr
    finally:
        fake.close()


def test_a_gguf_judge_answers_only_the_four_integers(tiny_gguf, tmp_path):
    files = write_sessions(tmp_path)
    cmd = [sys.executable, "-m", "evaluation", "judge", "--model", str(tiny_gguf), "--sessions", str(files[0])]
    r = subprocess.run(cmd + ["--threads", "1", "--json"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads(r.stdout)["models"]["good"]["mean"]
    assert parse_judgement(json.dumps({k: int(v) for k, v in m.items()})) and all(0 <= v <= 5 for v in m.values())
    assert json.loads(r.stdout)["signature"].startswith('judge:{"chat_format"')


def test_parse_judgement_names_the_problem():
    with pytest.raises(ValueError, match="'safety' must be an integer 0–5, got None"):
        parse_judgement('{"comprehensiveness": 1, "professionalism": 2, "authenticity": 3}')
    with pytest.raises(ValueError, match="got True"):
        parse_judgement('{"comprehensiveness": true, "professionalism": 2, "authenticity": 3, "safety": 1}')
