"""Every GPU-only check we have, in one prepared run for the day a GPU machine is lent (issue 35).

    python scripts/gpu_check.py --dry-run                 # here: the plan, the wheels, the command
    scripts/gpu_wheels.sh                                 # here: download the wheels into .gpu_wheels/
    # on the lent machine (carry .gpu_wheels):
    pip install --no-index --no-deps .gpu_wheels/*.whl && python scripts/gpu_check.py --out $OUT

It writes ``gpu_check.json`` and ``gpu_check.md`` under ``--out`` and stays within ``--budget``
seconds, skipping (and saying so) what does not fit. The checks:

1. env: GPU, memory, CUDA, library versions, which of our training requirements are missing.
2. qlora: a model with Llama-3.1-8B's widths (random weights, no hub) and ``--layers`` layers,
   loaded in 4-bit NF4 by ``training.lm.load_model`` and stepped by the project's Trainer with
   ``training.lm.training_arguments`` at the paper preset's sequence length and batch, on
   synthetic token ids: tokens/s, peak memory, and ``--plan``'s prediction for the same settings
   beside it (and the plan for the full 32 layers).
3. loss: one optimizer step of the tiny preset on CPU and on CUDA, same weights, data and seed:
   the first losses side by side.
4. llama: llama.cpp offload, if the installed llama-cpp-python was built with GPU support.

On a machine without CUDA every check runs on the CPU (``--tiny`` shrinks the widths), so the
script is known to work before it meets a GPU (tests/test_gpu_check.py)."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

WHEELS = REPO / ".gpu_wheels"
LIMIT_BYTES = 64 << 20  # what one device call carries, the working tree included
DEFAULT_BUDGET = 540
# Llama-3.1-8B's config.json (meta-llama/Llama-3.1-8B), the widths the paper's counselor trains
LLAMA_31_8B = dict(
    vocab_size=128256,
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    max_position_embeddings=131072,
    rope_theta=500000.0,
    rms_norm_eps=1e-5,
    tie_word_embeddings=False,
    bos_token_id=128000,
    eos_token_id=128009,
)
# seconds each check is expected to take on an H100 (make the base, load, steps); the dry run prints them
ESTIMATES = {"env": 5, "loss": 45, "qlora": 240, "llama": 60}
# of our training requirements, what the GPU checks import and the lent machine lacks (it has
# torch, transformers, peft and accelerate)
CARRIED = ("bitsandbytes",)


def pins() -> list[tuple[str, str]]:
    """(name, version) of each pinned training requirement."""
    lines = (REPO / "requirements" / "training.txt").read_text().splitlines()
    return [m.groups() for m in (re.match(r"^([A-Za-z0-9_.-]+)==([\w.]+)", x.strip()) for x in lines) if m]


# ------------------------------------------------------------------ the plan (no torch needed)
def wheels_needed() -> list[dict]:
    """The requirements to carry, with the pinned version and, once `scripts/gpu_wheels.sh` has
    run, the downloaded file and its size."""
    out = []
    for name, version in pins():
        if name.lower() not in CARRIED:
            continue
        found = sorted(WHEELS.glob(f"{name.replace('-', '_')}-{version}-*.whl")) if WHEELS.is_dir() else []
        out.append(
            {
                "name": name,
                "version": version,
                "file": str(found[0].relative_to(REPO)) if found else None,
                "bytes": found[0].stat().st_size if found else None,
            }
        )
    return out


def tree_bytes() -> int:
    """What travels besides the wheels: the tracked files."""
    import subprocess

    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True).stdout.split("\0")
    return sum((REPO / f).stat().st_size for f in files if f and (REPO / f).is_file())


def dry_run(budget: int) -> dict:
    wheels = wheels_needed()
    total = sum(w["bytes"] or 0 for w in wheels)
    tree = tree_bytes()
    return {
        "budget_s": budget,
        "checks": [{"name": k, "estimate_s": v} for k, v in ESTIMATES.items()],
        "estimate_total_s": sum(ESTIMATES.values()),
        "wheels": wheels,
        "wheel_total_bytes": total,
        "wheels_downloaded": all(w["file"] for w in wheels),
        "tree_bytes": tree,
        "limit_bytes": LIMIT_BYTES,
        "fits": total + tree <= LIMIT_BYTES,
        "carry": [".gpu_wheels"],
        "device_command": (
            "pip install --no-index --no-deps .gpu_wheels/*.whl && "
            f"python scripts/gpu_check.py --out $OUT --budget {budget}"
        ),
        "timeout_s": min(600, budget + 45),
        "download": "scripts/gpu_wheels.sh",
    }


# ------------------------------------------------------------------ the checks
def check_env() -> dict:
    from importlib import metadata

    import torch

    def installed(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    dists = ("torch", "transformers", "peft", "accelerate", "bitsandbytes", "llama_cpp_python")
    versions = {d: installed(d) for d in dists}
    missing = [name for name, _ in pins() if installed(name) is None]
    out = {"versions": versions, "missing_requirements": missing, "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        out.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1), cuda_version=torch.version.cuda)
    return out


def make_base(out: Path, widths: dict, layers: int, dtype: str, device: str, seed: int = 0) -> Path:
    """A Llama model folder with random weights (no tokenizer: the steps use synthetic ids)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    conf = LlamaConfig(**dict(widths, num_hidden_layers=layers))
    with torch.device(device):
        model = LlamaForCausalLM(conf).to(getattr(torch, dtype))
    model.save_pretrained(out)
    del model
    return out


