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


# chosen on 6 replayed test sessions (README "Bot"): a hard ban (-inf) of every earlier 3-gram made
# the demo drift into bracketed fragments 「（ありがとうございます。）」; a penalty of 4 logits keeps it fluent
# and took near-duplicates from 63 % to 0 % there (4-grams banned: 0 % too, but more re-asks)
BAN_N, BAN_PENALTY = 3, 4.0


class NgramBan:
    """A llama.cpp logits processor that penalises (``penalty`` logits; inf forbids) the next token
    when it would complete a token ``n``-gram of the given texts (this session's earlier counselor
    turns): the second try at a reply that repeated the session, so it does not copy them again.
    Applies to generated tokens only."""

    def __init__(self, llm, texts, n_prompt: int, n: int = 3, penalty: float = float("inf")):
        self.n, self.n_prompt, self.penalty = n, n_prompt, penalty
        self.ban: dict[tuple[int, ...], set[int]] = {}
        for t in texts:
            ids = llm.tokenize(t.encode("utf-8"), add_bos=False, special=False)
            for i in range(len(ids) - n + 1):
                self.ban.setdefault(tuple(ids[i : i + n - 1]), set()).add(ids[i + n - 1])

    def __call__(self, input_ids, scores):
        gen = input_ids[self.n_prompt :]
        if len(gen) >= self.n - 1:
            banned = self.ban.get(tuple(int(x) for x in gen[len(gen) - self.n + 1 :]))
            if banned:
                idx = list(banned)
                scores[idx] = -float("inf") if self.penalty == float("inf") else scores[idx] - self.penalty
        return scores


def reply(llm, tokens: list[int], stops, decoding: dict, avoid=()) -> tuple[str, dict]:
    """The counselor's next turn: one greedy (or configured) completion; when it near-duplicates or
    re-asks one of ``avoid`` (``kokoro.conversation``), a second completion penalised for copying a
    token 3-gram of them (``NgramBan``), and the better of the two. The prompt's KV is reused by the second try,
    so it costs its generated tokens only. Returns the text and what was done: tries, the last usage,
    ``generated``, the tokens llama.cpp decoded for the replies (not for the prompt), and ``finish``,
    llama.cpp's finish reason of the text returned ("length": cut at ``max_tokens``)."""
    from llama_cpp import LogitsProcessorList

    from .conversation import choose, repeats

    out = llm.create_completion(tokens, stop=list(stops), **decoding)
    first = out["choices"][0]["text"].strip()
    gen = lambda o: max(0, o.get("usage", {}).get("completion_tokens", 0) - 1)  # the last one is never decoded
    finish = {first: out["choices"][0].get("finish_reason")}
    info = {"tries": 1, "usage": out.get("usage", {}), "generated": gen(out), "finish": finish[first]}
    if not avoid or not repeats(first, avoid):
        return first, info
    ban = NgramBan(llm, avoid, n_prompt=len(tokens), n=BAN_N, penalty=BAN_PENALTY)
    out = llm.create_completion(tokens, stop=list(stops), logits_processor=LogitsProcessorList([ban]), **decoding)
    second = out["choices"][0]["text"].strip()
    finish.setdefault(second, out["choices"][0].get("finish_reason"))
    text = choose([second, first], avoid) if second else first
    info = {
        "tries": 2,
        "usage": out.get("usage", {}),
        "generated": info["generated"] + gen(out),
        "finish": finish[text],
    }
    return text, info
