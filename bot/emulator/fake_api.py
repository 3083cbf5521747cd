"""A fake LINE Messaging API: records what the bot sends, validates every request against the
OpenAPI spec, enforces single-use reply tokens and X-Line-Retry-Key, and can fail on purpose."""

from __future__ import annotations

import json
import threading
import time
import uuid

from flask import Flask, request
from werkzeug.serving import make_server

from .openapi import Spec


class FakeLine:
    def __init__(self, access_token: str = "emulator-token", spec: Spec | None = None):
        self.token = access_token
        self.spec = spec or Spec()
        self.records: list[dict] = []
        self.errors: list[str] = []
        self.used_tokens: set[str] = set()
        self.retry_keys: set[str] = set()
        self.token_owner: dict[str, str] = {}  # reply token → the chat it was issued for
        self.richmenus: dict[str, dict] = {}  # rich menu id → {menu, image: (content type, bytes)}
        self.user_menus: dict[str, str] = {}  # user → the rich menu linked to them alone
        self.failures: list[tuple[str, int]] = []  # (path suffix, status) served before real handling
        self.after_delivery: list[tuple[str, int]] = []  # (path suffix, status) answered AFTER delivering
        self.hanging = threading.Event()  # set: every request waits, unanswered, until recover()
        self.released = threading.Event()
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.app = self._app()
        self.server = None

    def fail_next(self, path_suffix: str, status: int, times: int = 1) -> None:
        with self.lock:
            self.failures += [(path_suffix, status)] * times

    def fail_after_delivery(self, path_suffix: str, status: int = 500, times: int = 1) -> None:
        """Deliver the message, then answer ``status`` (the answer of an accepted request is lost)."""
        with self.lock:
            self.after_delivery += [(path_suffix, status)] * times

    def hang(self) -> None:
        """Accept connections and never answer them (until recover(): then they get a 503 and
        nothing they carried is delivered)."""
        self.released.clear()
        self.hanging.set()

    def recover(self) -> None:
        self.hanging.clear()
        self.released.set()

    def _app(self) -> Flask:
        app = Flask("fake-line")

        @app.route("/<path:path>", methods=["GET", "POST", "DELETE", "PUT"])
        def any_route(path):
            path = "/" + path
            body = request.get_json(silent=True) if request.data else None
            if self.hanging.is_set():
                self.released.wait(300)
                return app.response_class('{"message": "hung"}', status=503, mimetype="application/json")
            with self.lock:
                rec = {
                    "path": path,
                    "body": body,
                    "retry_key": request.headers.get("X-Line-Retry-Key"),
                    "at": time.time(),
                    "status": 200,
                }
                self.records.append(rec)
                status, payload = self._handle(path, body, rec)
                rec["status"] = status  # 200: delivered
                if status == 200:
                    for i, (suffix, lost) in enumerate(self.after_delivery):
                        if path.endswith(suffix):
                            del self.after_delivery[i]
                            rec["answered"], status, payload = lost, lost, {"message": "injected after delivery"}
                            break
                self.changed.notify_all()
            return app.response_class(json.dumps(payload), status=status, mimetype="application/json")

        return app

    def _handle(self, path: str, body, rec: dict):
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return 401, {"message": "Authentication failed"}
        problems = self.spec.errors(request.method, path, body)
        if problems:
            self.errors += [f"{path}: {p}" for p in problems]
            return 400, {"message": "The request body has errors", "details": problems}
        for i, (suffix, status) in enumerate(self.failures):
            if path.endswith(suffix):
                del self.failures[i]
                return status, {"message": "injected failure"}
        if path == "/v2/bot/message/reply":
            if body["replyToken"] in self.used_tokens:
                return 400, {"message": "Invalid reply token"}
            self.used_tokens.add(body["replyToken"])
        if path == "/v2/bot/message/push" and rec["retry_key"]:
            if rec["retry_key"] in self.retry_keys:
                return 409, {"message": "The retry key is already accepted"}
            self.retry_keys.add(rec["retry_key"])
        if path in ("/v2/bot/message/reply", "/v2/bot/message/push"):
            return 200, {"sentMessages": [{"id": uuid.uuid4().hex[:16]} for _ in body["messages"]]}
        if path == "/v2/bot/richmenu" and request.method == "POST":
            rid = "richmenu-" + uuid.uuid4().hex
            self.richmenus[rid] = {"menu": body, "image": None}
            return 200, {"richMenuId": rid}
        if path.startswith("/v2/bot/richmenu/") and path.endswith("/content") and request.method == "POST":
            rid = path.split("/")[4]
            if rid not in self.richmenus:
                return 404, {"message": "Not found"}
            if self.richmenus[rid]["image"] is not None:
                return 400, {"message": "An image has already been uploaded to the richmenu"}
            self.richmenus[rid]["image"] = (request.content_type, request.get_data())
            return 200, {}
        if path.startswith("/v2/bot/user/") and "/richmenu" in path:
            user = path.split("/")[4]
            if request.method == "POST":
                self.user_menus[user] = path.rsplit("/", 1)[1]
            elif request.method == "DELETE":
                self.user_menus.pop(user, None)
        return 200, {}

    # ------------------------------------------------------------ reading what was delivered
    def delivered(self, user_id: str | None = None) -> list[dict]:
        """Messages LINE accepted, in order (a reply goes to whoever owned the token)."""
        out = []
        with self.lock:
            for r in self.records:
                if r["status"] == 200 and r["path"] in ("/v2/bot/message/reply", "/v2/bot/message/push"):
                    owner = r["body"].get("to") or self.token_owner.get(r["body"].get("replyToken"))
                    if user_id is None or owner == user_id:
                        out += r["body"]["messages"]
        return out

    def wait_for(self, count: int, timeout: float = 120.0, user_id: str | None = None) -> list[dict]:
        """Block until at least ``count`` messages were delivered."""
        deadline = time.time() + timeout
        while True:
            got = self.delivered(user_id)
            if len(got) >= count or time.time() > deadline:
                return got
            with self.lock:
                self.changed.wait(0.1)

    # ------------------------------------------------------------ serving
    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self.server = make_server(host, port, self.app, threaded=True)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return f"http://{host}:{self.server.server_port}"

    def stop(self):
        if self.server:
            self.server.shutdown()
