"""The one place the project opens a llama.cpp model (bot, scorer GGUF, evaluation, convert's
parity, ``python -m kokoro.llm_server``), so GPU offload, flash attention and the CPU weight
layout reach every ``Llama()`` alike.

``flash_attn``: "auto" turns it on when layers are offloaded (llama-cpp-python's own default is
off, unlike llama.cpp's auto), "on" / "off" force it. Per-sequence KV state (``save_seq`` /
``load_seq``) lets one model serve several sessions: only the KV of the sequence is copied, not
the logits, so a session's prefix survives while others use the context.

``extra_bufts`` (``KOKORO_EXTRA_BUFTS``): whether llama.cpp may put weights in its *extra buffer
types*, the CPU backend's repacked layouts (CPU_REPACK for AVX2/AVX-512, and AMX on Intel CPUs
with Advanced Matrix Extensions). "auto" (the default) turns them off where AMX is present — the
CPU's flags or the build — and leaves them on everywhere else; "on" / "off" force it. Why: the
AMX kernel of the llama.cpp that llama-cpp-python 0.3.36 vendors, compiled by GCC 12 (Debian 12's
compiler, which builds our wheel from source), loads a tile configuration whose row and column
stores the compiler dropped, so ``ldtilecfg`` faults (SIGSEGV) at the first batch of more than one
token — the first prompt (docs/cpu.md has the disassembly and the cost).
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading

log = logging.getLogger("kokoro.llm")

FLASH_ATTN = ("auto", "on", "off")
EXTRA_BUFTS = ("auto", "on", "off")
AMX_CPU_FLAGS = ("amx_int8", "amx_tile", "amx_bf16")  # /proc/cpuinfo (Linux)
AMX_BUILD_FEATURES = ("AMX_INT8",)  # llama_print_system_info(): compiled into this build


class LayoutError(ValueError):
    """A CPU weight-layout setting that is not one of EXTRA_BUFTS."""


def flash_attn_for(n_gpu_layers: int, flash_attn: str = "auto") -> bool:
    if flash_attn not in FLASH_ATTN:
        raise ValueError(f"flash_attn must be one of {FLASH_ATTN}, got {flash_attn!r}")
    return flash_attn == "on" or (flash_attn == "auto" and n_gpu_layers != 0)


def cpu_info(path: str = "/proc/cpuinfo") -> dict[str, str]:
    """The first CPU's fields as the kernel lists them ("model name", "flags", …); empty where there
    is no /proc/cpuinfo."""
    out: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor's block is enough
                key, sep, value = line.partition(":")
                if sep:
                    out.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return out


def cpu_flags(path: str = "/proc/cpuinfo") -> set[str]:
    """The CPU's feature flags as the kernel lists them (empty where there is no /proc/cpuinfo)."""
    return set(cpu_info(path).get("flags", "").split())


def build_features() -> dict[str, bool]:
    """What this llama.cpp build was compiled with, from ``llama_print_system_info`` ("AMX_INT8 = 1 | …")."""
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode("utf-8", "replace")
    out = {}
    for part in info.replace("\n", "|").split("|"):
        key, sep, val = part.rpartition("=")
        key = key.split(":")[-1].strip()
        if sep and key:
            out[key] = val.strip() == "1"
    return out


def extra_bufts_for(setting: str, flags: set[str], build: dict[str, bool]) -> tuple[bool, str]:
    """The decision: (use llama.cpp's extra buffer types?, why). Pure, so every case is testable
    on any machine."""
    if setting not in EXTRA_BUFTS:
        raise LayoutError(f"KOKORO_EXTRA_BUFTS must be one of {', '.join(EXTRA_BUFTS)}, got {setting!r}")
    if setting == "on":
        return True, "extra buffer types on (KOKORO_EXTRA_BUFTS=on)"
    if setting == "off":
        return False, "extra buffer types off (KOKORO_EXTRA_BUFTS=off)"
    cpu = sorted(f for f in AMX_CPU_FLAGS if f in flags)
    built = sorted(f for f in AMX_BUILD_FEATURES if build.get(f))
    if cpu or built:
        where = ", ".join([f"CPU flags {' '.join(cpu)}"] * bool(cpu) + [f"build {' '.join(built)}"] * bool(built))
        return False, (
            f"extra buffer types off: AMX present ({where}); llama.cpp's AMX path segfaults in this build "
            "(docs/cpu.md); KOKORO_EXTRA_BUFTS=on turns them back on"
        )
    return True, "extra buffer types on (no AMX on this CPU or in this build)"


