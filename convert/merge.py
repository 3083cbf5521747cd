"""Merge a LoRA adapter into its base in 16/32-bit (never into 4-bit weights) and save HF safetensors."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .llamacpp import ConvertError


def read_run(run_dir: Path) -> dict:
    run_json = run_dir / "run.json"
    if not run_json.is_file():
        raise ConvertError(f"{run_dir} has no run.json; pass a run folder made by `python -m training`")
    if not (run_dir / "adapter" / "adapter_model.safetensors").is_file():
        raise ConvertError(f"{run_dir}/adapter/adapter_model.safetensors is missing; did training finish?")
    return json.loads(run_json.read_text(encoding="utf-8"))


def base_params_bytes(base: Path) -> int:
    return sum(f.stat().st_size for f in base.glob("*.safetensors"))


def check_memory(base: Path, dtype: str) -> None:
    """A merge holds the whole base in memory: refuse early with a way out when it cannot fit."""
    need = base_params_bytes(base) * (2 if dtype == "float32" else 1) + 2 * 2**30
    try:
        avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return
    if need > avail:
        raise ConvertError(
            f"merging needs about {need / 2**30:.1f} GiB of RAM but {avail / 2**30:.1f} GiB is free "
            "(an 8B base in bf16 needs ~17 GB). Free memory, use a larger machine, or serve the "
            "adapter GGUF on a base GGUF with runtime LoRA (--adapter-only)"
        )


def check_disk(base: Path, out: Path, n_quants: int) -> None:
    """Merged HF + f16 GGUF (+ base GGUF) + quantized files: refuse before writing when they cannot fit."""
    size = base_params_bytes(base)
    need = int(size * 3.2 + size * 0.6 * n_quants) + 2**28
    out.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(out).free
    if need > free:
        raise ConvertError(
            f"{out} has {free / 2**30:.1f} GiB free but the conversion writes about "
            f"{need / 2**30:.1f} GiB (merged HF model, f16 GGUF, {n_quants} quantized file(s)); "
            "free disk space or pass --out on a larger disk"
        )


def merge(run: dict, run_dir: Path, base: Path, out: Path, dtype: str) -> Path:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from kokoro.chat_formats import ChatFormat

    if not (base / "config.json").is_file():
        raise ConvertError(f"base model {base} has no config.json; pass --base PATH to the HF base folder")
    check_memory(base, dtype)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=getattr(torch, dtype), device_map={"": "cpu"})
    model = PeftModel.from_pretrained(model, run_dir / "adapter").merge_and_unload()
    tok = AutoTokenizer.from_pretrained(run_dir / "adapter")
    fmt = ChatFormat.from_dict(run["chat_format"])
    tok.chat_template = fmt.template  # the template training used goes into the GGUF
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    for name in ("tokenizer.model",):  # transformers 5 does not write it; the converter needs it
        for src in (run_dir / "adapter" / name, base / name):
            if src.is_file():
                shutil.copy(src, tmp / name)
                break
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out