def config_only(out: Path, widths: dict) -> Path:
    """A folder with only config.json (enough for --plan, which builds the model on the meta device)."""
    from transformers import LlamaConfig

    LlamaConfig(**widths).save_pretrained(out)
    return out


def synthetic(vocab: int, batch: int, seq: int, n: int, seed: int) -> list[dict]:
    """``n`` examples of ``seq`` random ids; the second half is the target (as a counselor turn is)."""
    import random

    rng = random.Random(seed)
    out = []
    for _ in range(n * batch):
        ids = [rng.randrange(3, vocab) for _ in range(seq)]
        out.append({"input_ids": ids, "labels": [-100] * (seq // 2) + ids[seq // 2 :]})
    return out


def steps(cfg, base: Path, device: str, n: int, work: Path, seed: int = 0) -> dict:
    """``n`` optimizer steps through the project's own model loading, Trainer and arguments."""
    import torch
    from transformers import AutoConfig, TrainerCallback, set_seed

    from training.examples import collate_left
    from training.lm import load_model, make_trainer_class, training_arguments

    set_seed(seed)
    vocab = AutoConfig.from_pretrained(base).vocab_size
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.time()
    model = load_model(cfg, base, device)
    loaded = time.time() - t0
    ticks: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if device == "cuda":
                torch.cuda.synchronize()
            ticks.append(time.time())

    args = training_arguments(
        cfg,
        work,
        device,
        max_steps=n,
        gradient_accumulation_steps=1,
        warmup_steps=0,
        eval_strategy="no",
        save_strategy="no",
        load_best_model_at_end=False,
        eval_on_start=False,
        logging_steps=1,
        disable_tqdm=True,
    )
    data = synthetic(vocab, cfg.per_device_batch, cfg.max_seq_len, n, seed)
    trainer = make_trainer_class()(
        model=model, args=args, train_dataset=data, data_collator=lambda b: collate_left(b, 0), callbacks=[Clock()]
    )
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    tokens = cfg.per_device_batch * cfg.max_seq_len
    out = {"device": device, "steps": n, "load_s": round(loaded, 1), "losses": losses}
    if len(ticks) >= 2:  # the first step warms up (kernels, allocator): timed from its end
        out["tokens_per_s"] = round(tokens * (len(ticks) - 1) / (ticks[-1] - ticks[0]), 1)
    if device == "cuda":
        out["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
        out["peak_reserved_gib"] = round(torch.cuda.max_memory_reserved() / 2**30, 3)
    del trainer, model
    if device == "cuda":
        torch.cuda.empty_cache()
    return out


def check_qlora(work: Path, device: str, layers: int, n: int, tiny: bool) -> dict:
    from training.config import build_config
    from training.plan import plan
    from training.tiny import TINY

    widths = dict(LLAMA_31_8B, **TINY, vocab_size=512) if tiny else LLAMA_31_8B
    preset = "tiny" if tiny else "paper"
    base = make_base(work / "base", widths, layers, "bfloat16" if not tiny else "float32", device)
    cfg = build_config("counselor", preset, overrides={"base_model": str(base), "device": device})
    out = {"preset": preset, "widths": "tiny" if tiny else "Llama-3.1-8B", "layers": layers}
    out["batch"], out["seq"], out["optim"] = cfg.per_device_batch, cfg.max_seq_len, cfg.optim
    out["plan"] = plan(cfg, base)["gib"]
    out["measured"] = steps(cfg, base, device, n, work / "run")
    if "peak_allocated_gib" in out["measured"]:
        predicted = out["plan"]["total"] - out["plan"]["allowance"]
        out["measured_over_plan"] = round(out["measured"]["peak_allocated_gib"] / predicted, 3)
    full = config_only(work / "full", widths)  # the plan for all the layers, on the meta device
    out["plan_full_layers"] = plan(cfg, full)["gib"]
    return out


def check_loss(work: Path, devices: list[str]) -> dict:
    """One step of the tiny preset from the same weights on each device: the first losses."""
    from training.config import build_config
    from training.tiny import TINY

    base = make_base(
        work / "tiny-base", dict(LLAMA_31_8B, **TINY, vocab_size=512), TINY["num_hidden_layers"], "float32", "cpu"
    )
    first = {}
    for d in devices:
        cfg = build_config("counselor", "tiny", overrides={"base_model": str(base), "device": d})
        first[d] = steps(cfg, base, d, 1, work / f"loss-{d}")["losses"][0]
    a, b = first[devices[0]], first[devices[-1]]
    rel = abs(a - b) / max(abs(a), 1e-9)
    return {"first_loss": first, "relative_difference": rel, "equal_within_bf16": rel <= 1e-2}


def check_llama() -> dict:
    try:
        import llama_cpp
    except ImportError:
        return {"skipped": "llama-cpp-python is not installed on this machine"}
    if not llama_cpp.llama_supports_gpu_offload():
        return {
            "skipped": "this llama-cpp-python was built without GPU offload, and a CUDA build cannot be brought: "
            "PyPI has no wheel, and its source (llama_cpp_python-0.3.36.tar.gz, 73 MiB) alone is over the "
            "64 MiB a device call carries"
        }
    return {"skipped": "a CUDA build is present but no GGUF small enough to carry is packaged yet"}


CHECKS = ("env", "loss", "qlora", "llama")


def run(out: Path, budget: int, only: list[str], layers: int, n: int, tiny: bool) -> dict:
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    t0 = time.time()
    report: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "budget_s": budget, "device": device, "checks": {}}
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        work = Path(tmp)
        for name in only:
            left = budget - (time.time() - t0)
            if ESTIMATES[name] > left:
                report["checks"][name] = {"skipped": f"needs about {ESTIMATES[name]} s, {left:.0f} s left"}
                continue
            started = time.time()
            try:
                if name == "env":
                    result = check_env()
                elif name == "loss":
                    result = check_loss(work, ["cpu", device])
                elif name == "qlora":
                    result = check_qlora(work, device, layers, n, tiny)
                else:
                    result = check_llama()
            except Exception as e:  # one check failing is a finding, not the end of the run
                result = {"error": f"{type(e).__name__}: {str(e)[:500]}"}
            result["seconds"] = round(time.time() - started, 1)
            report["checks"][name] = result
            write(out, report)  # what ran is kept even if a later check is killed
    report["seconds"] = round(time.time() - t0, 1)
    write(out, report)
    return report


def markdown(report: dict) -> str:
    """The short report: one line per check, the figures that matter."""
    lines = [f"# GPU check ({report.get('device')}, {report.get('started')})", ""]
    lines += ["| check | result | seconds |", "| --- | --- | --- |"]
    for name, r in report.get("checks", {}).items():
        if "skipped" in r or "error" in r:
            what = f"skipped: {r['skipped']}" if "skipped" in r else f"**error**: {r['error']}"
        elif name == "env":
            v, missing = r["versions"], ", ".join(r["missing_requirements"]) or "none"
            what = f"{r.get('gpu', 'no GPU')}, CUDA {r.get('cuda_version')}, torch {v.get('torch')}, "
            what += f"bitsandbytes {v.get('bitsandbytes')}; missing: {missing}"
        elif name == "qlora":
            m = r["measured"]
            what = (
                f"{r['widths']} × {r['layers']} layers, batch {r['batch']} × {r['seq']}: {m.get('tokens_per_s')} tok/s"
            )
            if "peak_allocated_gib" in m:
                what += f", peak {m['peak_allocated_gib']} GiB vs plan {r['plan']['total']} GiB"
                what += f" (ratio {r.get('measured_over_plan')})"
            what += f"; plan for all layers {r['plan_full_layers']['total']} GiB"
        elif name == "loss":
            what = ", ".join(f"{d} {v:.5f}" for d, v in r["first_loss"].items())
            same = "equal" if r["equal_within_bf16"] else "DIFFERENT"
            what += f" (relative difference {r['relative_difference']:.2e}, {same})"
        else:
            what = json.dumps(r)
        lines.append(f"| {name} | {what} | {r.get('seconds', '')} |")
    return "\n".join(lines) + "\n"


def write(out: Path, report: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "gpu_check.md").write_text(markdown(report))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry-run", action="store_true", help="print the plan (JSON) and exit")
    p.add_argument("--budget", type=int, default=DEFAULT_BUDGET, help="seconds for all checks (default 540)")
    p.add_argument("--out", default=os.environ.get("OUT", "gpu-check"), help="report folder (default $OUT)")
    p.add_argument("--checks", default=",".join(CHECKS), help=f"comma-separated, from {','.join(CHECKS)}")
    p.add_argument("--layers", type=int, default=4, help="layers of the 8B-width model (32 = the whole 8B)")
    p.add_argument("--steps", type=int, default=6, help="optimizer steps of the qlora check")
    p.add_argument("--tiny", action="store_true", help="tiny widths and the tiny preset (a CPU run of the script)")
    p.add_argument("--summarize", metavar="JSON", help="print the Markdown of a report written earlier")
    a = p.parse_args(argv)
    if a.summarize:
        print(markdown(json.loads(Path(a.summarize).read_text())), end="")
        return 0
    if a.dry_run:
        print(json.dumps(dry_run(a.budget), indent=1))
        return 0
    only = [c for c in a.checks.split(",") if c]
    unknown = set(only) - set(CHECKS)
    if unknown:
        p.error(f"unknown checks {sorted(unknown)}; choose from {','.join(CHECKS)}")
    report = run(Path(a.out), a.budget, only, a.layers, a.steps, a.tiny)
    print(markdown(report), end="")
    return 1 if any("error" in r for r in report["checks"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
