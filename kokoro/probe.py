"""Load a GGUF (and its LoRA) in a child process and generate a few tokens from a prompt of several
tokens (a batch, the path that crashed on AMX), so a crash of llama.cpp — a signal, which no
``try`` catches — becomes a ``ProbeError`` that names the setting to change, never a dead parent.

``python -m bot doctor`` runs it and prints the outcome; the bot runs it once before it serves
(``probe_once``: a success is remembered per model, adapter, build and setting, so a restart does not
load the model twice). The probe's prompt is fixed text: no counseling text reaches its output.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata as md
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .paths import cache_dir

CHILD = [sys.executable, "-m", "kokoro.probe"]  # the child's command line (tests put a crashing one here)
PROMPT = "こんにちは。今日は少しお話を聞いてもらえますか。"
FIX = {
    signal.SIGSEGV: "KOKORO_EXTRA_BUFTS=off (llama.cpp's repacked CPU layouts; docs/cpu.md)",
    signal.SIGILL: "a llama-cpp-python built on this machine (pip install --no-cache-dir --force-reinstall "
    "llama-cpp-python): this build uses instructions this CPU lacks",
    signal.SIGBUS: "KOKORO_EXTRA_BUFTS=off, and check the model file is complete",
    signal.SIGABRT: "the model file and KOKORO_GPU_LAYERS (llama.cpp aborted; its last lines are above)",
    signal.SIGKILL: "memory: the process was killed (out of memory?); a smaller model or KOKORO_N_CTX",
}


class ProbeError(RuntimeError):
    """The model could not be loaded and run in a child process; the message says what to change."""


def _describe(rc: int, tail: str, setting: str) -> str:
    if rc < 0:
        sig = signal.Signals(-rc)
        fix = FIX.get(sig, "KOKORO_EXTRA_BUFTS=off, then KOKORO_GPU_LAYERS=0")
        if sig == signal.SIGSEGV and setting == "off":
            fix = "KOKORO_GPU_LAYERS=0 and a fresh build of llama-cpp-python (extra buffer types are already off)"
        return f"llama.cpp crashed ({sig.name}) while loading the model or generating a few tokens. Try {fix}."
    return f"loading the model or generating a few tokens failed (exit {rc}): {tail.strip()[-600:]}"


def probe(
    model: str,
    lora: str | None = None,
    *,
    extra_bufts: str = "auto",
    n_threads: int = 0,
    n_gpu_layers: int = 0,
    timeout_s: float = 600.0,
) -> dict:
    """Run the probe child; its report (layout, tokens, seconds) or ProbeError."""
    cmd = CHILD + ["--model", str(model), "--threads", str(n_threads)]
    cmd += ["--gpu-layers", str(n_gpu_layers)] + (["--lora", str(lora)] if lora else [])
    env = dict(os.environ, KOKORO_EXTRA_BUFTS=extra_bufts)
    try:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise ProbeError(f"loading the model and generating a few tokens took over {timeout_s:.0f} s") from None
    if r.returncode != 0:
        raise ProbeError(_describe(r.returncode, r.stderr, extra_bufts))
    lines = [x for x in r.stdout.splitlines() if x.startswith("{")]
    if not lines:
        raise ProbeError(f"the probe printed no report: {r.stderr.strip()[-600:]}")
    return json.loads(lines[-1])


def _fingerprint(path: str | None) -> list:
    if not path:
        return [None]
    st = os.stat(path)
    return [os.path.abspath(path), st.st_size, int(st.st_mtime)]


def probe_key(model: str, lora: str | None, extra_bufts: str, n_gpu_layers: int) -> str:
    from .llm import build_features, cpu_flags, extra_bufts_for

    try:
        version = md.version("llama-cpp-python")
    except md.PackageNotFoundError:
        version = None
    build = build_features()
    decision = extra_bufts_for(extra_bufts, cpu_flags(), build)[0]
    parts = [_fingerprint(model), _fingerprint(lora), version, sorted(build.items()), decision, n_gpu_layers]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:24]


def probe_once(model: str, lora: str | None = None, *, extra_bufts: str = "auto", **kw) -> dict:
    """``probe`` unless this model, adapter, build and decision passed before on this machine."""
    key = probe_key(model, lora, extra_bufts, kw.get("n_gpu_layers", 0))
    mark = cache_dir() / "probe" / f"{key}.json"
    if mark.is_file():
        return dict(json.loads(mark.read_text()), cached=True)
    report = probe(model, lora, extra_bufts=extra_bufts, **kw)
    mark.parent.mkdir(parents=True, exist_ok=True)
    tmp = mark.with_suffix(".tmp")
    tmp.write_text(json.dumps(report))
    tmp.replace(mark)
    return dict(report, cached=False)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kokoro.probe", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--lora")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--gpu-layers", type=int, default=0)
    ap.add_argument("--tokens", type=int, default=8)
    a = ap.parse_args(argv)
    from .llm import cpu_layout, open_llama

    use, why = cpu_layout()
    t = time.perf_counter()
    llm = open_llama(Path(a.model), lora_path=a.lora, n_ctx=256, n_threads=a.threads, n_gpu_layers=a.gpu_layers)
    loaded = time.perf_counter() - t
    t = time.perf_counter()
    out = llm.create_completion(PROMPT, max_tokens=a.tokens, temperature=0.0)
    report = {
        "ok": True,
        "extra_bufts": use,
        "layout": why,
        "prompt_tokens": out["usage"]["prompt_tokens"],
        "generated_tokens": out["usage"]["completion_tokens"],
        "load_s": round(loaded, 2),
        "generate_s": round(time.perf_counter() - t, 2),
    }
    print(json.dumps(report, ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
