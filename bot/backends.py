"""Generation backends behind one interface.

* ``LlamaBackend`` — llama-cpp-python in-process on a GGUF (+ optional LoRA GGUF): one model,
  one context, and the KV state of up to ``contexts`` recently active sessions, so each
  session's KV prefix is reused turn after turn and interleaved users do not evict each other.
* ``OpenAIBackend`` — a remote OpenAI-compatible server (llama.cpp server, llama-cpp-python's
  server, vLLM) through /v1/completions with the prompt rendered here, so the format is ours.
Prompts always come from ``kokoro.prompts``.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections import OrderedDict
from typing import Protocol, Sequence

from kokoro.chat_formats import ChatFormat, TemplateError, from_gguf, get_format
from kokoro.generation import prompt_tokens

from .config import BotConfigError, Settings


class Backend(Protocol):
    fmt: ChatFormat
    identity: dict

    def count_tokens(self, text: str) -> int: ...

    def generate(self, key: str, prompt: str, avoid: Sequence[str] = (), openers: Sequence[str] = ()) -> str: ...


def decoding(s: Settings) -> dict:
    return {
        "max_tokens": s.max_tokens,
        "temperature": s.temperature,
        "top_p": s.top_p,
        "repeat_penalty": s.repeat_penalty,
    }


class LlamaBackend:
    """One model and one context, whatever ``contexts`` is: the KV cache of up to ``contexts``
    recently active sessions is kept (the live one in the context, the others as saved sequence
    state in host memory), so each session's prefix is reused turn after turn and interleaved users
    do not evict each other, while the weights sit in (V)RAM once."""

    def __init__(self, s: Settings):
        self.s = s
        self.lock = threading.Lock()
        self.llm = self._new()
        self.current: str | None = None  # the session whose KV is live in the context
        self.saved: OrderedDict[str, tuple[bytes, list[int]]] = OrderedDict()
        self._forget: set[str] = set()
        self.fmt = self._format(self.llm)
        self.last_usage: dict = {}
        self.identity = {
            "backend": "llama",
            "model": s.counselor_gguf,
            "lora": s.counselor_lora,
            "chat_format": self.fmt.name,
            "decoding": decoding(s),
            "repetition_control": s.repetition,
        }

    def _new(self):
        from kokoro.llm import open_llama

        return open_llama(
            self.s.counselor_gguf,
            lora_path=self.s.counselor_lora,
            n_ctx=self.s.n_ctx,
            n_batch=min(256, self.s.n_ctx),
            n_threads=self.s.n_threads,
            n_gpu_layers=self.s.n_gpu_layers,
            flash_attn=self.s.flash_attn,
            extra_bufts=self.s.extra_bufts,
        )

    def _format(self, llm) -> ChatFormat:
        try:
            return from_gguf(llm, self.s.chat_format)
        except TemplateError as e:
            raise BotConfigError(f"{self.s.counselor_gguf}: {e} (KOKORO_CHAT_FORMAT)") from None

    def count_tokens(self, text: str) -> int:
        return len(prompt_tokens(self.llm, text))

    def context(self, key: str):
        """The context with ``key``'s KV cache in it: the live session's is saved (the least
        recently used saved one is dropped beyond ``contexts``), ``key``'s restored if kept."""
        from kokoro.llm import load_seq, save_seq

        if key == self.current:
            return self.llm
        if self.current is not None and self.llm.n_tokens:
            self.saved[self.current] = save_seq(self.llm)
            while len(self.saved) > max(1, self.s.contexts) - 1:
                self.saved.popitem(last=False)
        load_seq(self.llm, self.saved.pop(key, None))
        self.current = key
        return self.llm

    def forget(self, key: str) -> None:
        """Free ``key``'s KV. Never waits for a running generation (the caller may be the event
        worker, which must stay free for crisis answers): deferred to the next generate."""
        self._forget.add(key)
        if self.lock.acquire(blocking=False):
            try:
                self._drain_forget()
            finally:
                self.lock.release()

    def _drain_forget(self) -> None:
        from kokoro.llm import load_seq

        while self._forget:
            key = self._forget.pop()
            self.saved.pop(key, None)
            if key == self.current:
                load_seq(self.llm, None)
                self.current = None

    def generate(self, key: str, prompt: str, avoid: Sequence[str] = (), openers: Sequence[str] = ()) -> str:
        """The reply to ``prompt`` in session ``key``; ``avoid``: the session's earlier counselor turns,
        which the reply may not near-duplicate or re-ask; ``openers``: openers it should not start
        with (``kokoro.llm.reply``)."""
        from kokoro.llm import reply

        with self.lock:
            self._drain_forget()
            llm = self.context(key)
            tokens = prompt_tokens(llm, prompt)
            controls = (avoid, openers) if self.s.repetition else ((), ())
            text, info = reply(llm, tokens, self.fmt.stops, decoding(self.s), *controls)
            self.last_usage = {**info["usage"], "tries": info["tries"]}
            return text


