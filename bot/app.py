"""Flask app factory: POST /callback verifies X-Line-Signature, stores each event, answers 200."""
from __future__ import annotations

import hashlib
import json
import logging

from flask import Flask, abort, request

from .config import Settings

log = logging.getLogger("kokoro.bot.app")


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
    api = LineApi(settings.access_token, settings.api_host, settings.max_retries, settings.retry_base_s)
    engine = Engine(settings, store, api, backend or make_backend(settings))
    runtime = Runtime(engine, settings.tick_s)
    validator = SignatureValidator(settings.channel_secret)
    app = Flask("kokoro-bot")
    app.extensions["kokoro"] = runtime

    @app.post("/callback")
    def callback():
        signature = request.headers.get("X-Line-Signature")
        body = request.get_data(as_text=True)
        if not signature or not validator.validate(body, signature):
            abort(400, "bad or missing X-Line-Signature")
        try:
            events = json.loads(body).get("events", [])
        except (json.JSONDecodeError, AttributeError):
            abort(400, "body is not a webhook JSON object")
        for i, ev in enumerate(events if isinstance(events, list) else []):
            if not isinstance(ev, dict):
                continue
            eid = ev.get("webhookEventId") or hashlib.sha256(f"{body}#{i}".encode()).hexdigest()
            if not store.add_event(eid, ev):
                log.info("duplicate event %s ignored", ev.get("type"))
        runtime.wake.set()
        return "OK"

    @app.get("/healthz")
    def health():
        return {"ok": True}

    if start_background and settings.scheduler:
        runtime.start(settings.db_path)
    return app
