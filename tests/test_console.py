"""Issue 34: the counselor console, driven as counselors and clients drive it — signed webhooks into
the real app, the console through HTTP (Flask's client on the same app), the fake LINE API showing
what the client received, and the counselor backend's calls counted."""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import quiesce, say
from test_crisis import FakeBackend, in_session, make_emulator, texts

from bot import handoff
from bot import messages as M

PASSWORD = "correct-horse-battery"


class Console:
    """One counselor's browser: its own cookie jar."""

    def __init__(self, emu, name, role="counselor", add=True):
        self.emu, self.name, self.c = emu, name, emu.app.test_client()
        if add:
            emu.runtime.engine.console.add(name, PASSWORD, role)
        self.csrf = None

    def login(self, password=PASSWORD, name=None):
        page = self.c.get("/console/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        r = self.c.post("/console/login", data={"name": name or self.name, "password": password, "csrf": token})
        if r.status_code == 303:
            self.csrf = re.search(r'data-csrf="([^"]+)"', self.c.get("/console/").text).group(1)
        return r

    def post(self, path, **data):
        return self.c.post(path, data=dict(data, csrf=self.csrf), headers={"X-Requested-With": "fetch"})

    def queue(self):
        return self.c.get("/console/api/queue").json["sessions"]


@pytest.fixture
def backend():
    return FakeBackend()


@pytest.fixture
def emu(tmp_path, backend):
    e = make_emulator(tmp_path, backend, duty_hours="平日 18:00〜22:00", quiet_gap_s=0.0)
    yield e
    e.close()


def timer_round(emu):
    """One round of the session timer on this thread, and every generation it queued finished: a
    reply the model owes (quiet gap 0) has been generated after this, or was never queued."""
    engine = emu.runtime.engine
    engine.tick()
    engine.jobs.join()


def live(emu, u, *lines):
    in_session(emu, u)
    say(emu, u, *lines)
    return emu.runtime.engine.store.open_session(u)["id"]


# ------------------------------------------------------------------ access


def test_no_console_page_or_api_without_signing_in(emu):
    u = "U" + "c1" * 16
    sid = live(emu, u, "secret words of the client")
    routes = [r for r in emu.app.url_map.iter_rules() if r.rule.startswith("/console")]
    assert len(routes) >= 12, [r.rule for r in routes]
    anonymous = Console(emu, "nobody", add=False)
    anonymous.c.get("/console/login")  # even holding the sign-in form's cookie and token
    for rule in routes:
        path = rule.rule.replace("<int:sid>", str(sid))
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            for client in (emu.app.test_client(), anonymous.c):
                r = client.open(path, method=method)
                if rule.endpoint in ("console.login", "console.login_post"):
                    assert r.status_code in (200, 403), (method, path, r.status_code)
                else:
                    assert r.status_code in (303, 401, 403), (method, path, r.status_code)
                    if r.status_code == 303:
                        assert r.headers["Location"].startswith("/console/login")
                assert "secret words" not in r.text
    assert emu.runtime.engine.store.session(sid)["held_by"] is None


def test_a_post_without_the_csrf_token_is_refused(emu):
    u = "U" + "c2" * 16
    sid = live(emu, u, "仕事がつらいです")
    sato = Console(emu, "sato")
    assert sato.login().status_code == 303
    r = sato.c.post(f"/console/s/{sid}/take", data={})
    assert r.status_code == 403
    r = sato.c.post(f"/console/s/{sid}/take", data={"csrf": "x" * 43})
    assert r.status_code == 403
    assert emu.runtime.engine.store.session(sid)["held_by"] is None
    assert sato.post(f"/console/s/{sid}/take").status_code == 200  # with it, the same request works


def test_the_cookie_is_httponly_and_samesite_and_the_token_changes_at_sign_in(emu):
    sato = Console(emu, "sato")
    before = sato.c.get("/console/login").headers["Set-Cookie"]
    assert "HttpOnly" in before and "SameSite=Lax" in before and "Path=/console" in before
    r = sato.login()
    after = r.headers["Set-Cookie"]
    assert after.split(";")[0] != before.split(";")[0], "a new token after sign-in"
    secure = emu.app.test_client().get("/console/login", base_url="https://bot.example").headers["Set-Cookie"]
    assert "Secure" in secure
    assert sato.post("/console/logout").status_code == 303
    assert sato.c.get("/console/api/queue").status_code == 401


def test_five_wrong_passwords_lock_the_account(emu):
    sato = Console(emu, "sato")
    for _ in range(5):
        r = sato.login("wrong-password-123")
        assert r.status_code == 401 and "パスワード" not in r.text or "password" in r.text
    r = sato.login()  # the right password, now too late
    assert r.status_code == 401 and "locked" in r.text
    actions = [a["action"] for a in emu.runtime.engine.console.audit_rows()]
    assert actions.count("login-failed") == 4 and "lockout" in actions and "login-locked" in actions
    assert sato.c.get("/console/api/queue").status_code == 401


def test_a_disabled_counselor_is_signed_out_everywhere(emu):
    sato = Console(emu, "sato")
    sato.login()
    assert sato.c.get("/console/api/queue").status_code == 200
    emu.runtime.engine.console.set_disabled("sato")
    assert sato.c.get("/console/api/queue").status_code == 401
    assert sato.login().status_code == 401


# ------------------------------------------------------------------ handoff


def test_a_taken_session_gets_no_model_reply_and_the_client_gets_the_counselors_words(emu, backend):
    u = "U" + "c3" * 16
    sid = live(emu, u, "仕事がつらいです")
    sato = Console(emu, "sato")
    sato.login()
    calls = len(backend.prompts)
    assert sato.post(f"/console/s/{sid}/take").json["ok"]
    say(emu, u, "聞いてください", "本当に疲れました")
    timer_round(emu)
    assert emu.runtime.engine.store.session(sid)["pending_reply"], "the client's words wait for the person"
    assert len(backend.prompts) == calls, "the model generated while a person held the session"
    words = "相談員の佐藤です。お疲れのところ、ありがとうございます。"
    assert sato.post(f"/console/s/{sid}/reply", text=words, nonce="n1").json["ok"]
    sato.post(f"/console/s/{sid}/reply", text=words, nonce="n1")  # the same form again
    quiesce(emu)
    got = texts(emu, u)
    assert got.count(M.human_joined()[0]["text"]) == 1
    assert got.count(words) == 1, "a resubmitted form sent twice"
    assert sato.post(f"/console/s/{sid}/handback").json["ok"]
    quiesce(emu)
    assert texts(emu, u).count(M.human_left()[0]["text"]) == 1
    say(emu, u, "ありがとう")
    timer_round(emu)
    assert len(backend.prompts) == calls + 1, "after the hand-back the model answers again"
    rows = emu.runtime.engine.store.turns(sid)
    authors = [(r["role"], r["author"]) for r in rows if r["role"] == "counselor"]
    assert ("counselor", f"counselor:{emu.runtime.engine.console.by_name('sato')['id']}") in authors
    assert authors[-1] == ("counselor", None), "the model's turn after the hand-back"


def test_a_model_reply_in_flight_when_a_counselor_takes_over_is_never_sent(tmp_path):
    hang = threading.Event()
    backend = FakeBackend(reply="モデルの返事", hang=hang)
    emu = make_emulator(tmp_path, backend)
    try:
        u = "U" + "c4" * 16
        in_session(emu, u)
        emu.text(u, "仕事がつらいです")
        assert backend.started.wait(10)
        sid = emu.runtime.engine.store.open_session(u)["id"]
        sato = Console(emu, "sato")
        sato.login()
        sato.post(f"/console/s/{sid}/take")
        hang.set()
        quiesce(emu)
        assert "モデルの返事" not in texts(emu, u)
        assert texts(emu, u)[-1] == M.human_joined()[0]["text"]
    finally:
        hang.set()
        emu.close()


def test_a_counselor_cannot_take_a_session_another_holds_but_a_supervisor_can(emu):
    u = "U" + "c5" * 16
    sid = live(emu, u, "仕事がつらいです")
    sato, suzuki, boss = Console(emu, "sato"), Console(emu, "suzuki"), Console(emu, "boss", "supervisor")
    for c in (sato, suzuki, boss):
        c.login()
    assert sato.post(f"/console/s/{sid}/take").json["ok"]
    r = suzuki.post(f"/console/s/{sid}/take")
    assert r.status_code == 409 and "sato" in r.json["message"]
    r = suzuki.post(f"/console/s/{sid}/reply", text="割り込み", nonce="x")
    assert r.status_code == 409
    assert boss.post(f"/console/s/{sid}/take").json["ok"]
    assert sato.post(f"/console/s/{sid}/reply", text="まだ私です", nonce="y").status_code == 409
    quiesce(emu)
    got = texts(emu, u)
    assert "割り込み" not in got and "まだ私です" not in got
    assert got.count(M.human_joined()[0]["text"]) == 1, "a supervisor taking over is not a second join"
    actions = [(a["counselor"], a["action"]) for a in emu.runtime.engine.console.audit_rows(sid)]
    assert ("suzuki", "refused:take") in actions and ("boss", "take-from-other") in actions


def test_two_counselors_taking_at_once_one_wins_the_other_is_told(emu):
    u = "U" + "c6" * 16
    sid = live(emu, u, "仕事がつらいです")
    engine = emu.runtime.engine
    a, b = engine.console.get(engine.console.add("a", PASSWORD)), engine.console.get(engine.console.add("b", PASSWORD))
    for _ in range(5):
        barrier, results = threading.Barrier(2), {}

        def take(c):
            barrier.wait()
            try:
                handoff.take_over(engine, engine.console, sid, c)
                results[c["name"]] = "won"
            except handoff.HeldByOther as e:
                results[c["name"]] = str(e)

        threads = [threading.Thread(target=take, args=(c,)) for c in (a, b)]
        [t.start() for t in threads]
        [t.join(10) for t in threads]
        assert len(results) == 2 and list(results.values()).count("won") == 1, results
        winner = a if results["a"] == "won" else b
        loser = b if winner is a else a
        assert winner["name"] in results[loser["name"]]
        assert engine.store.session(sid)["held_by"] == winner["id"]
        handoff.hand_back(engine, engine.console, sid, winner)


def test_ending_from_the_console_gives_the_usual_closing_and_the_rating_invite(emu):
    from bot.rating import invite

    u = "U" + "c7" * 16
    sid = live(emu, u, "仕事がつらいです")
    sato = Console(emu, "sato")
    sato.login()
    sato.post(f"/console/s/{sid}/take")
    assert sato.post(f"/console/s/{sid}/end").json["ok"]
    quiesce(emu)
    got = texts(emu, u)
    assert M.closing("counselor")[0]["text"] in got and invite()[0]["text"] in got
    assert emu.runtime.engine.store.session(sid)["end_reason"] == "counselor"
    assert sato.c.get(f"/console/api/s/{sid}").json["open"] is False


def test_a_draft_is_the_models_suggestion_and_is_never_sent(emu, backend):
    u = "U" + "c8" * 16
    sid = live(emu, u, "仕事がつらいです")
    sato = Console(emu, "sato")
    sato.login()
    sato.post(f"/console/s/{sid}/take")
    backend.reply = "案: お仕事のどんなところがつらいですか？"
    calls = len(backend.prompts)
    assert sato.post(f"/console/s/{sid}/draft").json["ok"]
    emu.runtime.engine.jobs.join()
    assert len(backend.prompts) == calls + 1
    assert sato.c.get(f"/console/api/s/{sid}").json["draft"] == {"status": "ready", "text": backend.reply}
    quiesce(emu)
    assert backend.reply not in texts(emu, u)


# ------------------------------------------------------------------ the client's side


def test_a_client_who_asks_for_a_person_is_queued_and_told_honestly(emu):
    u, v = "U" + "c9" * 16, "U" + "ca" * 16
    in_session(emu, u)
    say(emu, u, "人と話したい")  # nobody at a console
    assert texts(emu, u)[-1] == M.human_requested(False, "平日 18:00〜22:00")[0]["text"]
    sato = Console(emu, "sato")
    sato.login()
    in_session(emu, v)
    emu.postback(v, M.HUMAN)  # the rich menu's button
    quiesce(emu)
    assert texts(emu, v)[-1] == M.human_requested(True, "平日 18:00〜22:00")[0]["text"]
    q = {s["id"]: s for s in sato.queue()}
    engine = emu.runtime.engine
    su, sv = engine.store.open_session(u)["id"], engine.store.open_session(v)["id"]
    assert q[su]["asked_for_person"] and q[su]["answer"] == "off-duty"
    assert q[sv]["asked_for_person"] and q[sv]["answer"] == "on-duty"
    assert not engine.store.open_session(u)["pending_reply"], "the model does not answer a request for a person"
    say(emu, u, "最近は人と話したいとも思わない")  # about people in general: not a request
    assert engine.store.open_session(u)["human_answer"] == "off-duty"


class OnCall:
    """A loopback on-call URL that records what was POSTed to it."""

    def __init__(self):
        self.posts, self.cond = [], threading.Condition()
        outer = self

        class Hook(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(204)
                self.end_headers()
                with outer.cond:
                    outer.posts.append(body)
                    outer.cond.notify_all()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/oncall"

    def wait(self, n: int, timeout: float = 10) -> list[dict]:
        """The posts once there are ``n`` of them (fewer if ``timeout`` passes first)."""
        with self.cond:
            self.cond.wait_for(lambda: len(self.posts) >= n, timeout)
            return list(self.posts)


@pytest.fixture
def oncall():
    hook = OnCall()
    yield hook
    hook.server.shutdown()


def test_crisis_sessions_come_first_and_the_on_call_url_gets_the_link_only(tmp_path, backend, oncall):
    emu = make_emulator(tmp_path, backend, oncall_url=oncall.url, console_url="https://console.example")
    try:
        u, v = "U" + "cb" * 16, "U" + "cc" * 16
        live(emu, u, "仕事がつらいです")
        sv = live(emu, v, "眠れない日が続いています")
        say(emu, v, "もう死にたい", "いなくなりたい")
        sato = Console(emu, "sato")
        sato.login()
        q = sato.queue()
        assert q[0]["id"] == sv and q[0]["crisis"] and not q[1]["crisis"]
        assert oncall.wait(1) == [{"event": "crisis", "session_url": f"https://console.example/console/s/{sv}"}]
    finally:
        emu.close()


@pytest.mark.parametrize(
    "then, told, worried",
    [
        ((), True, True),
        (("少し落ち着いてきました、ありがとう",), True, False),
        (("大丈夫です、何もないです",), False, False),
        (("薬が手元にあります", "わかった、やってみる"), True, True),
    ],
    ids=["right-after", "means-question-open", "said-safe", "means-never-said-away"],
)
def test_leaving_right_after_a_crisis_line_tells_the_on_call_person(tmp_path, backend, oncall, then, told, worried):
    """終了 right after the crisis line, with the question about a means (asked when the answer
    to the protocol said nothing about one) left open, or after saying they would put a means at
    hand away and never saying it was: the on-call URL hears that the client left (the session
    stays in the queue, marked ended); after a clear "nothing near me", not. The close says we are
    worried when their last words were the crisis line or the means was never said to be away."""
    emu = make_emulator(tmp_path, backend, oncall_url=oncall.url, console_url="https://console.example")
    try:
        u = "U" + "ce" * 16
        sid = live(emu, u, "眠れない日が続いています")
        say(emu, u, "もう死にたい", *then)
        before = ["crisis", "means_at_hand"] if "薬が手元にあります" in then else ["crisis"]
        assert [p["event"] for p in oncall.wait(len(before))] == before
        say(emu, u, "終了")
        for t in threading.enumerate():  # every on-call POST started by now has ended
            if t.name == "oncall":
                t.join(10)
        assert [p["event"] for p in oncall.posts] == before + (["left_after_crisis"] if told else [])
        assert ("心配" in texts(emu, u)[-2]) is worried, texts(emu, u)[-2:]  # the close, then the check-in offer
        assert oncall.posts[-1]["session_url"] == f"https://console.example/console/s/{sid}"
        sato = Console(emu, "sato")
        sato.login()
        top = sato.queue()[0]
        assert top["id"] == sid and top["crisis"] and top["ended"]
    finally:
        emu.close()


@pytest.mark.parametrize(
    "between, told",
    [(("わからない",), True), (("大丈夫です、何もないです", "仕事の話を聞いてほしいです"), False)],
    ids=["means-question-unanswered", "said-safe-then-talked"],
)
def test_a_client_at_risk_who_says_goodbye_gets_the_lines_before_leaving(tmp_path, backend, oncall, between, told):
    """「ありがとうございました。さようなら」 after a crisis line got the model's words (「お時間になりましたら、
    相談員としてご一緒に…」). Now: the lines, 119 and the open door while they are still here, the session left
    open (a goodbye read wrongly costs one message); the on-call person told when the question about a means
    was left unanswered, not after a clear "nothing near me" and a talk. A second goodbye ends it with care."""
    emu = make_emulator(tmp_path, backend, oncall_url=oncall.url, console_url="https://console.example")
    try:
        u = "U" + "cf" * 16
        sid = live(emu, u, "眠れない日が続いています")
        say(emu, u, "もう死にたい", *between)
        assert [p["event"] for p in oncall.wait(1)] == ["crisis"]
        generated = len(backend.prompts)
        say(emu, u, "ありがとうございました。さようなら")
        assert texts(emu, u)[-1] == M.SAFETY_FOLLOWUPS["leaving"] and len(backend.prompts) == generated, "not the model"
        assert emu.runtime.engine.store.open_session(u)["id"] == sid, "the session stays open"
        for t in threading.enumerate():
            if t.name == "oncall":
                t.join(10)
        assert [p["event"] for p in oncall.posts] == ["crisis"] + (["left_after_crisis"] if told else [])
        from bot.events import dispatch

        engine, n = emu.runtime.engine, len(texts(emu, u))  # kill -9 before the goodbye's event was marked done:
        eid = engine.store.db.execute("select id from events where user_id = ? order by rowid desc limit 1", [u])
        eid = eid.fetchone()[0]  # the worker replays it (its text as LINE sent it) under the same event id
        mid = [r for r in engine.store.turns(sid) if r["role"] == "client"][-1]["message_id"]
        goodbye = {"type": "text", "id": mid, "text": "ありがとうございました。さようなら"}
        with engine.effects_of(eid):
            dispatch(engine, {"type": "message", "source": {"type": "user", "userId": u}, "message": goodbye})
        quiesce(emu)
        assert engine.store.open_session(u)["id"] == sid and len(texts(emu, u)) == n, "not a second goodbye"
        say(emu, u, "ありがとう。おやすみなさい")
        assert "ひとりで抱えないでください" in texts(emu, u)[-2], "a second goodbye: the caring close"
        assert "合計" not in "".join(texts(emu, u)[-2:]) and not emu.runtime.engine.store.open_session(u)
    finally:
        emu.close()


def test_a_deleted_clients_session_leaves_every_console_at_once(emu):
    u = "U" + "cd" * 16
    sid = live(emu, u, "誰にも言えない話です")
    sato, suzuki = Console(emu, "sato"), Console(emu, "suzuki")
    sato.login()
    suzuki.login()
    sato.post(f"/console/s/{sid}/take")
    assert sato.c.get(f"/console/s/{sid}").status_code == 200
    emu.text(u, "削除")
    quiesce(emu)
    emu.postback(u, M.DELETE)
    quiesce(emu)
    for c in (sato, suzuki):
        assert sid not in [s["id"] for s in c.queue()]
        r = c.c.get(f"/console/api/s/{sid}")
        assert r.status_code == 404 and "誰にも" not in r.text
        assert c.c.get(f"/console/s/{sid}").status_code == 404
    assert sato.post(f"/console/s/{sid}/reply", text="まだいますか", nonce="z").status_code == 404


def test_the_audit_records_each_opening_and_action_and_holds_no_text(emu):
    u = "U" + "ce" * 16
    sid = live(emu, u, "とても個人的な話")
    sato = Console(emu, "sato")
    sato.login()
    sato.c.get(f"/console/s/{sid}")
    sato.c.get(f"/console/s/{sid}")
    sato.post(f"/console/s/{sid}/take")
    sato.post(f"/console/s/{sid}/reply", text="こちらも個人的な返事", nonce="a")
    sato.post(f"/console/s/{sid}/handback")
    rows = emu.runtime.engine.console.audit_rows(sid)
    assert [r["action"] for r in rows] == ["open", "open", "take", "reply", "hand-back"]
    assert {r["counselor"] for r in rows} == {"sato"} and all(r["at"] for r in rows)
    dump = json.dumps(list(emu.runtime.engine.store.db["audit"].rows), ensure_ascii=False)
    assert "個人的" not in dump


def test_retention_purges_old_audit_rows(emu):
    from bot.console.store import purge_audit

    engine = emu.runtime.engine
    sato = Console(emu, "sato")
    sato.login()
    assert engine.store.db["audit"].count == 1
    assert purge_audit(engine.store, before=0) == 0
    assert purge_audit(engine.store, before=float("inf")) == 1


def test_export_marks_the_turns_a_person_wrote(emu, tmp_path):
    from bot.rating import export

    u = "U" + "cf" * 16
    sid = live(emu, u, "仕事がつらいです")
    sato = Console(emu, "sato")
    sato.login()
    sato.post(f"/console/s/{sid}/take")
    sato.post(f"/console/s/{sid}/reply", text="相談員です。", nonce="a")
    engine = emu.runtime.engine
    engine.store.save_rating(engine.store.session(sid), 20, [3] * 20, {}, "done")
    written, _ = export(engine.store, tmp_path / "out")
    assert written == 1
    dialogue = json.loads((tmp_path / "out" / f"{sid}.json").read_text())["dialogue"]
    human = [d for d in dialogue if d.get("written_by") == "human"]
    assert [d["utterance"] for d in human] == ["相談員です。"]
    assert all(d.get("written_by") in ("model", "human", None) for d in dialogue)
    assert not any(d.get("written_by") for d in dialogue if d["role"] == "client")


def test_no_client_or_counselor_text_reaches_the_logs(emu, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    u = "U" + "d1" * 16
    sid = live(emu, u, "ひみつの相談ごと")
    sato = Console(emu, "sato")
    sato.login()
    sato.post(f"/console/s/{sid}/take")
    say(emu, u, "ひみつの続き", "もう死にたい")
    sato.post(f"/console/s/{sid}/reply", text="ひみつの返事", nonce="a")
    sato.post(f"/console/s/{sid}/draft")
    emu.runtime.engine.jobs.join()
    sato.post(f"/console/s/{sid}/handback")
    sato.post(f"/console/s/{sid}/end")
    quiesce(emu)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "ひみつ" not in logged and "死にたい" not in logged
    assert "taken over" in logged  # the log does say what happened


def test_behind_a_proxy_the_cookie_is_secure(tmp_path, backend):
    emu = make_emulator(tmp_path, backend, behind_proxy=True)
    try:
        r = emu.app.test_client().get("/console/login", headers={"X-Forwarded-Proto": "https"})
        assert "Secure" in r.headers["Set-Cookie"]
        r = emu.app.test_client().get("/console/login")
        assert "Secure" not in r.headers["Set-Cookie"]
    finally:
        emu.close()


def test_the_counselor_command_adds_lists_and_disables(tmp_path):
    import subprocess
    import sys

    from conftest import REPO

    db = str(tmp_path / "bot.sqlite3")

    def run(*args, stdin=""):
        cmd = [sys.executable, "-m", "bot", "counselor", *args, "--db", db]
        return subprocess.run(cmd, input=stdin, cwd=REPO, capture_output=True, text=True)

    assert run("add", "sato", "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    short = run("add", "kato", "--password-stdin", stdin="short\n")
    assert short.returncode == 2 and "at least 10 characters" in short.stderr
    again = run("add", "sato", "--password-stdin", stdin=PASSWORD + "\n")
    assert again.returncode == 2 and "exists" in again.stderr
    assert run("add", "boss", "--role", "supervisor", "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    assert run("disable", "sato").returncode == 0
    listing = run("list").stdout.splitlines()
    assert listing[0].startswith("sato\tcounselor\tdisabled") and listing[1].startswith("boss\tsupervisor\tactive")
    missing = run("disable", "nobody")
    assert missing.returncode == 2 and "no counselor named nobody" in missing.stderr
    from bot.store import Store

    stored = Store(db).db["counselors"].get(1)["password_hash"]
    assert PASSWORD not in stored and stored.startswith("scrypt:")


def test_a_client_who_leaves_right_after_a_crisis_line_is_raised_in_the_console(emu):
    u, v = "U" + "d2" * 16, "U" + "d3" * 16
    sid = live(emu, u, "眠れない日が続いています")
    ordinary = live(emu, v, "仕事のことで")
    say(emu, u, "もう死にたい", "終了")
    say(emu, v, "終了")
    sato = Console(emu, "sato")
    sato.login()
    q = {s["id"]: s for s in sato.queue()}
    assert q[sid]["ended"] and q[sid]["crisis"], "the crisis session the client left stays up"
    assert ordinary not in q, "an ordinary ended session does not"
    view = sato.c.get(f"/console/api/s/{sid}").json
    assert not view["open"] and "もう死にたい" in str(view["turns"])
    assert sato.post(f"/console/s/{sid}/take").status_code == 409, "an ended session cannot be taken"
