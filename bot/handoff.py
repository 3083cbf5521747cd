"""A person steps in: a console counselor takes a session over, replies, hands it back or ends it;
a client asks for a person. While a counselor holds a session the model generates nothing for it
(``Store.add_reply`` refuses the model's turn, the timer queues no generation).

Every change of holder is one statement under BEGIN IMMEDIATE, so two counselors acting at once
cannot both win; what the client is told goes through the outbox with a key, so a retry or a
restart never tells them twice."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import urllib.request

from . import messages as M
from .console.store import ConsoleError, ConsoleStore
from .line_api import Outbox
from .store import now

log = logging.getLogger("kokoro.bot.handoff")


class NotOpen(ConsoleError):
    """The session ended or was deleted."""


class HeldByOther(ConsoleError):
    """Another counselor holds the session (only a supervisor can take it from them)."""


class NotHolder(ConsoleError):
    """The action needs the session to be held by this counselor."""


class EmptyReply(ConsoleError):
    pass


GONE = "この相談はすでに終了したか、削除されました。"


def _session(engine, sid: int) -> dict:
    row = engine.store.find_session(sid)
    if row is None or row["status"] != "open":
        raise NotOpen(GONE)
    return row


def _open_in(conn, sid: int) -> tuple:
    """(user_id, held_by, held_at) of an open session, read inside the caller's transaction."""
    row = conn.execute("select user_id, status, held_by, held_at from sessions where id = ?", [sid]).fetchone()
    if row is None or row[1] != "open":
        raise NotOpen(GONE)
    return row[0], row[2], row[3]


def take_over(engine, console: ConsoleStore, sid: int, counselor: dict) -> dict:
    """Hold the session for ``counselor``. A counselor cannot take a session another holds; a
    supervisor can. The client is told once that a person has joined."""
    with engine.store.transaction() as c:
        uid, holder, _ = _open_in(c, sid)
        if holder == counselor["id"]:
            return {"user_id": uid, "already": True}
        if holder is not None and counselor["role"] != "supervisor":
            other = console.get(holder)
            console_name = other["name"] if other else "別の相談員"
            raise HeldByOther(f"この相談は {console_name} さんが対応中です。")
        t = now()
        c.execute("update sessions set held_by = ?, held_at = ? where id = ?", [counselor["id"], t, sid])
        if holder is None:  # (a supervisor taking it from a colleague: the client already talks to a person)
            _tell(engine, c, uid, M.human_joined(), f"human-joined:{sid}:{t}")  # in the same commit: never lost
    console.audit(counselor, "take" if holder is None else "take-from-other", sid)
    log.info("session %s taken over by a console counselor", sid)
    _deliver_soon(engine, uid)
    link_menu(engine, uid, "held")
    return {"user_id": uid, "already": False}


def reply(engine, console: ConsoleStore, sid: int, counselor: dict, text: str, nonce: str) -> bool:
    """The holder's words to the client: stored as their counselor turn and sent through the outbox
    (ordered, crisis messages first, split at LINE's limits). ``nonce`` (one per form) makes a
    resubmitted form a no-op; returns False for such a repeat."""
    text = (text or "").strip()
    if not text:
        raise EmptyReply("返信が空です。")
    sess = _session(engine, sid)
    if sess["held_by"] != counselor["id"]:
        raise NotHolder("返信するには、先にこの相談を引き継いでください。")
    uid = sess["user_id"]
    turns = engine.store.turns(sid)
    last_client = max((r["id"] for r in turns if r["role"] == "client"), default=0)
    token, deadline = engine.take_token(uid)
    key = f"console:{sid}:{nonce}"
    rows = Outbox.rows(uid, [M.text(text)], token, deadline, key=key, ttl_s=engine.s.message_ttl_s)
    try:
        stored = engine.store.add_reply(
            sid, text, last_client, sess["window_start"] or 0, rows, by=counselor["id"], message_id=key
        )
    except sqlite3.IntegrityError:  # this form was sent before
        return False
    if not stored:
        _session(engine, sid)  # raises NotOpen if it closed meanwhile
        raise NotHolder("この相談は別の相談員に引き継がれました。")
    console.audit(counselor, "reply", sid)
    _deliver_soon(engine, uid)
    return True


