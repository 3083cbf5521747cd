"""Issue 30 through signed webhooks: a crisis spread over messages gets the protocol once; a
flagged session ends with care (no score card, no rating request, the score stored for research)
and an opt-in check-in sent once at its time."""

import pytest
from conftest import quiesce, say
from test_crisis import FakeBackend, in_session, make_emulator, texts

from bot import messages as M
from bot.safety import crisis_message

PROTOCOL = crisis_message()[:20]  # the protocol's opening words, whatever the category


def protocols(emu, user) -> int:
    return sum(t.startswith(PROTOCOL[:12]) for t in texts(emu, user))


def crisis_then_end(emu, u):
    in_session(emu, u)
    say(emu, u, "死にたい", "終了")


class StubScorer:
    """Records that the session was scored; the engine must store what it returns."""

    identity = {"scorer": "stub"}

    def __init__(self):
        self.calls = 0

    def predict(self, turns):
        self.calls += 1
        return [3] * 20


@pytest.fixture
def emu(tmp_path):
    e = make_emulator(tmp_path, FakeBackend(), checkin_after_s=0.5)
    e.runtime.engine.scorer = StubScorer()
    yield e
    e.close()


def test_a_farewell_split_over_two_messages_gets_the_protocol_once(emu):
    from bot.safety import is_crisis

    u = "U" + "a1" * 16
    in_session(emu, u)
    first, second = "もう会えないと思う", "元気でね"
    assert not is_crisis(first) and not is_crisis(second), "each alone must be ordinary for this test"
    say(emu, u, first)
    assert protocols(emu, u) == 0
    say(emu, u, second)
    assert protocols(emu, u) == 1, texts(emu, u)
    say(emu, u, "話を聞いてくれてありがとう。少し落ち着いてきた")
    assert protocols(emu, u) == 1, "an ordinary message after the answer does not fire it again"
    sess = emu.runtime.engine.store.open_session(u)
    assert sess["crisis"] == 1


def test_messages_outside_the_window_are_not_read_together(tmp_path):
    e = make_emulator(tmp_path, FakeBackend(), crisis_window_s=0.0)
    try:
        u = "U" + "a2" * 16
        in_session(e, u)
        say(e, u, "もう会えないと思う", "元気でね")
        assert protocols(e, u) == 0
    finally:
        e.close()


def test_ending_right_after_a_crisis_line_gets_a_caring_close_and_no_score(emu):
    u = "U" + "a3" * 16
    in_session(emu, u)
    say(emu, u, "今日はずっと仕事のことを考えてた", "もう死にたい")
    assert protocols(emu, u) == 1
    say(emu, u, "もう少し話してもいい？")  # an ordinary message after the protocol, in the window
    assert protocols(emu, u) == 1, "the old crisis line does not fire again"
    say(
        emu, u, "やっぱりもう死にたい"
    )  # the means question is open: its question again, not the protocol word for word
    assert texts(emu, u)[-1] == M.SAFETY_FOLLOWUPS["again"] and protocols(emu, u) == 1, "a new crisis line is answered"
    n = len(texts(emu, u))
    say(emu, u, "終了")
    after = emu.fake.delivered(u)[n:]
    said = "\n".join(m.get("text", "") or m.get("altText", "") for m in after)
    assert "心配" in said and "0120-279-338" in said and "いつでも" in said, said
    assert not any(m["type"] == "flex" for m in after), "no feedback card"
    assert "合計" not in said and "20の項目" not in said and "評価" not in said, "no score, no rating request"
    offer = after[-1]
    assert [i["action"]["data"] for i in offer["quickReply"]["items"]] == [M.CHECKIN_YES, M.CHECKIN_NO]
    store = emu.runtime.engine.store
    assert emu.runtime.engine.scorer.calls == 1
    assert store.db["scores"].count == 1, "the score is stored for research"


def test_a_flagged_session_ended_later_gets_the_caring_close_without_the_worry(emu):
    u = "U" + "a7" * 16
    in_session(emu, u)
    say(emu, u, "死にたい", "少し落ち着いてきました、ありがとう")
    n = len(texts(emu, u))
    say(emu, u, "終了")
    said = "\n".join(texts(emu, u)[n:])
    assert "聞かせてくださって" in said and "心配" not in said and "合計" not in said


def test_a_silence_after_a_crisis_line_is_met_with_worry_then_the_caring_close(emu):
    """The idle warning of a flagged session says we are worried and gives 119 again; the idle end
    that follows is the caring close."""
    u = "U" + "a8" * 16
    in_session(emu, u)
    say(emu, u, "もう死にたい")
    n = len(texts(emu, u))
    s = emu.runtime.engine.s
    s.idle_timeout_s, s.idle_warning_s = 1.5, 1.0
    got = emu.fake.wait_for(n + 3, 10, u)  # the warning, the caring close, the check-in offer
    warning, close = got[n]["text"], got[n + 1]["text"]
    assert "心配" in warning and "119" in warning and "あと" in warning, warning
    assert "しばらくお返事がなかった" in close and "心配" in close, close


def test_an_ordinary_session_still_gets_its_card_path(emu):
    u = "U" + "a4" * 16
    in_session(emu, u)
    say(emu, u, "仕事のことで悩んでいます", "終了")
    said = "\n".join(m.get("text", "") or m.get("altText", "") for m in emu.fake.delivered(u))
    assert "合計" in said and "20の項目" in said and "心配" not in said


def test_the_opt_in_check_in_is_sent_once_at_its_time(emu):
    u = "U" + "a5" * 16
    crisis_then_end(emu, u)
    emu.postback(u, M.CHECKIN_YES)
    got = emu.fake.wait_for(len(emu.fake.delivered(u)) + 2, 10, u)  # the confirmation, then the check-in
    checkins = [m for m in got if m.get("text", "").startswith("こんにちは。以前お話しした")]
    assert len(checkins) == 1
    quiesce(emu)
    store = emu.runtime.engine.store
    assert store.user(u)["checkin_due"] is None
    for _ in range(5):  # more ticks pass: nothing more is sent
        quiesce(emu)
    assert sum(m.get("text", "").startswith("こんにちは。以前お話しした") for m in emu.fake.delivered(u)) == 1


def test_declining_the_check_in_sends_none(emu):
    u = "U" + "a6" * 16
    crisis_then_end(emu, u)
    emu.postback(u, M.CHECKIN_NO)
    quiesce(emu)
    assert emu.runtime.engine.store.user(u)["checkin_due"] is None
    assert not any(t.startswith("こんにちは。以前お話しした") for t in texts(emu, u))
