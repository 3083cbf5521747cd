"""Generation backends behind one interface.

* ``LlamaBackend`` — llama-cpp-python in-process on a GGUF (+ optional LoRA GGUF). It keeps a
  small pool of contexts, one per recently active session, so each session's KV prefix is reused
  turn after turn and interleaved users do not evict each other (up to ``contexts`` sessions).
* ``OpenAIBackend`` — a remote OpenAI-compatible server (llama.cpp server, llama-cpp-python's
  server, vLLM) through /v1/completions with the prompt rendered here, so the format is ours.
Prompts always come from ``kokoro.prompts``.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections import OrderedDict
from typing import Protocol

from kokoro.chat_formats import ChatFormat, TemplateError, from_gguf, get_format

from .config import BotConfigError, Settings


class Backend(Protocol):
    fmt: ChatFormat
    identity: dict

    def count_tokens(self, text: str) -> int: ...

    def generate(self, key: str, prompt: str) -> str: ...


def decoding(s: Settings) -> dict:
    return {
        "max_tokens": s.max_tokens,
        "temperature": s.temperature,
        "top_p": s.top_p,
        "repeat_penalty": s.repeat_penalty,
    }


class LlamaBackend:
    def __init__(self, s: Settings):
        self.s = s
        self.lock = threading.Lock()
        self.pool: OrderedDict[str, object] = OrderedDict()
        self._forget: set[str] = set()
        # all contexts are made at start-up, so a new session never waits for one to load
        self.spare = [self._new() for _ in range(max(1, s.contexts))]
        self.fmt = self._format(self.spare[0])
        self.last_usage: dict = {}
        self.identity = {
            "backend": "llama",
            "model": s.counselor_gguf,
            "lora": s.counselor_lora,
            "chat_format": self.fmt.name,
            "decoding": decoding(s),
        }

    def _new(self):
        from llama_cpp import Llama

        return Llama(
            model_path=self.s.counselor_gguf,
            lora_path=self.s.counselor_lora,
            n_ctx=self.s.n_ctx,
            n_batch=min(256, self.s.n_ctx),
            n_threads=self.s.n_threads or None,
            n_gpu_layers=self.s.n_gpu_layers,
            seed=0,
            verbose=False,
        )

    def _format(self, llm) -> ChatFormat:
        try:
            return from_gguf(llm, self.s.chat_format)
        except TemplateError as e:
            raise BotConfigError(f"{self.s.counselor_gguf}: {e} (KOKORO_CHAT_FORMAT)") from None

    def count_tokens(self, text: str) -> int:
        llm = next(iter(self.pool.values()), None) or self.spare[0]
        return len(llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def context(self, key: str):
        """The context holding ``key``'s KV cache, evicting the least recently used one if needed."""
        if key in self.pool:
            self.pool.move_to_end(key)
            return self.pool[key]
        if self.spare:
            llm = self.spare.pop()
        else:
            _, llm = self.pool.popitem(last=False)
            llm.reset()
        self.pool[key] = llm
        return llm

    def forget(self, key: str) -> None:
        """Free ``key``'s context. Never waits for a running generation (the caller may be the
        event worker, which must stay free for crisis answers): deferred to the next generate."""
        self._forget.add(key)
        if self.lock.acquire(blocking=False):
            try:
                self._drain_forget()
            finally:
                self.lock.release()

    def _drain_forget(self) -> None:
        while self._forget:
            llm = self.pool.pop(self._forget.pop(), None)
            if llm is not None:
                llm.reset()
                self.spare.append(llm)

    def generate(self, key: str, prompt: str) -> str:
        with self.lock:
            self._drain_forget()
            llm = self.context(key)
            tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
            out = llm.create_completion(tokens, stop=list(self.fmt.stops), **decoding(self.s))
            self.last_usage = out.get("usage", {})
            return out["choices"][0]["text"].strip()


class OpenAIBackend:
    def __init__(self, s: Settings):
        self.s = s
        self.url = s.openai_url.rstrip("/")
        self.fmt = get_format(s.chat_format or "gemma")
        self.identity = {"backend": "openai", "url": self.url, "model": s.openai_model, "decoding": decoding(s)}

    def count_tokens(self, text: str) -> int:
        return len(text)  # conservative for Japanese: a token covers at least one character

    def generate(self, key: str, prompt: str) -> str:
        body = {
            "model": self.s.openai_model,
            "prompt": prompt,
            "stop": list(self.fmt.stops),
            "user": key,
            **decoding(self.s),
        }
        req = urllib.request.Request(
            self.url + "/completions", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=120) as r:
            return json.loads(r.read())["choices"][0]["text"].strip()

    def forget(self, key: str) -> None:
        pass


def make_backend(s: Settings) -> Backend:
    return LlamaBackend(s) if s.backend == "llama" else OpenAIBackend(s)
