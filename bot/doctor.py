"""`python -m bot doctor`: what to run on a new machine before going live. Prints the CPU
features llama.cpp sees, the build, the layout decision and the model and adapter the bot will
serve, then loads them in a child process and generates a few tokens (kokoro.probe). A crash is
reported as a message naming the setting to change; the exit status is 1 on any failure."""

from __future__ import annotations

import importlib.metadata as md
import sys

from .config import DEMO, BotConfigError, Settings

SHOWN_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")


def run(config_file: str | None = None, out=sys.stdout) -> int:
    from kokoro.llm import build_features, cpu_flags, cpu_info, extra_bufts_for
    from kokoro.probe import ProbeError

    from .backends import probe_counselor

    say = lambda k, v: print(f"{k:<12} {v}", file=out, flush=True)
    s = Settings.load(config_file)
    flags = cpu_flags()
    build = build_features()
    say("cpu", cpu_info().get("model name", "unknown"))
    say("cpu flags", " ".join(f for f in SHOWN_FLAGS if f in flags) or "(none of " + ", ".join(SHOWN_FLAGS) + ")")
    try:
        version = md.version("llama-cpp-python")
    except md.PackageNotFoundError:
        version = "not installed"
    say("llama.cpp", f"llama-cpp-python {version}; built with " + " ".join(k for k, v in build.items() if v))
    use, why = extra_bufts_for(s.extra_bufts, flags, build)
    say("layout", why)
    say("line", "credentials set" if s.channel_secret and s.access_token else "credentials missing (serve needs them)")
    if s.backend != "llama":
        say("backend", f"openai at {s.openai_url}: the model runs there (start it with `python -m kokoro.llm_server`)")
        return 0
    if s.counselor_gguf == DEMO:
        s.resolve_demo()
    say("model", s.counselor_gguf)
    say("adapter", s.counselor_lora or "none")
    say("offload", f"{s.n_gpu_layers} GPU layers, {s.n_threads or 'default'} threads")
    try:
        r = probe_counselor(s, once=False)
    except ProbeError as e:
        say("probe", f"FAILED: {e}")
        return 1
    say(
        "probe",
        f"ok: loaded in {r['load_s']} s, {r['prompt_tokens']} prompt tokens and "
        f"{r['generated_tokens']} generated in {r['generate_s']} s (in a child process)",
    )
    return 0


def main(config_file: str | None = None) -> int:
    try:
        return run(config_file)
    except BotConfigError as e:
        print(f"doctor: {e}", file=sys.stderr)
        return 1
