"""Any model behind an OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp's server,
llama-cpp-python's server), for evaluation: chat-completions with the messages ``kokoro.prompts``
builds, or completions with a prompt it rendered (local servers).

* the API key comes from an environment variable (``--api-key-env``, default OPENAI_API_KEY) and
  is never written to a report, a cache or a log;
* bounded concurrency (``map``), one request at a time per thread;
* retries with exponential back-off (honouring Retry-After) on 429, 5xx, timeouts and refused
  connections; any other 4xx is an ``EndpointError`` naming the status and the server's message;
* a resumable cache: every answer is stored (SQLite) under the hash of its request — endpoint,
  model, mode and body — as it arrives, so a rerun (or a run resumed after a crash) sends nothing
  it already has.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .localdb import ThreadLocalDB

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class EndpointError(RuntimeError):
    """The endpoint refused a request (or kept failing): the message says which and why."""


class Cache:
    def __init__(self, path: str | os.PathLike):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path, self._db = str(path), ThreadLocalDB(path)
        self._db().execute("create table if not exists answers (key text primary key, answer text, at real)")

    def get(self, key: str) -> dict | None:
        row = self._db().execute("select answer from answers where key = ?", [key]).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, answer: dict) -> None:
        self._db().execute(
            "insert or replace into answers values (?, ?, ?)",
            [key, json.dumps(answer, ensure_ascii=False), time.time()],
        )


class Endpoint:
    def __init__(
        self,
        url: str,
        model: str,
        mode: str = "chat",
        api_key_env: str = "OPENAI_API_KEY",
        cache: str | os.PathLike | None = None,
        concurrency: int = 4,
        retries: int = 6,
        backoff_s: float = 0.5,
        timeout_s: float = 120.0,
    ):
        if mode not in ("chat", "completions"):
            raise ValueError(f"mode must be chat or completions, got {mode!r}")
        self.url, self.model, self.mode = url.rstrip("/"), model, mode
        self.key = os.environ.get(api_key_env, "")
        self.api_key_env = api_key_env
        self.cache = Cache(cache) if cache else None
        self.concurrency, self.retries, self.backoff_s, self.timeout_s = concurrency, retries, backoff_s, timeout_s
        self.stats = {"requests": 0, "cached": 0, "retries": 0}
        self._stats_lock = threading.Lock()

    @property
    def identity(self) -> dict:
        """What a report's signature records: never the key."""
        return {"endpoint": self.url, "model": self.model, "mode": self.mode}

    def _count(self, k: str) -> None:
        with self._stats_lock:
            self.stats[k] += 1

    def request_key(self, body: dict) -> str:
        canon = json.dumps({"id": self.identity, "body": body}, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canon.encode()).hexdigest()

    def chat(self, messages: list[dict], **params) -> str:
        return self.call({"messages": messages, **params})["text"]

    def complete(self, prompt: str, **params) -> str:
        return self.call({"prompt": prompt, **params})["text"]

    def call(self, body: dict) -> dict:
        """One request (from the cache when it was answered before): {'text', 'usage'}."""
        body = {"model": self.model, **body}
        key = self.request_key(body)
        if self.cache and (hit := self.cache.get(key)) is not None:
            self._count("cached")
            return hit
        out = self._post(body)
        choice = out["choices"][0]
        text = (choice.get("message") or {}).get("content") if self.mode == "chat" else choice.get("text")
        answer = {"text": (text or "").strip(), "usage": out.get("usage", {})}
        if self.cache:
            self.cache.put(key, answer)
        return answer

    def map(self, bodies: list[dict]) -> list[dict]:
        """``call`` over many requests with at most ``concurrency`` in flight, in order."""
        with ThreadPoolExecutor(max_workers=max(1, self.concurrency)) as pool:
            return list(pool.map(self.call, bodies))

    def _post(self, body: dict) -> dict:
        path = "/chat/completions" if self.mode == "chat" else "/completions"
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        data = json.dumps(body, ensure_ascii=False).encode()
        for attempt in range(self.retries + 1):
            self._count("requests")
            wait = min(30.0, self.backoff_s * 2**attempt)
            try:
                req = urllib.request.Request(self.url + path, data=data, headers=headers)
                with urllib.request.urlopen(req, timeout=self.timeout_s) as r:
                    return json.loads(r.read())
            except urllib.error.HTTPError as e:
                detail = e.read()[:300].decode("utf-8", "replace")
                if e.code not in RETRY_STATUS or attempt == self.retries:
                    raise EndpointError(f"{self.url}{path} answered {e.code}: {detail}") from None
                retry_after = e.headers.get("Retry-After")
                if retry_after and retry_after.replace(".", "", 1).isdigit():
                    wait = min(60.0, float(retry_after))
            except (urllib.error.URLError, TimeoutError, ConnectionError, json.JSONDecodeError) as e:
                if attempt == self.retries:
                    raise EndpointError(
                        f"{self.url}{path}: no answer after {self.retries + 1} attempts ({type(e).__name__}); "
                        "is the server running and the URL right?"
                    ) from None
            self._count("retries")
            time.sleep(wait)
        raise AssertionError("unreachable")


def ask_parsed(endpoint: Endpoint, bodies: list[dict], parse, tries: int = 3) -> list:
    """``parse`` of the answer to each greedy request (sent concurrently); an answer ``parse``
    rejects (``ScoreParseError``) is asked again at temperature 0.3 with a new seed, up to
    ``tries`` answers in all, then an ``EndpointError`` naming what was wrong."""
    from kokoro.prompts import ScoreParseError

    out = []
    for body, answer in zip(bodies, endpoint.map(bodies)):
        text = answer["text"]
        for attempt in range(1, tries + 1):
            try:
                out.append(parse(text))
                break
            except ScoreParseError as e:
                if attempt == tries:
                    raise EndpointError(f"{endpoint.url}: {e} (after {tries} tries)") from None
            text = endpoint.call(body | {"temperature": 0.3, "seed": attempt})["text"]
    return out


class EndpointScorer:
    """A zero-shot scorer behind an endpoint (the paper's GPT-4o row of Tables 5/8): the 20-item
    prompt of ``kokoro.prompts.scorer_messages``, strict parsing, asked again on a malformed answer."""

    def __init__(self, endpoint: Endpoint, tries: int = 3):
        self.endpoint, self.tries = endpoint, tries
        self.identity = {"kind": "endpoint-scorer", **endpoint.identity}

    def predict_many(self, sessions) -> list[tuple[int, ...]]:
        from kokoro.prompts import parse_scores, scorer_messages

        bodies = [{"messages": scorer_messages(t), "max_tokens": 400, "temperature": 0.0} for t in sessions]
        return ask_parsed(self.endpoint, bodies, parse_scores, self.tries)

    def predict(self, turns) -> tuple[int, ...]:
        return self.predict_many([turns])[0]
