"""The scale-out deployment for real: the bot against llama-cpp-python's own OpenAI-compatible
server (`python -m llama_cpp.server`) on loopback, serving the tiny GGUF."""

import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import free_port, quiesce

pytest.importorskip("fastapi", reason="llama_cpp.server needs requirements/server.txt")


@pytest.fixture
def server(tiny_gguf):
    port = free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(tiny_gguf), "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--n_ctx", "1024", "--n_threads", "1", "--seed", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while True:  # wait for the server to answer, not for a fixed time
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        try:
            with urllib.request.urlopen(url + "/models", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        assert time.monotonic() < deadline, "llama_cpp.server did not come up in 120 s"
        time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def test_the_bot_serves_a_session_through_a_real_llama_cpp_server(server, tiny_gguf, tmp_path):
    from bot.backends import LlamaBackend
    from bot.emulator.client import Emulator

    emu = Emulator(
        environ={"KOKORO_BACKEND": "openai", "KOKORO_OPENAI_URL": server, "KOKORO_CHAT_FORMAT": "gemma"},
        max_tokens=12,
        db_path=str(tmp_path / "bot.sqlite3"),
        quiet_gap_s=0.2,
        tick_s=0.1,
        retry_base_s=0.01,
    )
    prompts = []
    backend = emu.runtime.engine.backend
    real = backend.generate
    usage = []
    backend.generate = lambda key, prompt: (
        prompts.append(prompt) or (real(key, prompt), usage.append(backend.last_usage))[0]
    )
    try:
        user = "U" + "5" * 32
        emu.runtime.engine.store.update_user(user, consent_at=time.time())
        for text in ("仕事のことで相談したいです", "上司に毎日怒られていて、つらいです"):
            n = len(emu.fake.delivered(user))
            emu.text(user, text)
            emu.fake.wait_for(n + 1, 120, user)
            quiesce(emu, 120)
        got = [m["text"] for m in emu.fake.delivered(user)]
        sess = emu.runtime.engine.store.open_session(user)
        replies = [r["text"] for r in emu.runtime.engine.store.turns(sess["id"]) if r["role"] == "counselor"]
    finally:
        emu.close()
    assert prompts and replies and all(r in got for r in replies)
    # the server's reply is the one the in-process backend gives for the same prompt (greedy)
    local = LlamaBackend(emu.settings.__class__.load(environ={}, counselor_gguf=str(tiny_gguf), max_tokens=12))
    assert local.generate("x", prompts[-1]) == replies[-1]
    # the server evaluated exactly our rendered prompt: no second BOS, nothing cut
    assert [u["prompt_tokens"] for u in usage] == [local.count_tokens(p) for p in prompts]