def hand_back(engine, console: ConsoleStore, sid: int, counselor: dict) -> None:
    """Back to the model: the client is told; a message the counselor left unanswered gets the
    model's reply on the next tick."""
    with engine.store.transaction() as c:
        uid, holder, held_at = _open_in(c, sid)
        if holder != counselor["id"]:
            raise NotHolder("この相談を引き継いでいるのは別の相談員です。")
        c.execute("update sessions set held_by = null, held_at = null where id = ?", [sid])
        _tell(engine, c, uid, M.human_left(), f"human-left:{sid}:{held_at}")
    console.audit(counselor, "hand-back", sid)
    _deliver_soon(engine, uid)
    link_menu(engine, uid, None)


def end(engine, console: ConsoleStore, sid: int, counselor: dict) -> None:
    """End the session the usual way (closing, feedback card, self-rating) — the holder, or a
    supervisor, or anyone when nobody holds it. (``Engine.end`` puts a held client's menu back.)"""
    sess = _session(engine, sid)
    if sess["held_by"] not in (None, counselor["id"]) and counselor["role"] != "supervisor":
        raise HeldByOther("この相談は別の相談員が対応中です。")
    if engine.end(sess["user_id"], "counselor"):
        console.audit(counselor, "end", sid)


def request_human(engine, console: ConsoleStore, uid: str) -> dict:
    """The client asked for a person: the session (returned; opened if there was none) goes up the
    console's queue and the client is told honestly whether a counselor is at a console now (and
    when one is)."""
    sess = engine.store.open_session(uid) or engine.start(uid)
    on_duty = bool(console.on_duty())
    answer = "on-duty" if on_duty else "off-duty"
    engine.store.update_session(sess["id"], human_asked_at=sess.get("human_asked_at") or now(), human_answer=answer)
    log.info("a client asked for a person (%s)", answer)
    engine.send(uid, M.human_requested(on_duty, engine.s.duty_hours))
    return sess


def notify_oncall(engine, sid: int | None, event: str = "crisis") -> None:
    """POST the session's console link (never its text) to the on-call URL, if one is set; in the
    background, so the crisis answer never waits on it. ``event``: crisis (the protocol was sent),
    means_at_hand (the client said a means or a dangerous place is near) or left_after_crisis (the
    session ended — 終了, silence, the limit — right after the client's crisis line or danger answer,
    or with the question whether a means is within reach unanswered; or the client said goodbye then:
    Engine.leaving)."""
    url = engine.s.oncall_url
    if not url:
        return
    base = (engine.s.console_url or "").rstrip("/")
    link = f"{base}/console/s/{sid}" if sid is not None else f"{base}/console/"
    body = json.dumps({"event": event, "session_url": link}).encode()

    def post():
        req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                log.info("on-call alert posted (%s)", r.status)
        except Exception as e:  # the alert is extra: the protocol and the consoles have it already
            log.error("on-call alert failed: %s", type(e).__name__)

    threading.Thread(target=post, name="oncall", daemon=True).start()


def link_menu(engine, uid: str, kind: str | None) -> None:
    """The client's rich menu: the 'a person holds this' menu while held, the default otherwise (if
    the menus were set up with `python -m bot richmenu`)."""
    from .richmenu import link_user

    try:
        link_user(engine, uid, kind)
    except Exception as e:  # a menu is a convenience: never let it break a handoff
        log.error("rich menu link failed: %s", type(e).__name__)


def _tell(engine, conn, uid: str, msgs: list[dict], key: str) -> None:
    """Queue a notice to the client inside the caller's transaction (pushed: no event to reply to)."""
    for row in Outbox.rows(uid, msgs, key=key, ttl_s=engine.s.message_ttl_s):
        engine.store._insert_outbox(conn, **row)


def _deliver_soon(engine, uid: str) -> None:
    threading.Thread(target=engine.outbox.flush_user, args=(uid,), name="console-send", daemon=True).start()
