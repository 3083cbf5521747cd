"""Talking to the LINE Messaging API (line-bot-sdk v3): reply while the token is fresh, else push
with an X-Line-Retry-Key; retries 429/5xx with back-off; splits long text. Logs status codes only."""
from __future__ import annotations

import logging
import time

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
                cur, n = list(cut[nl + 1:]), utf16_len(cut[nl + 1:])
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
    return [flat[i:i + MAX_MESSAGES] for i in range(0, len(flat), MAX_MESSAGES)]


class LineApi:
    def __init__(self, access_token: str, host: str, max_retries: int = 4, retry_base_s: float = 0.5):
        from linebot.v3.messaging import ApiClient, Configuration, MessagingApi

        cfg = Configuration(access_token=access_token, host=host)
        self.api = MessagingApi(ApiClient(cfg))
        self.max_retries, self.retry_base_s = max_retries, retry_base_s

    def _call(self, fn, *args, **kw):
        """Call with retries on 429/5xx. Returns the status code of the final attempt."""
        from linebot.v3.messaging import ApiException

        for attempt in range(self.max_retries + 1):
            try:
                fn(*args, **kw)
                return 200
            except ApiException as e:
                status = e.status or 0
                log.warning("LINE API %s answered %s (attempt %d)", fn.__name__, status, attempt + 1)
                if status != 429 and status < 500 or attempt == self.max_retries:
                    return status
            except Exception as e:  # connection refused, timeout: LINE or the network is down
                log.warning("LINE API %s failed: %s (attempt %d)", fn.__name__, type(e).__name__, attempt + 1)
                if attempt == self.max_retries:
                    return 0
            time.sleep(self.retry_base_s * 2 ** attempt)
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
        return self._call(self.api.show_loading_animation,
                          ShowLoadingAnimationRequest.from_dict({"chatId": user_id, "loadingSeconds": seconds}))

    def leave(self, source_type: str, source_id: str) -> int:
        fn = self.api.leave_group if source_type == "group" else self.api.leave_room
        return self._call(fn, source_id)


class Outbox:
    """Delivers stored outgoing messages exactly once: reply while the token is fresh, then push
    with the row's retry key; what cannot be delivered now stays pending and is retried."""

    def __init__(self, store: Store, api: LineApi):
        self.store, self.api = store, api

    def send(self, user_id: str, messages: list[dict], reply_token: str | None = None,
             token_deadline: float | None = None) -> None:
        for i, chunk in enumerate(prepare(messages)):
            oid = self.store.enqueue(user_id, chunk, reply_token if i == 0 else None, token_deadline)
            self.deliver(self.store.db["outbox"].get(oid))

    def deliver(self, row: dict) -> bool:
        import json

        row = self.store.claim_outbox(row["id"])
        if row is None:
            return False
        messages = json.loads(row["messages"])
        attempts = row["attempts"] + 1
        if row["reply_token"] and row["attempts"] == 0 and now() < (row["token_deadline"] or 0):
            status = self.api.reply(row["reply_token"], messages)
            if status == 200:
                self.store.update_outbox(row["id"], status="sent", sent_at=now(), attempts=attempts, via="reply")
                return True
            # a used or expired token, or LINE failing: fall through to push with the retry key
        status = self.api.push(row["user_id"], messages, row["retry_key"])
        if status in (200, 409):  # 409: this retry key was accepted before — already delivered
            self.store.update_outbox(row["id"], status="sent", sent_at=now(), attempts=attempts, via="push")
            return True
        if status == 429 or status >= 500 or status == 0:
            backoff = min(600.0, self.api.retry_base_s * 2 ** min(attempts, 10))
            self.store.update_outbox(row["id"], status="pending", attempts=attempts, not_before=now() + backoff,
                                     last_error=f"status {status}")
            return False
        self.store.update_outbox(row["id"], status="failed", attempts=attempts, last_error=f"status {status}")
        log.error("LINE API rejected a message (status %s); it will not be retried", status)
        return False

    def flush(self) -> int:
        """Retry everything due; returns how many were delivered."""
        return sum(self.deliver(r) for r in self.store.due_outbox())
