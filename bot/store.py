"""SQLite persistence (sqlite-utils, WAL): events, users, sessions, turns, outbox.

Every webhook event is stored before the 200, so a crash between the 200 and the reply loses
nothing: the worker picks up events whose status is still 'pending'. Counseling text lives only
here — never in logs.
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import datetime, timezone

import sqlite_utils


def now() -> float:
    return time.time()


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).astimezone().replace(tzinfo=None).isoformat(timespec="seconds")


class Store:
    def __init__(self, path: str):
        import sqlite3

        conn = sqlite3.connect(path, check_same_thread=False, timeout=30, isolation_level=None)
        self.db = sqlite_utils.Database(conn)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA busy_timeout=30000")
        self.lock = threading.RLock()
        self._schema()

    def _schema(self):
        t = self.db.table
        if not t("events").exists():
            t("events").create({"id": str, "user_id": str, "source_type": str, "type": str, "timestamp": int,
                                "body": str, "status": str, "received_at": float}, pk="id")
            t("events").create_index(["status", "timestamp"])
        if not t("users").exists():
            t("users").create({"user_id": str, "created_at": float, "consent_at": float, "followed": int,
                               "reply_token": str, "reply_token_ts": float}, pk="user_id")
        if not t("sessions").exists():
            t("sessions").create({"id": int, "user_id": str, "status": str, "started_at": float, "ended_at": float,
                                  "end_reason": str, "last_client_at": float, "idle_warned": int,
                                  "limit_noticed": int, "window_start": int, "pending_reply": int,
                                  "crisis": int}, pk="id")
            t("sessions").create_index(["user_id", "status"])
        if not t("turns").exists():
            t("turns").create({"id": int, "session_id": int, "user_id": str, "role": str, "text": str,
                               "time": str, "ts": float}, pk="id")
            t("turns").create_index(["session_id"])
        if not t("scores").exists():
            t("scores").create({"id": int, "session_id": int, "user_id": str, "source": str, "scorer": str,
                                "items": str, "total": int, "created_at": float}, pk="id")
        if not t("ratings").exists():
            t("ratings").create({"session_id": int, "user_id": str, "step": int, "items": str, "flags": str,
                                 "status": str, "updated_at": float}, pk="session_id")
        if not t("outbox").exists():
            t("outbox").create({"id": int, "user_id": str, "reply_token": str, "token_deadline": float,
                                "messages": str, "retry_key": str, "status": str, "attempts": int,
                                "not_before": float, "created_at": float, "sent_at": float, "last_error": str,
                                "via": str}, pk="id")
            t("outbox").create_index(["status"])

    # ---------------------------------------------------------------- events
    def add_event(self, event_id: str, event: dict) -> bool:
        """Store an event once; False if this webhookEventId was seen before (redelivery/duplicate)."""
        src = event.get("source") or {}
        with self.lock:
            if self.db["events"].count_where("id = ?", [event_id]):
                return False
            self.db["events"].insert({"id": event_id, "user_id": src.get("userId"), "source_type": src.get("type"),
                                      "type": event.get("type"), "timestamp": int(event.get("timestamp") or 0),
                                      "body": json.dumps(event, ensure_ascii=False), "status": "pending",
                                      "received_at": now()})
            return True

    def pending_events(self) -> list[dict]:
        rows = self.db.query("select * from events where status = 'pending' order by timestamp, received_at")
        return [dict(r, event=json.loads(r["body"])) for r in rows]

    def mark_event(self, event_id: str, status: str = "done"):
        """Mark a processed event and drop its message text: the id is kept for dedupe, the words
        live only in ``turns`` (and only for users who consented)."""
        with self.lock:
            row = self.db["events"].get(event_id)
            ev = json.loads(row["body"])
            if isinstance(ev.get("message"), dict):
                ev["message"] = {k: v for k, v in ev["message"].items() if k in ("id", "type")}
            self.db["events"].update(event_id, {"status": status, "body": json.dumps(ev, ensure_ascii=False)})

    # ---------------------------------------------------------------- users
    def user(self, user_id: str) -> dict:
        with self.lock:
            rows = list(self.db["users"].rows_where("user_id = ?", [user_id]))
            if rows:
                return rows[0]
            row = {"user_id": user_id, "created_at": now(), "consent_at": None, "followed": 1,
                   "reply_token": None, "reply_token_ts": None}
            self.db["users"].insert(row)
            return row

    def update_user(self, user_id: str, **values):
        with self.lock:
            self.user(user_id)
            self.db["users"].update(user_id, values)

    # ---------------------------------------------------------------- sessions and turns
    def open_session(self, user_id: str) -> dict | None:
        rows = list(self.db["sessions"].rows_where("user_id = ? and status = 'open'", [user_id], limit=1))
        return rows[0] if rows else None

    def start_session(self, user_id: str) -> dict:
        with self.lock:
            t = now()
            sid = self.db["sessions"].insert({"user_id": user_id, "status": "open", "started_at": t,
                                              "last_client_at": t, "idle_warned": 0, "limit_noticed": 0,
                                              "window_start": 0, "pending_reply": 0, "crisis": 0}).last_pk
            return self.session(sid)

    def session(self, sid: int) -> dict:
        return self.db["sessions"].get(sid)

    def update_session(self, sid: int, **values):
        with self.lock:
            self.db["sessions"].update(sid, values)

    def end_session(self, sid: int, reason: str):
        with self.lock:
            self.db["sessions"].update(sid, {"status": "closed", "ended_at": now(), "end_reason": reason,
                                             "pending_reply": 0})

    def add_turn(self, session: dict, role: str, text: str, ts: float | None = None):
        ts = now() if ts is None else ts
        with self.lock:
            self.db["turns"].insert({"session_id": session["id"], "user_id": session["user_id"], "role": role,
                                     "text": text, "time": iso(ts), "ts": ts})

    def turns(self, sid: int) -> list[dict]:
        return list(self.db["turns"].rows_where("session_id = ?", [sid], order_by="id"))

    def open_sessions(self) -> list[dict]:
        return list(self.db["sessions"].rows_where("status = 'open'"))

    def last_closed_session(self, user_id: str) -> dict | None:
        rows = list(self.db["sessions"].rows_where("user_id = ? and status = 'closed'", [user_id],
                                                   order_by="ended_at desc", limit=1))
        return rows[0] if rows else None

    def save_rating(self, session: dict, step: int, items, flags, status: str) -> None:
        with self.lock:
            self.db["ratings"].upsert({"session_id": session["id"], "user_id": session["user_id"], "step": step,
                                       "items": json.dumps(items), "flags": json.dumps(flags), "status": status,
                                       "updated_at": now()}, pk="session_id")

    def rating(self, session_id: int) -> dict | None:
        rows = list(self.db["ratings"].rows_where("session_id = ?", [session_id]))
        return rows[0] if rows else None

    def add_scores(self, session: dict, source: str, scorer: dict, items, total: int) -> None:
        with self.lock:
            self.db["scores"].insert({"session_id": session["id"], "user_id": session["user_id"], "source": source,
                                      "scorer": json.dumps(scorer, ensure_ascii=False, default=str),
                                      "items": json.dumps(list(items)), "total": total, "created_at": now()})

    # ---------------------------------------------------------------- outbox
    def enqueue(self, user_id: str, messages: list[dict], reply_token: str | None, token_deadline: float | None) -> int:
        with self.lock:
            return self.db["outbox"].insert({
                "user_id": user_id, "reply_token": reply_token, "token_deadline": token_deadline,
                "messages": json.dumps(messages, ensure_ascii=False), "retry_key": str(uuid.uuid4()),
                "status": "pending", "attempts": 0, "not_before": 0.0, "created_at": now()}).last_pk

    def claim_outbox(self, oid: int) -> dict | None:
        """Take a pending row for delivery (one sender at a time); None if another sender has it."""
        with self.lock:
            cur = self.db.execute("update outbox set status = 'sending', not_before = ? "
                                  "where id = ? and status = 'pending'", [now(), oid])
            return self.db["outbox"].get(oid) if cur.rowcount == 1 else None

    def release_stale_sends(self, older_than_s: float = 60.0) -> None:
        """Rows left 'sending' by a process that died go back to pending (the retry key keeps them single)."""
        with self.lock:
            self.db.execute("update outbox set status = 'pending' where status = 'sending' and not_before < ?",
                            [now() - older_than_s])

    def due_outbox(self) -> list[dict]:
        return list(self.db["outbox"].rows_where("status = 'pending' and not_before <= ?", [now()], order_by="id"))

    def update_outbox(self, oid: int, **values):
        with self.lock:
            self.db["outbox"].update(oid, values)

    def purge_sessions(self, ended_before: float) -> int:
        """Delete closed sessions (and their turns) that ended before ``ended_before``."""
        with self.lock:
            ids = [r["id"] for r in self.db["sessions"].rows_where("status = 'closed' and ended_at < ?", [ended_before])]
            for sid in ids:
                self.db.execute("delete from turns where session_id = ?", [sid])
                self.db.execute("delete from scores where session_id = ?", [sid])
                self.db.execute("delete from ratings where session_id = ?", [sid])
                self.db.execute("delete from sessions where id = ?", [sid])
            self.db.execute("delete from outbox where status != 'pending' and created_at < ?", [ended_before])
            return len(ids)

    def delete_user(self, user_id: str):
        """Everything stored for this user."""
        with self.lock:
            for table in ("turns", "scores", "ratings", "sessions", "outbox", "events"):
                self.db.execute(f"delete from {table} where user_id = ?", [user_id])
            self.db.execute("delete from users where user_id = ?", [user_id])
