"""Faults are inputs: malformed events in a signed batch, oversized bodies, a LINE API that accepts
the connection and never answers. Driven through the real app and the real SDK."""

import json
import socket
import threading

from test_crisis import FakeBackend, in_session, make_emulator

from bot import messages as M
from bot.emulator.client import post_unsigned


def test_a_batch_with_malformed_events_answers_200_and_its_good_events_are_handled(tmp_path):
    emu = make_emulator(tmp_path, FakeBackend())
    try:
        good = emu.event("U" + "7" * 32, "follow", follow={"isUnblocked": False})
        bad = [
            dict(good, webhookEventId="A1", source="not-a-dict"),
            dict(good, webhookEventId="A2", timestamp="x"),
            dict(good, webhookEventId=["list"]),
            "not an event",
            dict(good, webhookEventId="A3", message=[1]),
            {
                "type": "message",
                "webhookEventId": "A4",
                "message": {"type": "text", "text": {"deep": [[[1]]]}},
                "source": {"type": "user", "userId": "U" + "8" * 32},
                "timestamp": 1,
            },
        ]
        assert emu.post(bad + [good]) == 200
        got = emu.fake.wait_for(1, 10, "U" + "7" * 32)
        assert got and "同意する" in got[0]["text"]
        store = emu.runtime.engine.store
        rejected = list(store.db["events"].rows_where("status = 'rejected'"))
        assert len(rejected) == 6 and all("deep" not in r["body"] for r in rejected)
        assert emu.fake.delivered("U" + "8" * 32) == []
    finally:
        emu.close()


def test_deeply_nested_or_oversized_bodies_never_get_a_5xx(tmp_path):
    emu = make_emulator(tmp_path, FakeBackend())
    try:
        deep = b'{"events": [' + b"[" * 100000 + b"]" * 100000 + b"]}"
        assert emu.post([], body=deep) in (400, 413)
        huge = json.dumps({"events": [], "pad": "x" * (2 << 20)}).encode()
        assert emu.post([], body=huge) == 413
        u = "U" + "9" * 32
        emu.follow(u)
        assert emu.fake.wait_for(1, 10, u), "the bot still answers afterwards"
    finally:
        emu.close()


def test_a_silent_line_api_times_out_instead_of_blocking_the_sender():
    from bot.line_api import LineApi

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    held = []
    stop = threading.Event()

    def accept_and_hold():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])  # accepted, never answered
            except OSError:
                pass

    threading.Thread(target=accept_and_hold, daemon=True).start()
    try:
        api = LineApi("t", f"http://127.0.0.1:{srv.getsockname()[1]}", retry_base_s=0.01, timeout=(0.5, 0.5))
        result = []
        sender = threading.Thread(
            target=lambda: result.append(api.push("U" + "0" * 32, M.fallback(), "key-1")), daemon=True
        )
        sender.start()
        sender.join(timeout=5)  # without a timeout the SDK would wait here for ever
        assert not sender.is_alive() and result == [0]
        assert held, "the request reached the silent server"
    finally:
        stop.set()
        srv.close()
        for c in held:
            c.close()


def test_one_users_deletion_does_not_stop_the_bot_for_the_next_user(tmp_path):

    emu = make_emulator(tmp_path, FakeBackend())
    try:
        a, b = "U" + "d" * 32, "U" + "e" * 32
        in_session(emu, a)
        emu.text(a, "削除")
        emu.fake.wait_for(4, 10, a)
        emu.postback(a, M.DELETE)
        got = emu.fake.wait_for(5, 10, a)
        assert "削除しました" in got[4]["text"]
        emu.follow(b)  # the event worker is still alive: the next user is answered
        assert emu.fake.wait_for(1, 10, b)
        assert not emu.runtime.engine.store.db["turns"].count_where("user_id = ?", [a])
    finally:
        emu.close()


def test_integers_beyond_64_bits_anywhere_reject_only_their_event(tmp_path):
    """Issue 29: a JSON integer SQLite cannot hold (2**70) once gave the whole batch a 500."""
    emu = make_emulator(tmp_path, FakeBackend())
    try:
        u, v = "U" + "5" * 32, "U" + "6" * 32
        good = emu.event(u, "follow", follow={"isUnblocked": False})
        big = 2**70
        bad = [
            dict(emu.event(v, "follow"), timestamp=big),
            dict(emu.event(v, "follow"), timestamp=-big),
            dict(emu.event(v, "follow"), source={"type": "user", "userId": v, "extra": big}),
            dict(emu.event(v, "message"), message={"id": big, "type": "text", "text": "x"}),
            dict(emu.event(v, "message"), message={"id": "1", "type": "text", "text": "x", "emojis": [{"index": big}]}),
            dict(emu.event(v, "follow"), deliveryContext={"isRedelivery": big}),
        ]
        assert emu.post(bad + [good]) == 200
        assert emu.fake.wait_for(1, 10, u), "the good event of the batch is handled"
        rejected = list(emu.runtime.engine.store.db["events"].rows_where("status = 'rejected'"))
        assert len(rejected) == len(bad)
        assert all("beyond 64 bits" in r["body"] or "message.id" in r["body"] for r in rejected)
        assert emu.fake.delivered(v) == []
        assert emu.post([dict(good, webhookEventId="B1", timestamp=2**63 - 1)]) == 200  # the edge is storable
    finally:
        emu.close()


def test_an_event_that_cannot_be_stored_is_rejected_not_the_batch(tmp_path, monkeypatch):
    emu = make_emulator(tmp_path, FakeBackend())
    try:
        store = emu.runtime.engine.store
        real = store.add_event

        def add_event(eid, ev):
            if eid == "BREAKS":
                raise ValueError("whatever sqlite-utils raises next")
            return real(eid, ev)

        monkeypatch.setattr(store, "add_event", add_event)
        u = "U" + "4" * 32
        good = emu.event(u, "follow", follow={"isUnblocked": False})
        assert emu.post([dict(good, webhookEventId="BREAKS"), dict(good, webhookEventId="FINE")]) == 200
        assert emu.fake.wait_for(1, 10, u)
        (row,) = store.db["events"].rows_where("status = 'rejected'")
        assert row["id"] == "BREAKS" and "could not be stored (ValueError)" in row["body"]
    finally:
        emu.close()


def test_an_unsigned_64_mb_body_is_answered_413_not_dropped(tmp_path):
    """The sender gets the 413 (the body is discarded unread), and the bot goes on (Flask's server
    here; under gunicorn in test_reliability's Procfile test)."""
    emu = make_emulator(tmp_path, FakeBackend())
    try:
        assert post_unsigned(emu.url) == 413
        u = "U" + "3" * 32
        emu.follow(u)
        assert emu.fake.wait_for(1, 10, u)
    finally:
        emu.close()
