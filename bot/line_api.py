"""Talking to the LINE Messaging API (line-bot-sdk v3): reply while the token is fresh, else push
with an X-Line-Retry-Key; retries 429/5xx with back-off; splits long text. Logs status codes only."""

from __future__ import annotations

import logging

from .store import Store, now

log = logging.getLogger("kokoro.bot.line")
MAX_TEXT_UTF16 = 5000
MAX_MESSAGES = 5


def utf16_len(s: str) -> int:
    return len(s.encode("utf-16-le")) // 2


def split_text(text: str, limit: int = MAX_TEXT_UTF16) -> list[str]:
    """Split at ``limit`` UTF-16 code units, preferring line breaks; never inside a surrogate pair."""
    parts, cur, n = [], [], 0
    for ch in text:
        w = 2 if ord(ch) > 0xFFFF else 1
        if n + w > limit:
            cut = "".join(cur)
            nl = cut.rfind("\n")
            if nl > limit // 2:
                parts.append(cut[:nl])
                cur, n = list(cut[nl + 1 :]), utf16_len(cut[nl + 1 :])
            else:
                parts.append(cut)
                cur, n = [], 0
        cur.append(ch)
        n += w
    if cur or not parts:
        parts.append("".join(cur))
    return parts


def prepare(messages: list[dict]) -> list[list[dict]]:
    """Split long texts, then group into requests of at most five messages."""
    flat: list[dict] = []
    for m in messages:
        if m.get("type") == "text" and utf16_len(m["text"]) > MAX_TEXT_UTF16:
            pieces = split_text(m["text"])
            extra = {k: v for k, v in m.items() if k not in ("text", "quickReply")}
            flat += [dict(extra, text=p) for p in pieces[:-1]] + [dict(m, text=pieces[-1])]
        else:
            flat.append(m)
    return [flat[i : i + MAX_MESSAGES] for i in range(0, len(flat), MAX_MESSAGES)]


class LineApi:
    def __init__(
        self,
        access_token: str,
        host: str,
        retry_base_s: float = 0.5,
        timeout: tuple[float, float] = (3.0, 10.0),
    ):
        from linebot.v3.messaging import ApiClient, Configuration, MessagingApi

        cfg = Configuration(access_token=access_token, host=host)
        self.api = MessagingApi(ApiClient(cfg))
        self.retry_base_s = retry_base_s
        self.timeout = timeout  # (connect, read) seconds for every call: a silent API cannot stall a thread

    def _call(self, fn, *args, **kw):
        """One attempt with a (connect, read) timeout; returns the HTTP status, 0 when no answer came.
        Never sleeps: retries with back-off belong to the outbox, on the timer, not to the caller's
        thread (the event worker must stay free for everyone else, crisis answers first)."""
        from linebot.v3.messaging import ApiException

        kw.setdefault("_request_timeout", self.timeout)  # the SDK's default is no timeout at all
        try:
            fn(*args, **kw)
            return 200
        except ApiException as e:
            status = e.status or 0
            log.warning("LINE API %s answered %s", fn.__name__, status)
            return status
        except Exception as e:  # connection refused, timeout: LINE or the network is down
            log.warning("LINE API %s failed: %s", fn.__name__, type(e).__name__)
            return 0

    def reply(self, token: str, messages: list[dict]) -> int:
        from linebot.v3.messaging import ReplyMessageRequest

        req = ReplyMessageRequest.from_dict({"replyToken": token, "messages": messages})
        return self._call(self.api.reply_message, req)

    def push(self, to: str, messages: list[dict], retry_key: str) -> int:
        from linebot.v3.messaging import PushMessageRequest

        req = PushMessageRequest.from_dict({"to": to, "messages": messages})
        return self._call(self.api.push_message, req, x_line_retry_key=retry_key)

    def loading(self, user_id: str, seconds: int = 20) -> int:
        from linebot.v3.messaging import ShowLoadingAnimationRequest

        seconds = max(5, min(60, 5 * round(seconds / 5)))
        return self._call(
            self.api.show_loading_animation,
            ShowLoadingAnimationRequest.from_dict({"chatId": user_id, "loadingSeconds": seconds}),
            _request_timeout=(1.0, 2.0),  # cosmetic: never worth holding the event worker long
        )

    def link_menu(self, user_id: str, rich_menu_id: str) -> int:
        return self._call(self.api.link_rich_menu_id_to_user, user_id, rich_menu_id)

    def unlink_menu(self, user_id: str) -> int:
        return self._call(self.api.unlink_rich_menu_id_from_user, user_id)

    def leave(self, source_type: str, source_id: str) -> int:
        fn = self.api.leave_group if source_type == "group" else self.api.leave_room
        return self._call(fn, source_id)


