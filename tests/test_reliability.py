"""The bot keeps answering under faults, driven as LINE drives it: signed webhooks into the real app,
a fake LINE API that hangs, fails, or delivers and then loses its answer, replays after a crash,
races between timers and the client, SIGTERM under gunicorn, and a second process taking over."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from conftest import REPO, free_port, quiesce
from test_crisis import FakeBackend, consented, in_session, make_emulator, texts

from bot import messages as M
from bot.emulator.client import post_unsigned


@pytest.fixture
def emu(tmp_path):
    e = make_emulator(tmp_path, FakeBackend())
    yield e
    e.close()


def wait_until(pred, timeout=10.0, what="condition"):
    """Wait on state (polling a condition), bounded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError(f"{what} not reached in {timeout} s")


def test_a_hung_api_then_recovery_delivers_the_waiting_reply_soon(tmp_path):
    emu = make_emulator(tmp_path, FakeBackend(), api_timeout_s=0.3)
    try:
        u = "U" + "1" * 32
        in_session(emu, u)
        emu.fake.hang()
        emu.text(u, "聞いてほしいことがあります")
        rows = emu.runtime.engine.store.db["outbox"]
        wait_until(lambda: rows.count_where("status = 'pending' and attempts >= 2"), 20, "two timed-out attempts")
        v = "U" + "2" * 32
        assert emu.follow(v) == 200, "webhooks are still acknowledged during the hang"
        emu.fake.recover()
        t = time.monotonic()
        wait_until(lambda: FakeBackend().reply in texts(emu, u), 30, "the waiting reply")
        assert time.monotonic() - t < 10
        assert emu.fake.wait_for(1, 10, v), "the other user is answered too"
        assert len(texts(emu, u)) == len(set(texts(emu, u))), "nothing twice"
    finally:
        emu.fake.recover()
        emu.close()


def test_a_replayed_event_after_a_crash_has_no_duplicate_effects(tmp_path):
    emu = make_emulator(tmp_path, FakeBackend(), scheduler=False)  # no worker: the test drives it
    try:
        rt, store = emu.runtime, emu.runtime.engine.store
        u = "U" + "3" * 32
        emu.follow(u)
        emu.postback(u, M.CONSENT)
        emu.text(u, "こんにちは")
        emu.text(u, "もう死にたい")
        rt.process_pending()
        before = texts(emu, u)
        assert len(before) == 4  # greeting, consented, opening, crisis protocol (no model reply yet)
        # a crash between handling and marking leaves every event 'pending': the next start replays them
        store.db.execute("update events set status = 'pending'")
        rt.process_pending()
        assert texts(emu, u) == before
        sess = store.open_session(u)
        roles = [t["role"] for t in store.turns(sess["id"])]
        assert roles == ["counselor", "client", "client", "counselor"]  # opening, two messages, protocol
    finally:
        emu.close()


def test_an_accepted_reply_whose_answer_is_lost_is_not_sent_twice(emu):
    u = "U" + "4" * 32
    emu.fake.fail_after_delivery("/v2/bot/message/reply", 500)
    emu.follow(u)
    emu.fake.wait_for(1, 10, u)
    outbox = emu.runtime.engine.store.db["outbox"]
    # the lost answer is settled by a later check, which may come after a retry is scheduled
    wait_until(lambda: outbox.count_where("status = 'sent'") == 1, 10, "the lost answer settled as sent")
    quiesce(emu)
    assert len(texts(emu, u)) == 1
    row = next(outbox.rows)
    assert row["status"] == "sent" and "delivered before" in row["via"]


def test_an_accepted_push_whose_answer_is_lost_is_not_sent_twice(tmp_path):
    emu = make_emulator(tmp_path, FakeBackend(), reply_deadline_s=0.0)  # every send is a push
    try:
        u = "U" + "5" * 32
        emu.fake.fail_after_delivery("/v2/bot/message/push", 500)
        emu.follow(u)
        wait_until(lambda: emu.runtime.engine.store.db["outbox"].count_where("status = 'sent'"), 10, "sent")
        assert len(texts(emu, u)) == 1
    finally:
        emu.close()


