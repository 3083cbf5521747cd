"""Flask app factory: POST /callback verifies X-Line-Signature, stores each event, answers 200."""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3

from flask import Flask, abort, request

from .config import Settings

log = logging.getLogger("kokoro.bot.app")
MAX_BODY_BYTES = 1 << 20  # LINE's webhook bodies are a few KB; nothing legitimate comes near 1 MB
# an oversized body is discarded unread (never buffered or parsed) before the 413, so the sender is
# not cut off mid-upload and sees the answer; past these bounds the connection is simply closed
DRAIN_BYTES, DRAIN_S = 256 << 20, 10.0
SQLITE_INT = (-(1 << 63), (1 << 63) - 1)


def out_of_range(ev) -> str | None:
    """The path of the first integer SQLite cannot store (beyond 64 bits), anywhere in the event;
    iterative, so nesting as deep as the JSON parser allowed costs no recursion."""
    stack = [((), ev)]
    while stack:
        path, obj = stack.pop()
        if isinstance(obj, int) and not isinstance(obj, bool) and not SQLITE_INT[0] <= obj <= SQLITE_INT[1]:
            return ".".join(str(p) for p in path) or "event"
        if isinstance(obj, dict):
            stack.extend((path + (k,), v) for k, v in obj.items())
        elif isinstance(obj, list):
            stack.extend((path + (i,), v) for i, v in enumerate(obj))
    return None


def malformed(ev) -> str | None:
    """Why a webhook event cannot be handled (None when it can). Names the field, never its value.
    A field that is absent or null is fine; one of the wrong type is not."""
    if not isinstance(ev, dict):
        return "event is not an object"
    if not isinstance(ev.get("type"), str):
        return "type is not a string"
    wrong = lambda obj, key, kind: (
        obj.get(key) is not None and (isinstance(obj[key], bool) or not isinstance(obj[key], kind))
    )
    for key, kind in (
        ("webhookEventId", str),
        ("replyToken", str),
        ("mode", str),
        ("timestamp", int),
        ("source", dict),
        ("message", dict),
        ("postback", dict),
        ("follow", dict),
        ("deliveryContext", dict),
        ("unsend", dict),
    ):
        if wrong(ev, key, kind):
            return f"{key} is not {'an integer' if kind is int else 'a string' if kind is str else 'an object'}"
    src = ev.get("source") or {}
    for key in ("type", "userId", "groupId", "roomId"):
        if wrong(src, key, str):
            return f"source.{key} is not a string"
    for obj, key in (
        ("message", "text"),
        ("message", "type"),
        ("message", "id"),
        ("message", "quoteToken"),
        ("postback", "data"),
        ("unsend", "messageId"),
    ):  # every field a handler reads (bot/events.py)
        if wrong(ev.get(obj) or {}, key, str):
            return f"{obj}.{key} is not a string"
    where = out_of_range(ev)
    if where:
        return f"{where} is an integer beyond 64 bits"
    return None


def drain(stream, n: int) -> None:
    """Read and discard up to ``n`` bytes of a refused body, bounded in bytes and time."""
    import time

    left, deadline = min(n, DRAIN_BYTES), time.monotonic() + DRAIN_S
    while left > 0 and time.monotonic() < deadline:
        chunk = stream.read(min(left, 1 << 16))
        if not chunk:
            return
        left -= len(chunk)


def create_app(config: Settings | dict | None = None, start_background: bool = True, backend=None) -> Flask:
    from linebot.v3.webhook import SignatureValidator

    from .backends import make_backend
    from .line_api import LineApi
    from .runtime import Runtime
    from .sessions import Engine
    from .store import Store

    settings = config if isinstance(config, Settings) else Settings.load(**(config or {}))
    settings.check()
    store = Store(settings.db_path)
    api = LineApi(
        settings.access_token,
        settings.api_host,
        settings.retry_base_s,
        timeout=(min(3.0, settings.api_timeout_s), settings.api_timeout_s),
    )
    engine = Engine(settings, store, api, backend or make_backend(settings))
    runtime = Runtime(engine, settings.tick_s)
    validator = SignatureValidator(settings.channel_secret)
    app = Flask("kokoro-bot")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES  # 413 before the body is read
    app.extensions["kokoro"] = runtime
    if settings.behind_proxy:  # HTTPS ends at one reverse proxy: trust its X-Forwarded-* (docs/console.md)
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)
    from .console import make_blueprint

    app.register_blueprint(make_blueprint(engine))  # /console: the counselor console, behind its sign-in

    @app.before_request
    def refuse_oversized():
        n = request.content_length
        if n is not None and n > MAX_BODY_BYTES:  # before the signature: the body is never kept
            log.warning("webhook body of %d bytes refused (limit %d)", n, MAX_BODY_BYTES)
            if n <= DRAIN_BYTES and request.environ.get("wsgi.input") is not None:
                drain(request.environ["wsgi.input"], n)
            return "body too large", 413, {"Connection": "close"}

    @app.post("/callback")
    def callback():
        signature = request.headers.get("X-Line-Signature")
        body = request.get_data(as_text=True)
        if not signature or not validator.validate(body, signature):
            abort(400, "bad or missing X-Line-Signature")
        try:
            events = json.loads(body).get("events", [])
        except (json.JSONDecodeError, AttributeError, RecursionError):
            abort(400, "body is not a webhook JSON object")
        for i, ev in enumerate(events if isinstance(events, list) else []):
            eid = ev.get("webhookEventId") if isinstance(ev, dict) else None
            if not isinstance(eid, str) or not eid or len(eid) > 200:
                eid = hashlib.sha256(f"{body}#{i}".encode()).hexdigest()
            problem = malformed(ev)
            if not problem:
                try:
                    if not store.add_event(eid, ev):
                        log.info("duplicate event %s ignored", ev.get("type"))
                    continue
                except sqlite3.OperationalError:  # the database (locked, disk): a 500, LINE redelivers
                    raise
                except Exception as e:  # this event's content could not be stored: rejected, the batch goes on
                    problem = f"could not be stored ({type(e).__name__})"
            log.warning("webhook event %d rejected: %s", i, problem)  # names the field, never its value
            store.add_rejected(eid, problem)
        runtime.wake.set()
        return "OK"

    @app.get("/healthz")
    def health():
        report, status = runtime.health()
        return report, status

    if start_background and settings.scheduler:
        runtime.start(settings.db_path)
    return app
