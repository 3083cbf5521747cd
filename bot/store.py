"""SQLite persistence (sqlite-utils, WAL): events, users, sessions, turns, outbox.

Every webhook event is stored before the 200, so a crash between the 200 and the reply loses
nothing: the worker picks up events whose status is still 'pending'. Counseling text lives only
here — never in logs.
"""

from __future__ import annotations

import contextlib
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
    """One SQLite connection per thread (thread safety by construction: no connection, and so no
    sqlite-utils savepoint, is ever shared between threads); ``lock`` only serializes this
    process's check-then-act sequences."""

    def __init__(self, path: str):
        self.path = path
        self._local = threading.local()
        self.lock = threading.RLock()
        self.db.execute("PRAGMA journal_mode=WAL")
        self._schema()

    @property
    def db(self) -> sqlite_utils.Database:
        db = getattr(self._local, "db", None)
        if db is None:
            import sqlite3

            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA secure_delete=ON")  # deleted text is overwritten, not left in free pages
            db = self._local.db = sqlite_utils.Database(conn)
        return db

    def checkpoint(self) -> None:
        """Fold the WAL into the database and truncate it, so deleted text leaves -wal too."""
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _schema(self):
        t = self.db.table
        if not t("events").exists():
            t("events").create(
                {
                    "id": str,
                    "user_id": str,
                    "source_type": str,
                    "type": str,
                    "timestamp": int,
                    "body": str,
                    "status": str,
                    "received_at": float,
                },
                pk="id",
            )
            t("events").create_index(["status", "timestamp"])
        if not t("users").exists():
            t("users").create(
                {
                    "user_id": str,
                    "created_at": float,
                    "consent_at": float,
                    "followed": int,
                    "reply_token": str,
                    "reply_token_ts": float,
                    "crisis_at": float,
                },
                pk="user_id",
            )
        if not t("sessions").exists():
            t("sessions").create(
                {
                    "id": int,
                    "user_id": str,
                    "status": str,
                    "started_at": float,
                    "ended_at": float,
                    "end_reason": str,
                    "last_client_at": float,
                    "idle_warned": int,
                    "limit_noticed": int,
                    "window_start": int,
                    "pending_reply": int,
                    "crisis": int,
                },
                pk="id",
            )
            t("sessions").create_index(["user_id", "status"])
        if not t("turns").exists():
            t("turns").create(
                {"id": int, "session_id": int, "user_id": str, "role": str, "text": str, "time": str, "ts": float},
                pk="id",
            )
            t("turns").create_index(["session_id"])
        if not t("scores").exists():
            t("scores").create(
                {
                    "id": int,
                    "session_id": int,
                    "user_id": str,
                    "source": str,
                    "scorer": str,
                    "items": str,
                    "total": int,
                    "created_at": float,
                },
                pk="id",
            )
        if not t("ratings").exists():
            t("ratings").create(
                {
                    "session_id": int,
                    "user_id": str,
                    "step": int,
                    "items": str,
                    "flags": str,
                    "status": str,
                    "updated_at": float,
                },
                pk="session_id",
            )
        if not t("outbox").exists():
            t("outbox").create(
                {
                    "id": int,
                    "user_id": str,
                    "reply_token": str,
                    "token_deadline": float,
                    "messages": str,
                    "retry_key": str,
                    "status": str,
                    "attempts": int,
                    "not_before": float,
                    "created_at": float,
                    "sent_at": float,
                    "last_error": str,
                    "via": str,
                    "priority": int,
                },
                pk="id",
            )
            t("outbox").create_index(["status"])
        # columns added after the first release: older databases get them here
        for table, col, kind in (
            ("users", "crisis_at", float),
            ("users", "checkin_due", float),
            ("users", "safety_asked", str),  # what the last safety message asked (bot/sessions.Engine.follow_up)
            ("users", "safety_at", float),
            ("users", "safety_prev", str),  # the state before it and the event that moved it (a replay reads it)
            ("users", "safety_prev_at", float),
            ("users", "safety_key", str),
            ("outbox", "priority", int),
            ("outbox", "effect_key", str),
            ("outbox", "expires_at", float),
            ("outbox", "reply_unknown", int),
            ("turns", "message_id", str),
            ("turns", "crisis", int),
            ("turns", "author", str),  # who wrote a counselor turn: null = the bot, else "counselor:<id>"
            ("sessions", "held_by", int),  # the console counselor holding the session (the model is silent)
            ("sessions", "held_at", float),
            ("sessions", "human_asked_at", float),  # the client asked for a person
            ("sessions", "human_answer", str),  # what they were told: on-duty | off-duty
            ("scores", "flags", str),  # screening flags the counselor's words predict: flag → turn indices
        ):
            if col not in t(table).columns_dict:
                t(table).add_column(col, kind)
        # exactly-once effects: a replayed event cannot store its turn or send its message twice
        self.db.execute(
            "create unique index if not exists outbox_effect on outbox(effect_key) where effect_key is not null"
        )
        self.db.execute(
            "create unique index if not exists turns_message on turns(message_id) where message_id is not null"
        )

    @contextlib.contextmanager
    def transaction(self):
        """BEGIN IMMEDIATE … COMMIT on this thread's connection (raw SQL only inside: sqlite-utils'
        own `with conn:` would commit early)."""
        conn = self.db.conn
        with self.lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # ---------------------------------------------------------------- events
    def add_event(self, event_id: str, event: dict) -> bool:
        """Store an event once; False if this webhookEventId was seen before (redelivery/duplicate)."""
        src = event.get("source") or {}
        with self.lock:
            if self.db["events"].count_where("id = ?", [event_id]):
                return False
            self.db["events"].insert(
                {
                    "id": event_id,
                    "user_id": src.get("userId"),
                    "source_type": src.get("type"),
                    "type": event.get("type"),
                    "timestamp": int(event.get("timestamp") or 0),
                    "body": json.dumps(event, ensure_ascii=False),
                    "status": "pending",
                    "received_at": now(),
                }
            )
            return True

    def add_rejected(self, event_id: str, problem: str) -> bool:
        """A malformed event: kept as 'rejected' for dedupe and diagnosis, without its body."""
        with self.lock:
            if self.db["events"].count_where("id = ?", [event_id]):
                return False
            self.db["events"].insert(
                {
                    "id": event_id,
                    "user_id": None,
                    "source_type": None,
                    "type": None,
                    "timestamp": 0,
                    "body": json.dumps({"rejected": problem}),
                    "status": "rejected",
                    "received_at": now(),
                }
            )
            return True

    def pending_events(self) -> list[dict]:
        rows = self.db.query("select * from events where status = 'pending' order by timestamp, received_at")
        return [dict(r, event=json.loads(r["body"])) for r in rows]

    def mark_event(self, event_id: str, status: str = "done"):
        """Mark a processed event and drop its message text: the id is kept for dedupe, the words
        live only in ``turns`` (and only for users who consented)."""
        with self.lock:
            rows = list(self.db["events"].rows_where("id = ?", [event_id]))
            if not rows:  # deleted with the user's data while it was being handled: nothing to mark
                return
            ev = json.loads(rows[0]["body"])
            if isinstance(ev.get("message"), dict):
                ev["message"] = {k: v for k, v in ev["message"].items() if k in ("id", "type")}
            self.db["events"].update(event_id, {"status": status, "body": json.dumps(ev, ensure_ascii=False)})

    # ---------------------------------------------------------------- users
    def user(self, user_id: str) -> dict:
        with self.lock:
            rows = list(self.db["users"].rows_where("user_id = ?", [user_id]))
            if rows:
                return rows[0]
            row = {
                "user_id": user_id,
                "created_at": now(),
                "consent_at": None,
                "followed": 1,
                "reply_token": None,
                "reply_token_ts": None,
                "crisis_at": None,
            }
            self.db["users"].insert(row)
            return row

    def due_checkins(self, t: float) -> list[dict]:
        """Users whose opted-in check-in after a crisis session is due (no text: ids and times)."""
        return list(self.db["users"].rows_where("checkin_due is not null and checkin_due <= ?", [t]))

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
            sid = (
                self.db["sessions"]
                .insert(
                    {
                        "user_id": user_id,
                        "status": "open",
                        "started_at": t,
                        "last_client_at": t,
                        "idle_warned": 0,
                        "limit_noticed": 0,
                        "window_start": 0,
                        "pending_reply": 0,
                        "crisis": 0,
                    }
                )
                .last_pk
            )
            return self.session(sid)

    def session(self, sid: int) -> dict:
        return self.db["sessions"].get(sid)

    def find_session(self, sid: int) -> dict | None:
        """The session, or None when there is none (deleted, purged, never made)."""
        rows = list(self.db["sessions"].rows_where("id = ?", [sid], limit=1))
        return rows[0] if rows else None

    def update_session(self, sid: int, **values):
        with self.lock:
            self.db["sessions"].update(sid, values)

    def close_session(self, sid: int, reason: str, idle_before: float | None = None) -> bool:
        """Close an open session once; True only for the caller that closed it. With
        ``idle_before``, only if the client has still not written since then and no reply is owed
        (the check and the change are one statement, so a message arriving now keeps it open)."""
        sql = "update sessions set status = 'closed', ended_at = ?, end_reason = ?, pending_reply = 0 where id = ? "
        sql += "and status = 'open'"
        args = [now(), reason, sid]
        if idle_before is not None:
            sql += " and pending_reply = 0 and coalesce(last_client_at, started_at) <= ?"
            args.append(idle_before)
        with self.lock:
            return self.db.execute(sql, args).rowcount == 1

    def add_turn(self, session: dict, role: str, text: str, ts: float | None = None):
        ts = now() if ts is None else ts
        with self.lock:
            self.db["turns"].insert(
                {
                    "session_id": session["id"],
                    "user_id": session["user_id"],
                    "role": role,
                    "text": text,
                    "time": iso(ts),
                    "ts": ts,
                }
            )

    def add_client_turn(
        self,
        session: dict,
        text: str,
        message_id: str | None,
        answered: tuple[str, int] | None = None,
        owed: bool = True,
    ) -> bool:
        """Store a client's message and owe it a reply, atomically; False (and nothing done) when this
        LINE message was stored before (a replayed event). ``answered``: the counselor turn already
        sent for it (the crisis protocol or its follow-up) and the flag the client turn's ``crisis``
        keeps (bot/sessions.Answered), so no reply is owed; ``owed=False``: none is owed either (the
        message that opened the session, answered by the opening stored before it)."""
        answer, flag = answered if answered is not None else (None, None)
        t = now()
        with self.transaction() as c:
            cur = c.execute(
                "insert or ignore into turns (session_id, user_id, role, text, time, ts, message_id, crisis) "
                "values (?, ?, 'client', ?, ?, ?, ?, ?)",
                [session["id"], session["user_id"], text, iso(t), t, message_id, flag],
            )
            if cur.rowcount == 0:
                return False
            if answer is not None:
                c.execute(
                    "insert into turns (session_id, user_id, role, text, time, ts) values (?, ?, 'counselor', ?, ?, ?)",
                    [session["id"], session["user_id"], answer, iso(t), t],
                )
            c.execute(
                "update sessions set last_client_at = ?, pending_reply = ?, idle_warned = 0, "
                "crisis = max(coalesce(crisis, 0), ?) where id = ?",
                [t, 1 if owed and answer is None else 0, 1 if answer is not None else 0, session["id"]],
            )
            return True

    def add_reply(
        self,
        sid: int,
        text: str,
        answered_up_to: int,
        window_start: int,
        outbox: list[dict] = (),
        by: int | None = None,
        message_id: str | None = None,
        user: dict | None = None,
    ) -> bool:
        """Store the counselor's reply, its outbox rows and what is still owed, atomically (a crash
        cannot leave a stored reply that is never sent; ``user``: columns of the client's user row
        set in the same transaction, so what the reply asks is on record before it can be sent): a
        client message newer than ``answered_up_to`` (even one stored a moment ago) keeps a reply owed.
        False when the session closed meanwhile, or its holder is not ``by`` (nothing stored): the model
        (``by`` None) never writes into a session a console counselor holds, and a counselor only into
        the one they hold.
        ``outbox``: keyword arguments of ``enqueue``. ``message_id``: stored once (a second reply with
        the same id raises sqlite3.IntegrityError and stores nothing)."""
        t = now()
        with self.transaction() as c:
            row = c.execute("select user_id, status, held_by from sessions where id = ?", [sid]).fetchone()
            if row is None or row[1] != "open" or row[2] != by:  # closed, or not this writer's to answer
                return False
            c.execute(
                "insert into turns (session_id, user_id, role, text, time, ts, author, message_id) "
                "values (?, ?, 'counselor', ?, ?, ?, ?, ?)",
                [sid, row[0], text, iso(t), t, f"counselor:{by}" if by is not None else None, message_id],
            )
            c.execute(
                "update sessions set window_start = ?, pending_reply = exists(select 1 from turns where "
                "session_id = ? and role = 'client' and id > ?) where id = ?",
                [window_start, sid, answered_up_to or 0, sid],
            )
            for kwargs in outbox:
                self._insert_outbox(c, **kwargs)
            if user:
                sets = ", ".join(f"[{k}] = ?" for k in user)
                c.execute(f"update users set {sets} where user_id = ?", [*user.values(), row[0]])
            return True

    def unsend(self, user_id: str, message_id: str) -> int:
        """Forget a message the client unsent: its turn, and its text in a pending event."""
        with self.lock:
            n = self.db.execute(
                "delete from turns where user_id = ? and message_id = ?", [user_id, message_id]
            ).rowcount
        self.checkpoint()
        return n

    def turns(self, sid: int) -> list[dict]:
        return list(self.db["turns"].rows_where("session_id = ?", [sid], order_by="id"))

    def open_sessions(self) -> list[dict]:
        return list(self.db["sessions"].rows_where("status = 'open'"))

    def last_closed_session(self, user_id: str) -> dict | None:
        rows = list(
            self.db["sessions"].rows_where(
                "user_id = ? and status = 'closed'", [user_id], order_by="ended_at desc", limit=1
            )
        )
        return rows[0] if rows else None

    def save_rating(self, session: dict, step: int, items, flags, status: str) -> None:
        with self.lock:
            self.db["ratings"].upsert(
                {
                    "session_id": session["id"],
                    "user_id": session["user_id"],
                    "step": step,
                    "items": json.dumps(items),
                    "flags": json.dumps(flags),
                    "status": status,
                    "updated_at": now(),
                },
                pk="session_id",
            )

    def rating(self, session_id: int) -> dict | None:
        rows = list(self.db["ratings"].rows_where("session_id = ?", [session_id]))
        return rows[0] if rows else None

    def add_scores(self, session: dict, source: str, scorer: dict, items, total: int, flags=None) -> None:
        """``flags``: the screening flags predicted from the counselor's words (kokoro.flags), flag →
        indices of the turns that raised them; stored for research beside the total (which they zero
        only under kokoro.flags.ZERO_RULE)."""
        with self.lock:
            self.db["scores"].insert(
                {
                    "session_id": session["id"],
                    "user_id": session["user_id"],
                    "source": source,
                    "scorer": json.dumps(scorer, ensure_ascii=False, default=str),
                    "items": json.dumps(list(items)),
                    "total": total,
                    "flags": json.dumps(flags or {}),
                    "created_at": now(),
                }
            )

    # ---------------------------------------------------------------- outbox
    @staticmethod
    def _insert_outbox(conn, user_id, messages, reply_token, token_deadline, priority=0, key=None, ttl_s=None) -> int:
        if not isinstance(user_id, str) or not user_id:
            raise ValueError("an outgoing message needs the chat it goes to")
        t = now()
        cur = conn.execute(
            "insert or ignore into outbox (user_id, reply_token, token_deadline, messages, retry_key, status, "
            "attempts, not_before, created_at, priority, effect_key, expires_at, reply_unknown) "
            "values (?, ?, ?, ?, ?, 'pending', 0, 0.0, ?, ?, ?, ?, 0)",
            [
                user_id,
                reply_token,
                token_deadline,
                json.dumps(messages, ensure_ascii=False),
                str(uuid.uuid4()),
                t,
                priority,
                key,
                t + ttl_s if ttl_s else None,
            ],
        )
        if cur.rowcount == 1:
            return cur.lastrowid
        return conn.execute("select id from outbox where effect_key = ?", [key]).fetchone()[0]

    def enqueue(
        self,
        user_id: str,
        messages: list[dict],
        reply_token: str | None,
        token_deadline: float | None,
        priority: int = 0,
        key: str | None = None,
        ttl_s: float | None = None,
    ) -> int:
        """A message to deliver; with ``key`` (the effect that makes it: an event, a timer) at most
        once: enqueueing the same key again returns the row made the first time."""
        with self.lock:
            return self._insert_outbox(
                self.db.conn, user_id, messages, reply_token, token_deadline, priority, key, ttl_s
            )

    def next_for_user(self, user_id: str) -> int | None:
        """The user's undelivered row that must go first (crisis messages first, then oldest): a
        newer message never overtakes an older one that waits."""
        row = self.db.execute(
            "select id from outbox where user_id = ? and status in ('pending', 'sending') "
            "order by coalesce(priority, 0) desc, id limit 1",
            [user_id],
        ).fetchone()
        return row[0] if row else None

    def expire_outbox(self) -> int:
        """Messages past their useful age (an idle notice hours late, a retry key near 24 h) are dropped."""
        with self.lock:
            return self.db.execute(
                "update outbox set status = 'expired' where status = 'pending' and expires_at is not null "
                "and expires_at < ?",
                [now()],
            ).rowcount

    def claim_outbox(self, oid: int) -> dict | None:
        """Take a pending row for delivery (one sender at a time); None if another sender has it."""
        with self.lock:
            cur = self.db.execute(
                "update outbox set status = 'sending', not_before = ? where id = ? and status = 'pending'", [now(), oid]
            )
            return self.db["outbox"].get(oid) if cur.rowcount == 1 else None

    def release_stale_sends(self, older_than_s: float = 60.0) -> None:
        """Rows left 'sending' by a process that died go back to pending (the retry key keeps them single)."""
        with self.lock:
            self.db.execute(  # a call may have been in flight: its reply's outcome is unknown
                "update outbox set status = 'pending', reply_unknown = 1 where status = 'sending' and not_before < ?",
                [now() - older_than_s],
            )

    def due_outbox(self) -> list[dict]:
        """Pending rows that are due, crisis messages first (priority), then in order of creation."""
        return list(
            self.db["outbox"].rows_where(
                "status = 'pending' and not_before <= ?", [now()], order_by="coalesce(priority, 0) desc, id"
            )
        )

    def update_outbox(self, oid: int, **values):
        with self.lock:
            self.db["outbox"].update(oid, values)

    def purge_sessions(self, ended_before: float) -> int:
        """Delete closed sessions (and their turns) that ended before ``ended_before``."""
        with self.lock:
            ids = [
                r["id"] for r in self.db["sessions"].rows_where("status = 'closed' and ended_at < ?", [ended_before])
            ]
            for sid in ids:
                self.db.execute("delete from turns where session_id = ?", [sid])
                self.db.execute("delete from scores where session_id = ?", [sid])
                self.db.execute("delete from ratings where session_id = ?", [sid])
                self.db.execute("delete from sessions where id = ?", [sid])
            gone = len(ids)
            gone += self.db.execute(
                "delete from outbox where status != 'pending' and created_at < ?", [ended_before]
            ).rowcount
            # handled webhook events (user ids, postback data such as rating answers) age out too
            gone += self.db.execute(
                "delete from events where status != 'pending' and received_at < ?", [ended_before]
            ).rowcount
            # and users with nothing left: no session, no pending event, not seen since the cut-off
            gone += self.db.execute(
                "delete from users where created_at < ? and user_id not in (select user_id from sessions "
                "where user_id is not null) and user_id not in (select user_id from events where user_id is not null)",
                [ended_before],
            ).rowcount
        if gone:
            self.checkpoint()
        return len(ids)

    def delete_user(self, user_id: str):
        """Everything stored for this user, overwritten on disk (secure_delete) and out of the WAL."""
        with self.lock:
            for table in ("turns", "scores", "ratings", "sessions", "outbox", "events"):
                self.db.execute(f"delete from {table} where user_id = ?", [user_id])
            self.db.execute("delete from users where user_id = ?", [user_id])
        self.checkpoint()