class Outbox:
    """Delivers stored outgoing messages exactly once and in order per user: reply while the token
    is fresh, else push with the row's retry key. What cannot be delivered now stays pending and is
    retried by the timer with back-off, until its age runs out (``expires_at``).

    * A reply whose outcome is unknown (no answer, or a 5xx after LINE may have delivered it) is
      retried with the same token: LINE answers 400 for a token that was used, and only this row
      ever used it, so a 400 then means it was delivered — the user never gets it twice.
    * 401 (a wrong or revoked channel token) keeps every message waiting, not failed: delivery
      resumes once the token is fixed.
    """

    AUTH_WAIT_S = 60.0
    MAX_BACKOFF_S = 10.0  # after LINE recovers, a waiting message goes out within about this long

    def __init__(self, store: Store, api: LineApi):
        self.store, self.api = store, api
        self.auth_failing = False
        # circuit breaker: after a call that got no answer, no thread waits on LINE again until the
        # next probe time — a hung API costs one timeout per back-off step, not one per message
        self.down_until = 0.0
        self.down_steps = 0

    @property
    def api_down(self) -> bool:
        return now() < self.down_until

    def _answered(self, status: int) -> None:
        if status == 0:
            self.down_steps += 1
            self.down_until = now() + min(self.MAX_BACKOFF_S, self.api.retry_base_s * 2**self.down_steps)
        else:
            self.down_steps, self.down_until = 0, 0.0

    def send(
        self,
        user_id: str,
        messages: list[dict],
        reply_token: str | None = None,
        token_deadline: float | None = None,
        priority: int = 0,
        key: str | None = None,
        ttl_s: float | None = None,
    ) -> None:
        for row in self.rows(user_id, messages, reply_token, token_deadline, priority, key, ttl_s):
            self.store.enqueue(**row)
        self.flush_user(user_id)

    @staticmethod
    def rows(user_id, messages, reply_token=None, token_deadline=None, priority=0, key=None, ttl_s=None) -> list[dict]:
        """The outbox rows for ``messages`` (``Store.enqueue`` arguments): split into requests, the
        reply token on the first only, each keyed by ``key`` and its place."""
        return [
            dict(
                user_id=user_id,
                messages=chunk,
                reply_token=reply_token if i == 0 else None,
                token_deadline=token_deadline,
                priority=priority,
                key=f"{key}/{i}" if key else None,
                ttl_s=ttl_s,
            )
            for i, chunk in enumerate(prepare(messages))
        ]

    def loading(self, user_id: str, seconds: int = 20) -> None:
        """The loading animation: cosmetic, so skipped while LINE is not answering; a call that got
        no answer opens the breaker like a send's."""
        if not self.api_down and self.api.loading(user_id, seconds) == 0:
            self._answered(0)

    def flush_user(self, user_id: str) -> int:
        """Deliver this user's due messages in order, stopping at the first that must wait."""
        sent = 0
        while True:
            oid = self.store.next_for_user(user_id)
            row = self.store.db["outbox"].get(oid) if oid else None
            if row is None or row["status"] != "pending" or (row["not_before"] or 0) > now():
                return sent
            if not self.deliver(row):
                return sent
            sent += 1

    def deliver(self, row: dict) -> bool:
        import json

        if self.store.next_for_user(row["user_id"]) != row["id"]:
            return False  # an older (or crisis) message of this user goes first
        if self.api_down:
            return False  # LINE gave no answer lately: the timer probes again when the breaker allows
        row = self.store.claim_outbox(row["id"])
        if row is None:
            return False
        messages = json.loads(row["messages"])
        attempts = row["attempts"] + 1
        fresh = now() < (row["token_deadline"] or 0)
        if row["reply_token"] and fresh and (row["attempts"] == 0 or row["reply_unknown"]):
            status = self.api.reply(row["reply_token"], messages)
            self._answered(status)
            if status == 200 or (status == 400 and row["reply_unknown"]):
                via = "reply" if status == 200 else "reply (delivered before; its answer was lost)"
                self.store.update_outbox(row["id"], status="sent", sent_at=now(), attempts=attempts, via=via)
                return True
            if status == 0 or status >= 500:  # LINE may have delivered it: retry the reply, not a push
                return self._later(row, attempts, status, reply_unknown=1)
            if status == 401:
                return self._auth(row, attempts)
            # 400 on a first try: an expired or foreign token — push with the retry key instead
        if row["reply_unknown"] and row["reply_token"] and not fresh:
            log.warning("a reply's outcome is unknown and its token expired: pushing (it may arrive twice)")
        status = self.api.push(row["user_id"], messages, row["retry_key"])
        self._answered(status)
        if status in (200, 409):  # 409: this retry key was accepted before — already delivered
            self.auth_failing = False
            self.store.update_outbox(row["id"], status="sent", sent_at=now(), attempts=attempts, via="push")
            return True
        if status == 401:
            return self._auth(row, attempts)
        if status == 429 or status >= 500 or status == 0:
            return self._later(row, attempts, status)
        self.store.update_outbox(row["id"], status="failed", attempts=attempts, last_error=f"status {status}")
        log.error("LINE API rejected a message (status %s); it will not be retried", status)
        return False

    def _later(self, row: dict, attempts: int, status: int, **extra) -> bool:
        backoff = min(self.MAX_BACKOFF_S, self.api.retry_base_s * 2 ** min(attempts, 10))
        self.store.update_outbox(
            row["id"],
            status="pending",
            attempts=attempts,
            not_before=now() + backoff,
            last_error=f"status {status}",
            **extra,
        )
        return False

    def _auth(self, row: dict, attempts: int) -> bool:
        if not self.auth_failing:
            log.error("LINE API answered 401: check LINE_CHANNEL_ACCESS_TOKEN; messages wait until it works")
        self.auth_failing = True
        self.store.update_outbox(
            row["id"], status="pending", attempts=attempts, not_before=now() + self.AUTH_WAIT_S, last_error="401"
        )
        return False

    def flush(self) -> int:
        """Retry everything due (in order per user); returns how many were delivered."""
        self.store.expire_outbox()
        users = dict.fromkeys(r["user_id"] for r in self.store.due_outbox())
        sent = 0
        for u in users:
            if self.api_down:
                break
            sent += self.flush_user(u)
        return sent