class OpenAIBackend:
    def __init__(self, s: Settings):
        self.s = s
        self.url = s.openai_url.rstrip("/")
        self.fmt = get_format(s.chat_format or "gemma")
        self.identity = {"backend": "openai", "url": self.url, "model": s.openai_model, "decoding": decoding(s)}
        self.identity["repetition_control"] = s.repetition
        self.last_usage: dict = {}

    def count_tokens(self, text: str) -> int:
        return len(text)  # conservative for Japanese: a token covers at least one character

    def generate(self, key: str, prompt: str, avoid: Sequence[str] = (), openers: Sequence[str] = ()) -> str:
        """As ``LlamaBackend.generate``; a server takes no logits processor, so a reply that repeats
        the session is tried again once with sampling (``kokoro.conversation.second_try``), and the better one kept;
        ``openers`` cannot be steered there and are not."""
        from kokoro.conversation import ask_again_if_repeats

        ask = lambda override: self._complete(key, prompt, override)
        text, _ = ask_again_if_repeats(ask, avoid if self.s.repetition else (), self.s.temperature)
        return text

    def _complete(self, key: str, prompt: str, override: dict) -> str:
        bos = self.fmt.bos_token
        if self.s.openai_adds_bos and bos and prompt.startswith(bos):
            prompt = prompt[len(bos) :]  # the server tokenizes with its own BOS; two would shift the model
        body = {
            "model": self.s.openai_model,
            "prompt": prompt,
            "stop": list(self.fmt.stops),
            "user": key,
            **decoding(self.s),
            **override,
        }
        req = urllib.request.Request(
            self.url + "/completions", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=120) as r:
            out = json.loads(r.read())
        self.last_usage = out.get("usage", {})
        return out["choices"][0]["text"].strip()

    def forget(self, key: str) -> None:
        pass


def probe_counselor(s: Settings, once: bool) -> dict:
    """Load the counselor GGUF (and adapter) as the bot would, in a child, and generate a few
    tokens (kokoro.probe); ``once``: skip it when this model, build and decision passed before."""
    from kokoro.probe import probe, probe_once

    kw = dict(extra_bufts=s.extra_bufts, n_threads=s.n_threads, n_gpu_layers=s.n_gpu_layers)
    return (probe_once if once else probe)(s.counselor_gguf, s.counselor_lora, **kw)


def make_backend(s: Settings) -> Backend:
    if s.backend != "llama":
        return OpenAIBackend(s)
    if s.probe:  # a llama.cpp crash in a child now, not a dead bot at the first real message
        from kokoro.probe import ProbeError

        try:
            probe_counselor(s, once=True)
        except ProbeError as e:
            raise BotConfigError(f"{e} (`python -m bot doctor` shows the details)") from None
    return LlamaBackend(s)
