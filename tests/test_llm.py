"""Every llama.cpp model the project opens goes through kokoro.llm.open_llama, so GPU offload and
flash attention reach all of them (bot, scorer GGUF, evaluation, convert's parity, benchmarks)."""

import re

import pytest
from conftest import REPO

PACKAGES = ("bot", "evaluation", "kokoro", "convert", "training", "scripts")


def test_no_module_constructs_llama_itself():
    offenders = []
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            if path == REPO / "kokoro" / "llm.py":
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if re.search(r"(?<![\w.])Llama\(", line):
                    offenders.append(f"{path.relative_to(REPO)}:{n}")
    assert not offenders, f"open models with kokoro.llm.open_llama: {offenders}"


class Recorder:
    made: list = []

    def __init__(self, **kw):
        Recorder.made.append(kw)


@pytest.mark.parametrize(
    "layers,flash,expect",
    [(0, "auto", False), (-1, "auto", True), (20, "auto", True), (0, "on", True), (-1, "off", False)],
)
def test_offload_turns_flash_attention_on(monkeypatch, layers, flash, expect):
    import llama_cpp

    from kokoro.llm import open_llama

    Recorder.made = []
    monkeypatch.setattr(llama_cpp, "Llama", Recorder)
    open_llama("m.gguf", n_gpu_layers=layers, flash_attn=flash, n_ctx=64)
    assert Recorder.made == [
        {"model_path": "m.gguf", "n_gpu_layers": layers, "flash_attn": expect, "n_threads": None, "verbose": False}
        | {"seed": 0, "n_ctx": 64}
    ]


def test_the_scorer_gguf_and_the_bot_settings_pass_offload_through(monkeypatch):
    import llama_cpp

    from bot.config import BotConfigError, Settings
    from kokoro import gguf_scorer

    Recorder.made = []
    monkeypatch.setattr(llama_cpp, "Llama", Recorder)
    monkeypatch.setattr(gguf_scorer, "from_gguf", lambda llm, fmt: type("F", (), {"name": fmt})())
    gguf_scorer.GgufScorer("s.gguf", n_gpu_layers=-1)
    assert Recorder.made[0]["n_gpu_layers"] == -1 and Recorder.made[0]["flash_attn"] is True
    with pytest.raises(BotConfigError, match="KOKORO_FLASH_ATTN"):
        Settings.load(environ={"KOKORO_FLASH_ATTN": "maybe"})