_layout_lock = threading.Lock()
_layout: dict = {}  # setting -> (use_extra_bufts, reason), decided once per process and setting


def cpu_layout(setting: str | None = None) -> tuple[bool, str]:
    """Decide (once per process and setting; logged once, no text) and install the decision, so
    every model llama-cpp-python loads from now on in this process — ours, and the ``Llama`` that
    ``llama_cpp.server`` builds — gets it. ``setting`` defaults to $KOKORO_EXTRA_BUFTS or "auto"."""
    setting = setting or os.environ.get("KOKORO_EXTRA_BUFTS") or "auto"
    with _layout_lock:
        if setting not in _layout:
            _layout[setting] = extra_bufts_for(setting, cpu_flags(), build_features())
            log.info("llama.cpp CPU weight layout: %s", _layout[setting][1])
        use, why = _layout[setting]
        _install(use)
    return use, why


def _install(use_extra_bufts: bool) -> None:
    """llama-cpp-python 0.3.36's ``Llama()`` takes no argument for ``use_extra_bufts``; it fills the
    model params from ``llama_model_default_params()`` looked up on its module at call time, so
    the default is wrapped once here and the wrapper sets the field the caller decided."""
    import llama_cpp.llama_cpp as C

    orig = getattr(C.llama_model_default_params, "_kokoro_orig", C.llama_model_default_params)

    def llama_model_default_params():
        p = orig()
        p.use_extra_bufts = use_extra_bufts
        return p

    llama_model_default_params._kokoro_orig = orig
    llama_model_default_params.use_extra_bufts = use_extra_bufts
    C.llama_model_default_params = llama_model_default_params


# ggml's log levels in the llama.cpp that llama-cpp-python 0.3.36 vendors: NONE 0, DEBUG 1, INFO 2, WARN 3,
# ERROR 4, CONT 5 (a line's continuation). llama-cpp-python's own table is of an older enum and prints
# every WARN as an error: on a CPU with repacked layouts `bot chat` opened with thirty lines of
# "llama_adapter_lora_init_impl: ... fallback to CPU" before the bot's first word. Here a warning is
# logged at INFO to the logger "llama.cpp" (shown where an operator turns INFO on), an error as one.
GGML_LEVELS = {0: logging.DEBUG, 1: logging.DEBUG, 2: logging.DEBUG, 3: logging.INFO, 4: logging.ERROR}
llama_log = logging.getLogger("llama.cpp")
_last_level = [logging.DEBUG]


def log_level_of(ggml_level: int) -> int:
    """The Python logging level of a llama.cpp log line (a continuation keeps its line's level)."""
    if ggml_level != 5:
        _last_level[0] = GGML_LEVELS.get(ggml_level, logging.ERROR)
    return _last_level[0]


def _route_llama_logs() -> None:
    import llama_cpp

    global _log_callback
    if _log_callback is not None:
        return

    @llama_cpp.llama_log_callback
    def callback(level: int, text: bytes, user_data) -> None:
        at = log_level_of(level)
        line = text.decode("utf-8", "replace").rstrip("\n")
        if line.strip() and llama_log.isEnabledFor(at):
            llama_log.log(at, "%s", line)

    _log_callback = callback  # ctypes keeps no reference of its own: held here for the process
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))


_log_callback = None


def open_llama(
    model_path,
    *,
    n_gpu_layers: int = 0,
    flash_attn: str = "auto",
    n_threads: int = 0,
    extra_bufts: str | None = None,
    **kw,
):
    from llama_cpp import Llama

    with _open_lock:  # the layout is installed and read under one lock: two loaders never race
        _route_llama_logs()
        cpu_layout(extra_bufts)
        return Llama(
            model_path=str(model_path),
            n_gpu_layers=n_gpu_layers,
            flash_attn=flash_attn_for(n_gpu_layers, flash_attn),
            n_threads=n_threads or None,
            verbose=False,
            seed=kw.pop("seed", 0),
            **kw,
        )


_open_lock = threading.Lock()


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


