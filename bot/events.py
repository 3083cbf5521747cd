"""One small handler per webhook event type (registered by decorator). Handlers get the raw
event dict, so events the SDK's typed models reject still get an answer when they can."""

from __future__ import annotations

import logging
from typing import Callable

from . import messages as M
from . import rating
from .sessions import Engine
from .store import now

log = logging.getLogger("kokoro.bot.events")
HANDLERS: dict[str, Callable[[Engine, dict], None]] = {}
MESSAGE_HANDLERS: dict[str, Callable[[Engine, dict], None]] = {}
POSTBACKS: dict[str, Callable[[Engine, str], None]] = {}


def on(event_type: str):
    def deco(fn):
        HANDLERS[event_type] = fn
        return fn

    return deco


def on_message(*types: str):
    def deco(fn):
        for t in types:
            MESSAGE_HANDLERS[t] = fn
        return fn

    return deco


def on_postback(data: str):
    def deco(fn):
        POSTBACKS[data] = fn
        return fn

    return deco


def user_of(ev: dict) -> str | None:
    src = ev.get("source") or {}
    return src.get("userId") if src.get("type") == "user" else None


def dispatch(engine: Engine, ev: dict) -> None:
    if ev.get("mode") == "standby":  # another channel (module) is active for this chat
        return
    handler = HANDLERS.get(ev.get("type"))
    if handler is None:
        log.info("unhandled event type %s acknowledged", ev.get("type"))
        return
    uid = user_of(ev)
    if uid:
        engine.remember_token(uid, ev.get("replyToken"), ev.get("timestamp"))
        text = client_text_of(ev)
        if text:
            ev["_answered"] = engine.crisis_first(uid, text, message_id_of(ev))  # before consent, sessions, handlers
    handler(engine, ev)


def message_id_of(ev: dict) -> str | None:
    """The LINE message id of a message event (what a client turn is stored under), if any."""
    msg = ev.get("message")
    return msg.get("id") if isinstance(msg, dict) else None


def client_text_of(ev: dict) -> str | None:
    msg = ev.get("message")
    if ev.get("type") == "message" and isinstance(msg, dict) and msg.get("type") == "text":
        text = msg.get("text")
        return text if isinstance(text, str) else None
    return None


@on("follow")
def follow(engine: Engine, ev: dict) -> None:
    uid = user_of(ev)
    if uid:
        engine.store.update_user(uid, followed=1)
        engine.send(uid, M.greeting() if not engine.consented(uid) else M.consented())


@on("unfollow")
def unfollow(engine: Engine, ev: dict) -> None:
    uid = user_of(ev)
    if uid:
        engine.end(uid, "unfollow", notify=False)  # a blocked user cannot be messaged
        if engine.s.unfollow == "delete":
            engine.store.delete_user(uid)
        else:
            engine.store.update_user(uid, followed=0, checkin_due=None)  # no check-in to a blocked user


@on("unsend")
def unsend(engine: Engine, ev: dict) -> None:
    uid, mid = user_of(ev), (ev.get("unsend") or {}).get("messageId")
    if uid and isinstance(mid, str):
        engine.unsend(uid, mid)


@on("join")
def join(engine: Engine, ev: dict) -> None:
    src = ev.get("source") or {}
    chat = src.get("groupId") or src.get("roomId")
    if not chat or src.get("type") not in ("group", "room"):
        log.info("join event without a group or room acknowledged")
        return
    if ev.get("replyToken"):
        engine.outbox.send(
            chat,
            M.group_not_supported(),
            ev["replyToken"],
            (ev.get("timestamp") or now() * 1000) / 1000 + engine.s.reply_deadline_s,
            key=f"join:{chat}:{ev.get('webhookEventId')}",
        )
    engine.api.leave(src.get("type"), chat)


@on("message")
def message(engine: Engine, ev: dict) -> None:
    uid = user_of(ev)
    if uid is None:  # group or room chatter: not a counseling channel
        return
    msg = ev.get("message") or {}
    MESSAGE_HANDLERS.get(msg.get("type"), non_text)(engine, ev)


@on_message("text")
def text_message(engine: Engine, ev: dict) -> None:
    msg = ev["message"]
    engine.client_text(user_of(ev), msg.get("text", ""), ev.get("_answered"), message_id_of(ev))


@on_message("sticker", "image", "video", "audio", "file", "location")
def non_text(engine: Engine, ev: dict) -> None:
    engine.send(user_of(ev), M.not_text())


@on("postback")
def postback(engine: Engine, ev: dict) -> None:
    uid = user_of(ev)
    data = (ev.get("postback") or {}).get("data", "")
    if uid and data in POSTBACKS:
        POSTBACKS[data](engine, uid)
    elif uid and data.startswith(rating.PREFIX):
        rating.answer(engine, uid, data)
    elif uid:
        log.info("unknown postback acknowledged")


@on_postback(M.CONSENT)
def consent(engine: Engine, uid: str) -> None:
    engine.store.update_user(uid, consent_at=now())
    engine.send(uid, M.consented())


@on_postback(M.DECLINE)
def decline(engine: Engine, uid: str) -> None:
    engine.store.update_user(uid, consent_at=None)
    engine.send(uid, M.declined())


@on_postback(M.START)
def start(engine: Engine, uid: str) -> None:
    if not engine.consented(uid):
        engine.send(uid, M.consent_needed())
    else:
        engine.start(uid)


@on_postback(M.END)
def end(engine: Engine, uid: str) -> None:
    engine.end(uid, "user")


@on_postback(M.CHECKIN_YES)
def checkin_yes(engine: Engine, uid: str) -> None:
    engine.store.update_user(uid, checkin_due=now() + engine.s.checkin_after_s)
    engine.send(uid, M.checkin_set(engine.s.checkin_after_s / 3600))


@on_postback(M.CHECKIN_NO)
def checkin_no(engine: Engine, uid: str) -> None:
    engine.store.update_user(uid, checkin_due=None)
    engine.send(uid, M.checkin_declined())


@on_postback(M.HUMAN)
def human(engine: Engine, uid: str) -> None:
    from .handoff import request_human

    if not engine.consented(uid):
        engine.send(uid, M.consent_needed())
    else:
        request_human(engine, engine.console, uid)


@on_postback(M.CONTACTS)
def contacts(engine: Engine, uid: str) -> None:
    engine.send(uid, M.contacts())


@on_postback(M.DELETE_ASK)
def delete_ask(engine: Engine, uid: str) -> None:
    engine.send(uid, M.confirm_delete())


@on_postback(M.DELETE)
def delete(engine: Engine, uid: str) -> None:
    engine.delete_everything(uid)


@on_postback(M.KEEP)
def keep(engine: Engine, uid: str) -> None:
    engine.send(uid, M.kept())


@on_postback(rating.RATE)
def rate(engine: Engine, uid: str) -> None:
    rating.start(engine, uid)


@on_postback(rating.NO_RATE)
def no_rate(engine: Engine, uid: str) -> None:
    engine.send(uid, [M.text("わかりました。ご利用ありがとうございました。")])
