"""The one place the project opens a llama.cpp model (bot, scorer GGUF, evaluation, convert's
parity), so GPU offload and flash attention reach every ``Llama()`` alike.

``flash_attn``: "auto" turns it on when layers are offloaded (llama-cpp-python's own default is
off, unlike llama.cpp's auto), "on" / "off" force it. Per-sequence KV state (``save_seq`` /
``load_seq``) lets one model serve several sessions: only the KV of the sequence is copied, not
the logits, so a session's prefix survives while others use the context.
"""

from __future__ import annotations

import ctypes

FLASH_ATTN = ("auto", "on", "off")


def flash_attn_for(n_gpu_layers: int, flash_attn: str = "auto") -> bool:
    if flash_attn not in FLASH_ATTN:
        raise ValueError(f"flash_attn must be one of {FLASH_ATTN}, got {flash_attn!r}")
    return flash_attn == "on" or (flash_attn == "auto" and n_gpu_layers != 0)


def open_llama(model_path, *, n_gpu_layers: int = 0, flash_attn: str = "auto", n_threads: int = 0, **kw):
    from llama_cpp import Llama

    return Llama(
        model_path=str(model_path),
        n_gpu_layers=n_gpu_layers,
        flash_attn=flash_attn_for(n_gpu_layers, flash_attn),
        n_threads=n_threads or None,
        verbose=False,
        seed=kw.pop("seed", 0),
        **kw,
    )


def save_seq(llm) -> tuple[bytes, list[int]]:
    """The KV cache of sequence 0 and the tokens it holds."""
    import llama_cpp

    size = llama_cpp.llama_state_seq_get_size(llm.ctx, 0)
    buf = (ctypes.c_uint8 * size)()
    n = llama_cpp.llama_state_seq_get_data(llm.ctx, buf, size, 0)
    return ctypes.string_at(buf, n), list(llm.input_ids[: llm.n_tokens])  # not buf[:n]: a list of ints


def load_seq(llm, state: tuple[bytes, list[int]] | None) -> None:
    """Empty the context, then (if given) restore a sequence saved by ``save_seq``."""
    import llama_cpp

    llm.reset()
    llm._ctx.kv_cache_clear()
    if not state:
        return
    data, ids = state
    buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
    if llama_cpp.llama_state_seq_set_data(llm.ctx, buf, len(data), 0) != len(data):
        llm._ctx.kv_cache_clear()  # could not restore: start this session's prefix afresh
        return
    llm.input_ids[: len(ids)] = ids
    llm.n_tokens = len(ids)