# chosen on 6 replayed test sessions (docs/bot.md): a hard ban (-inf) of every earlier 3-gram made
# the demo drift into bracketed fragments 「（ありがとうございます。）」; a penalty of 4 logits keeps it fluent
# and took near-duplicates from 63 % to 0 % there (4-grams banned: 0 % too, but more re-asks)
BAN_N, BAN_PENALTY = 3, 4.0


class NgramBan:
    """A llama.cpp logits processor that penalises (``penalty`` logits; inf forbids) the next token
    when it would complete a token ``n``-gram of the given texts (this session's earlier counselor
    turns): every draft (``reply``), so it does not copy them; before issue 32's cost work only the
    second try had it, and 56 % of replies needed one.
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


OPENER_PENALTY = 8.0  # logits off a worn opener's next token: enough to take greedy decoding elsewhere
PHRASE_CHARS = 4  # a one-token opener this long is a phrase (steered at the first token), not an interjection


class OpenerBan:
    """A llama.cpp logits processor that steers a reply away from the openers this session has
    worn out (``kokoro.generation.worn_openers``): while the generated tokens are a prefix of a
    worn opener's tokens, the opener's next token loses ``penalty`` logits. The first token is left
    free (「そう」 opens many things besides 「そうなんですね」, and a 270M model pushed off a short
    first token writes fragments: 「えじめたいです」) unless it is a whole phrase of its own
    (``PHRASE_CHARS``: 「ありがとうございます」 is one token). Costs nothing when no opener is worn, and
    no second draft."""

    def __init__(self, llm, openers, n_prompt: int, penalty: float = OPENER_PENALTY):
        self.n_prompt, self.penalty = n_prompt, penalty
        paths = [(o, llm.tokenize(o.encode("utf-8"), add_bos=False, special=False)) for o in openers]
        self.paths = [p for o, p in paths if len(p) > 1 or (p and len(o) >= PHRASE_CHARS)]
        self.longest = max((len(p) for p in self.paths), default=0)

    def __call__(self, input_ids, scores):
        gen = [int(x) for x in input_ids[self.n_prompt :]]
        k = len(gen)
        if k < self.longest:
            hit = {p[k] for p in self.paths if k < len(p) and p[:k] == gen and (k > 0 or len(p) == 1)}
            if hit:
                idx = list(hit)
                scores[idx] = scores[idx] - self.penalty
        return scores


def reply(llm, tokens: list[int], stops, decoding: dict, avoid=(), openers=()) -> tuple[str, dict]:
    """The counselor's next turn: a completion penalised for copying a token 3-gram of ``avoid``
    (this session's earlier counselor turns and the questions the client answered: ``NgramBan``)
    and steered off ``openers`` (``OpenerBan``); when it still near-duplicates or re-asks one of
    ``avoid`` (``kokoro.conversation``), a second completion with the same steering, sampled
    (``kokoro.conversation.second_try``: greedy decoding would write the first again), and the
    better of the two. The prompt's KV is reused by the second try, so it costs its generated
    tokens only. Returns the text and what was done: tries, the last usage, ``generated``, the
    tokens llama.cpp decoded for the replies (not for the prompt), and ``finish``, llama.cpp's
    finish reason of the text returned ("length": cut at ``max_tokens``)."""
    from llama_cpp import LogitsProcessorList

    from .conversation import choose, repeats, second_try

    steer = [NgramBan(llm, avoid, n_prompt=len(tokens), n=BAN_N, penalty=BAN_PENALTY)] if avoid else []
    steer += [OpenerBan(llm, openers, n_prompt=len(tokens))] if openers else []
    processors = {"logits_processor": LogitsProcessorList(steer)} if steer else {}
    out = llm.create_completion(tokens, stop=list(stops), **decoding, **processors)
    first = out["choices"][0]["text"].strip()
    gen = lambda o: max(0, o.get("usage", {}).get("completion_tokens", 0) - 1)  # the last one is never decoded
    finish = {first: out["choices"][0].get("finish_reason")}
    info = {"tries": 1, "usage": out.get("usage", {}), "generated": gen(out), "finish": finish[first]}
    if not avoid or not repeats(first, avoid):
        return first, info
    again = {**decoding, **second_try(avoid, decoding.get("temperature", 0.0))}
    out = llm.create_completion(tokens, stop=list(stops), **again, **processors)
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