def test_idle_end_racing_a_new_message_keeps_the_session_and_answers(emu):
    engine, store = emu.runtime.engine, emu.runtime.engine.store
    u = "U" + "6" * 32
    in_session(emu, u)
    quiesce(emu)
    emu.runtime.scheduler.pause()
    sid = store.open_session(u)["id"]
    store.update_session(sid, last_client_at=time.time() - 10_000)  # silent for ages …
    stale = store.open_sessions()  # … as the tick sees it
    emu.text(u, "まだいます")  # … but the client writes now
    wait_until(lambda: store.db["turns"].count_where("session_id = ? and role = 'client'", [sid]) == 2)
    engine.s.idle_timeout_s = 60.0
    store.open_sessions = lambda: stale
    engine.tick()
    del store.open_sessions
    assert store.session(sid)["status"] == "open"
    emu.runtime.scheduler.resume()
    got = emu.fake.wait_for(4, 10, u)
    assert got[3]["text"] == FakeBackend().reply


def test_end_word_racing_the_limit_timer_closes_once(emu):
    engine = emu.runtime.engine
    u = "U" + "7" * 32
    in_session(emu, u)
    quiesce(emu)
    n = len(texts(emu, u))
    results = []
    go = threading.Barrier(2)

    def end(reason):
        go.wait()
        results.append(engine.end(u, reason))

    threads = [threading.Thread(target=end, args=(r,)) for r in ("user", "limit")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    quiesce(emu)
    assert sorted(results) == [False, True]
    new = texts(emu, u)[n:]
    assert sum("本日の相談はここまで" in t for t in new) == 1 and sum("評価" in t for t in new) == 1


def test_a_401_keeps_messages_waiting_until_the_token_is_fixed(emu):
    u = "U" + "8" * 32
    emu.runtime.engine.outbox.AUTH_WAIT_S = 0.05
    real = emu.fake.token
    emu.fake.token = "rotated-elsewhere"  # our access token is now wrong: every call gets 401
    emu.follow(u)
    rows = emu.runtime.engine.store.db["outbox"]
    wait_until(lambda: rows.count_where("last_error = '401' and attempts >= 2"), 10, "401 twice")
    assert rows.count_where("status = 'failed'") == 0 and texts(emu, u) == []
    emu.fake.token = real
    assert emu.fake.wait_for(1, 10, u)


def test_an_unsent_message_leaves_the_transcript_and_later_prompts(tmp_path):
    backend = FakeBackend()
    emu = make_emulator(tmp_path, backend)
    try:
        u = "U" + "9" * 32
        in_session(emu, u)
        quiesce(emu)
        msg = {"id": "468789577898262530", "type": "text", "text": "間違えて送った秘密", "quoteToken": "q"}
        emu.post([emu.event(u, "message", message=msg)])
        emu.fake.wait_for(5, 10, u)
        quiesce(emu)
        emu.post([emu.event(u, "unsend", unsend={"messageId": msg["id"]})])
        emu.text(u, "続きです")
        emu.fake.wait_for(6, 10, u)
        quiesce(emu)
        assert "間違えて送った秘密" not in backend.prompts[-1] and "続きです" in backend.prompts[-1]
        store = emu.runtime.engine.store
        assert not store.db["turns"].count_where("text like ?", ["%間違えて送った秘密%"])
    finally:
        emu.close()


def test_healthz_answers_503_when_a_loop_dies(emu, monkeypatch):
    url = emu.url.replace("/callback", "/healthz")
    assert json.load(urllib.request.urlopen(url, timeout=5))["ok"] is True

    def die():
        raise SystemExit("worker killed")  # not an Exception: the supervised loop cannot catch it

    monkeypatch.setattr(emu.runtime, "process_pending", die)
    emu.runtime.wake.set()
    wait_until(lambda: not emu.runtime.threads[0].is_alive(), 5, "the worker's death")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(url, timeout=5)
    assert e.value.code == 503 and "events" in json.loads(e.value.read())["dead"]


def test_deleted_text_leaves_the_database_files(emu):
    u = "U" + "a" * 32
    consented(emu, u)
    secret = "とても秘密の話ですXYZZY"
    emu.text(u, secret)
    emu.fake.wait_for(4, 10, u)
    quiesce(emu)
    db = emu.settings.db_path
    emu.runtime.engine.store.checkpoint()
    assert secret.encode() in open(db, "rb").read(), "the text is on disk before the deletion"
    emu.text(u, "削除")
    emu.fake.wait_for(5, 10, u)
    emu.postback(u, M.DELETE)
    emu.fake.wait_for(6, 10, u)
    quiesce(emu)
    for path in (db, db + "-wal"):
        if os.path.exists(path):
            assert secret.encode() not in open(path, "rb").read(), path


def test_retention_purges_events_and_users_too(emu):
    engine, store = emu.runtime.engine, emu.runtime.engine.store
    u = "U" + "b" * 32
    in_session(emu, u)
    emu.text(u, "終了")
    emu.fake.wait_for(6, 10, u)
    quiesce(emu)
    emu.runtime.scheduler.pause()
    store.db.execute("update sessions set ended_at = ended_at - 40 * 86400")
    store.db.execute("update events set received_at = received_at - 40 * 86400")
    store.db.execute("update users set created_at = created_at - 40 * 86400")
    engine.s.retention_days = 30
    assert engine.purge() == 1
    for table in ("sessions", "turns", "events", "users"):
        assert store.db[table].count_where("user_id = ?", [u]) == 0, table


def test_a_standby_process_takes_over_when_the_holder_stops(tmp_path):
    from bot.app import create_app

    first = make_emulator(tmp_path, FakeBackend())
    second = create_app(first.settings, backend=FakeBackend())  # same database: stands by
    try:
        assert second.extensions["kokoro"].role == "standby"
        first.runtime.shutdown()  # e.g. a deploy stops the holder
        wait_until(lambda: second.extensions["kokoro"].role == "active", 10, "takeover")
        u = "U" + "c" * 32
        first.follow(u)  # the first process's webhook still stores events; the new holder handles them
        assert first.fake.wait_for(1, 10, u)
    finally:
        second.extensions["kokoro"].shutdown()
        first.server.shutdown()
        first.fake.stop()


# ------------------------------------------------------------------ gunicorn, as the Procfile runs it


def test_sigterm_under_gunicorn_drains_and_releases_the_lock_and_a_huge_body_gets_413(tmp_path):
    import fcntl

    from bot.emulator.client import sign
    from bot.emulator.fake_api import FakeLine

    fake = FakeLine("tok")
    api = fake.start()
    port = free_port()
    db = tmp_path / "bot.sqlite3"
    env = dict(
        os.environ,
        LINE_CHANNEL_SECRET="sec",
        LINE_CHANNEL_ACCESS_TOKEN="tok",
        LINE_API_HOST=api,
        KOKORO_BOT_DB=str(db),
        KOKORO_BACKEND="openai",
        KOKORO_OPENAI_URL="http://127.0.0.1:9/v1",
        KOKORO_SCORER=str(tmp_path / "none"),
        KOKORO_TICK="0.1",
        PORT=str(port),
    )
    procfile = (REPO / "Procfile").read_text().split(":", 1)[1].strip().replace("${PORT:-5000}", str(port))
    cmd = [sys.executable, "-m", "gunicorn"] + procfile.split()[1:]
    cmd = [c.replace("0.0.0.0", "127.0.0.1") for c in cmd]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _up(url), 60, "gunicorn up")
        u = "U" + "d" * 32
        body = json.dumps(
            {
                "destination": "x",
                "events": [
                    {
                        "type": "follow",
                        "mode": "active",
                        "timestamp": 1,
                        "source": {"type": "user", "userId": u},
                        "webhookEventId": "01GUNICORN",
                        "replyToken": "rt",
                        "deliveryContext": {"isRedelivery": False},
                    }
                ],
            }
        ).encode()
        fake.token_owner["rt"] = u
        req = urllib.request.Request(
            url + "/callback",
            data=body,
            headers={"X-Line-Signature": sign("sec", body), "Content-Type": "application/json"},
        )
        assert urllib.request.urlopen(req, timeout=10).status == 200
        assert fake.wait_for(1, 20, u)
        assert post_unsigned(url + "/callback") == 413  # gunicorn once dropped the connection instead
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out[-2000:]
        assert "kokoro runtime stopped (was active)" in out, out[-2000:]
        with open(str(db) + ".lock", "w") as f:  # released: the next process can take it at once
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        if proc.poll() is None:
            proc.kill()
        fake.stop()


def _up(url: str) -> bool:
    try:
        return urllib.request.urlopen(url + "/healthz", timeout=2).status == 200
    except OSError:
        return False
