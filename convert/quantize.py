"""Quantize a GGUF through the llama-cpp-python bindings; a failed run leaves no partial file."""

from __future__ import annotations

import ctypes
from pathlib import Path

from .llamacpp import ConvertError

QUANTS = {  # name → llama_ftype constant name
    "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0",
    "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K",
    "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
    "q5_0": "LLAMA_FTYPE_MOSTLY_Q5_0",
    "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
    "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0",
}


def parse_quants(spec: str) -> list[str]:
    names = [q.strip().lower() for q in spec.split(",") if q.strip()]
    bad = [q for q in names if q not in QUANTS]
    if bad:
        raise ConvertError(f"unknown quantization {bad}; supported: {', '.join(QUANTS)}")
    return names


def quantize(src: Path, dst: Path, name: str, threads: int = 0) -> Path:
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANTS[name])
    params.nthread = threads
    tmp = dst.with_name(dst.name + ".partial")
    tmp.unlink(missing_ok=True)
    try:
        rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params))
        if rc != 0 or not tmp.is_file():
            raise ConvertError(f"quantizing {src.name} to {name} failed (llama.cpp returned {rc})")
        tmp.replace(dst)
    finally:
        tmp.unlink(missing_ok=True)
    return dst
