"""Faults are inputs: malformed events in a signed batch, oversized bodies, a LINE API that accepts
the connection and never answers. Driven through the real app and the real SDK."""

import json
import socket
import threading

from test_crisis import FakeBackend, in_session, make_emulator

from bot import messages as M


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
