"""Flask app factory: POST /callback verifies X-Line-Signature, stores each event, answers 200."""

from __future__ import annotations

import hashlib
import json
import logging

from flask import Flask, abort, request

from .config import Settings

log = logging.getLogger("kokoro.bot.app")
MAX_BODY_BYTES = 1 << 20  # LINE's webhook bodies are a few KB; nothing legitimate comes near 1 MB


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
    ):
        if wrong(ev, key, kind):
            return f"{key} is not {'an integer' if kind is int else 'a string' if kind is str else 'an object'}"
    src = ev.get("source") or {}
    for key in ("type", "userId", "groupId", "roomId"):
        if wrong(src, key, str):
            return f"source.{key} is not a string"
    if wrong(ev.get("message") or {}, "text", str):
        return "message.text is not a string"
    if wrong(ev.get("message") or {}, "type", str):
        return "message.type is not a string"
    if wrong(ev.get("postback") or {}, "data", str):
        return "postback.data is not a string"
    return None


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
            if problem:  # stored as rejected, with no text: the batch's other events go on
                log.warning("webhook event %d rejected: %s", i, problem)
                store.add_rejected(eid, problem)
            elif not store.add_event(eid, ev):
                log.info("duplicate event %s ignored", ev.get("type"))
        runtime.wake.set()
        return "OK"

    @app.get("/healthz")
    def health():
        report, status = runtime.health()
        return report, status

    if start_background and settings.scheduler:
        runtime.start(settings.db_path)
    return app
