"""The whole LINE path with no LINE account: a fake Messaging API, the real bot app on a local
port, and a client that signs webhooks like LINE does."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import urllib.error
import urllib.request
import uuid

from werkzeug.serving import make_server

from ..config import Settings
from .fake_api import FakeLine

SECRET, TOKEN = "emulator-secret", "emulator-token"


def sign(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def event(user_id: str, type_: str, fake: FakeLine, **extra) -> dict:
    """A webhook event from a 1:1 chat as LINE sends it, with a fresh reply token that ``fake``
    knows belongs to this user."""
    token = uuid.uuid4().hex
    fake.token_owner[token] = user_id
    return {
        "type": type_,
        "mode": "active",
        "timestamp": int(time.time() * 1000),
        "source": {"type": "user", "userId": user_id},
        "webhookEventId": uuid.uuid4().hex.upper()[:26],
        "deliveryContext": {"isRedelivery": False},
        "replyToken": token,
        **extra,
    }


class Emulator:
    def __init__(self, backend=None, environ=None, config_file=None, **settings):
        import logging

        from ..app import create_app

        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self.fake = FakeLine(TOKEN)
        api = self.fake.start()
        self.settings = Settings.load(
            config_file,
            environ={} if environ is None else environ,
            **{"channel_secret": SECRET, "access_token": TOKEN, "api_host": api, **settings},
        )
        self.app = create_app(self.settings, backend=backend)
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/callback"

    @property
    def runtime(self):
        return self.app.extensions["kokoro"]

    def post(self, events: list[dict], secret: str = SECRET, body: bytes | None = None) -> int:
        body = (
            body
            if body is not None
            else json.dumps({"destination": "U" + "0" * 32, "events": events}, ensure_ascii=False).encode()
        )
        req = urllib.request.Request(
            self.url, data=body, headers={"Content-Type": "application/json", "X-Line-Signature": sign(secret, body)}
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def event(self, user_id: str, type_: str, **extra) -> dict:
        return event(user_id, type_, self.fake, **extra)

    def follow(self, user_id: str) -> int:
        return self.post([self.event(user_id, "follow", follow={"isUnblocked": False})])

    def text(self, user_id: str, text: str) -> int:
        msg = {"id": str(int(time.time() * 1e6)), "type": "text", "text": text, "quoteToken": uuid.uuid4().hex}
        return self.post([self.event(user_id, "message", message=msg)])

    def postback(self, user_id: str, data: str) -> int:
        return self.post([self.event(user_id, "postback", postback={"data": data})])

    def close(self):
        self.server.shutdown()
        self.runtime.shutdown()
        self.fake.stop()


def post_unsigned(url: str, size: int = 64 << 20, timeout: float = 30.0) -> int:
    """POST ``size`` bytes, unsigned, as one stream with its Content-Length (what an attacker or a
    broken proxy might send); the status the sender reads. An OSError — the connection dropped
    under the upload — propagates."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    chunk = b"x" * (1 << 20)
    try:
        conn.putrequest("POST", parts.path)
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(size))
        conn.endheaders()
        for _ in range(size // len(chunk)):
            conn.send(chunk)
        return conn.getresponse().status
    finally:
        conn.close()
