"""After the crisis protocol asks "are you somewhere safe? is a means within reach?", the client's
answer is read (bot/safety_answers) and answered: a means at hand gets the means-safety message
and the on-call person is told; no clear answer gets one question about a means; a clear no gets
relief; then the counselor goes on. Through signed webhooks, as the other crisis tests."""

import hashlib
from pathlib import Path

import pytest
from conftest import say
from test_crisis import FakeBackend, in_session, make_emulator, texts

from bot import messages as M
from bot.safety import crisis_message
from bot.safety_answers import AnswerError, figures, read_answer
from kokoro.labelled import read_tsv

SETS = Path(__file__).resolve().parents[1] / "bot" / "safety_sets"
HELD_OUT = SETS / "safety_answers_holdout.tsv"
HELD_OUT2 = SETS / "safety_answers_holdout2.tsv"  # answers to the means-safety message, `agree` among them
KEPT = SETS / "safety_answers_holdout3.tsv"  # a means gathered, kept or hidden: tuned on after its first run
HELD_OUT4 = SETS / "safety_answers_holdout4.tsv"  # the same kind, written after that round (one rule widened since)
F = M.SAFETY_FOLLOWUPS
MODEL = "そうなんですね。"  # what the fake counselor says


@pytest.fixture
def emu(tmp_path):
    e = make_emulator(tmp_path, FakeBackend(MODEL))
    yield e
    e.close()


def test_the_held_out_answers_are_frozen():
    assert hashlib.sha256(HELD_OUT.read_bytes()).hexdigest().startswith("aa5d44a0ff7169ba")
    assert hashlib.sha256(HELD_OUT2.read_bytes()).hexdigest().startswith("a37f061d52f7a468")
    assert hashlib.sha256(KEPT.read_bytes()).hexdigest().startswith("68a94051d01ac7ff")
    assert hashlib.sha256(HELD_OUT4.read_bytes()).hexdigest().startswith("5ba583be3671e8ef")


@pytest.mark.parametrize(
    "path, missed",
    [
        (KEPT, 1),  # first run: 17 of 34 missed; 「ネットで練炭を頼んだ」 is left (頼む: also "asked someone to")
        (HELD_OUT4, 5),  # its first run missed 5 of 21 (docs/safety.md); the reader before the round, 10
    ],
    ids=["kept-tuned-on", "kept-held-out"],
)
def test_a_means_gathered_kept_or_hidden_is_a_means_at_hand(path, missed):
    """「薬をため込んでいる」「とってある」「ストックしてる」 answer "is a means within reach?" with a yes,
    and a doubt (「安全かどうか」) or a past (「前はため込んでた」) is not an all-clear."""
    got = figures(path)
    assert got["danger_missed"] <= missed and got["read_safe_wrongly"] == 0, got["wrong"]


@pytest.mark.parametrize("path", [SETS / "safety_answers.tsv", HELD_OUT, HELD_OUT2])
def test_no_means_at_hand_is_missed_and_nothing_unsafe_is_read_as_safe(path):
    got = figures(path, misses=True)  # what `python -m bot safety-eval --answers FILE` prints
    assert got["lines"] == len(read_tsv(path, 3))
    assert got["danger_missed"] == 0 and got["read_safe_wrongly"] == 0, got["wrong"]


def test_a_bad_row_is_named_with_its_line(tmp_path):
    f = tmp_path / "mine.tsv"
    f.write_text("# mine\ndanger\tprotocol\t薬はある\ndanger\tplace\t屋上にいる\n", encoding="utf-8")
    with pytest.raises(AnswerError, match=r"mine.tsv:3: .*'place'.*protocol, means, danger"):
        figures(f)


def test_what_was_asked_decides_a_bare_yes():
    assert read_answer("はい", "protocol") == "unclear"  # which of the two questions?
    assert read_answer("はい", "means") == "danger"
    assert read_answer("いいえ", "means") == "safe"
    assert read_answer("はい", "danger") == "agree"  # to "put it away and tell me": the bot waits
    assert read_answer("無理", "danger") == "danger" and read_answer("無理", "protocol") == "unclear"
    with pytest.raises(AnswerError, match="protocol, means, danger, away"):
        read_answer("はい", "place")


def test_a_promise_to_put_it_away_is_not_thanked_as_done():
    assert read_answer("今から別の部屋に置いてきます", "danger") == "agree"
    assert read_answer("別の部屋に置いてきました", "danger") == "safe"
    assert read_answer("大丈夫", "danger") == "agree" and read_answer("大丈夫", "protocol") == "safe"
    assert read_answer("手元に置いてる", "danger") == "danger"


def test_a_means_at_hand_gets_the_means_safety_message_not_the_model(emu):
    u = "U" + "e1" * 16
    in_session(emu, u)
    say(emu, u, "もう死にたい", "家にいます。薬はたくさん手元にあります")
    got = texts(emu, u)
    assert got[-1] == F["means_safety"] and MODEL not in got[-2:], got[-3:]
    say(emu, u, "別の部屋に置いてきた")
    assert texts(emu, u)[-1] == F["relief_away"]
    say(emu, u, "少し話してもいいですか")
    assert texts(emu, u)[-1] == MODEL, "then the counselor goes on"
    turns = emu.runtime.engine.store.turns(emu.runtime.engine.store.open_session(u)["id"])
    flags = [r["crisis"] for r in turns if r["role"] == "client"][-4:]
    assert flags == [1, 3, 2, None], "the answers are stored as the turns' answers"


@pytest.mark.parametrize(
    "conversation",
    [
        pytest.param(  # no clear answer: one question about a means; one follow-up each, then the counselor
            [
                ("死にたい", None),
                ("はい", "means_question"),
                ("うん", "means_safety"),
                ("できない", "still"),
                ("できない", MODEL),
            ],
            id="no-clear-answer-gets-one-question-about-a-means",
        ),
        pytest.param(  # "OK" to "put it away and tell me": the bot waits once, and hears that it is away
            [
                ("死にたい", None),
                ("薬が手元にある", "means_safety"),
                ("はい", "waiting"),
                ("置いてきました", "relief_away"),
            ],
            id="a-yes-to-put-it-away-gets-a-wait-then-thanks",
        ),
        pytest.param(
            [("死にたい", None), ("屋上にいる", "means_safety"), ("わかった", "waiting"), ("うん", MODEL)],
            id="the-wait-is-said-once",
        ),
        pytest.param(
            [
                ("死にたい", None),
                ("薬が手元にある", "means_safety"),
                ("今から預けてくる", "waiting"),
                ("無理だった", "still"),
            ],
            id="a-promise-then-cannot-gets-someone-now",
        ),
        pytest.param(  # cannot put it away: someone now; 「わかった」: the counselor; put away after all: thanked
            [
                ("死にたい", None),
                ("薬がたくさんある", "means_safety"),
                ("無理", "still"),
                ("わかった", MODEL),
                ("やっぱり別の部屋に置いてきた", "relief_away"),
            ],
            id="put-away-after-all-is-heard",
        ),
        pytest.param(  # the means still at hand and no clear answer: its step once more, then the counselor
            [
                ("死にたい", None),
                ("薬がたくさんある", "means_safety"),
                ("わからない", "stay"),
                ("わからない", MODEL),
            ],
            id="no-clear-answer-to-the-means-safety-message-gets-its-step-once-more",
        ),
        pytest.param(
            [("死にたい", None), ("大丈夫です、近くには何もないです", "relief"), ("仕事のことを聞いてほしい", MODEL)],
            id="a-clear-no-gets-relief-and-the-counselor-goes-on",
        ),
        pytest.param(  # a means gathered is a means at hand: not the protocol again, nor its question again
            [("死にたい", None), ("睡眠薬を少しずつ集めてる", "means_safety")],
            id="pills-gathered-get-the-means-safety-message",
        ),
        pytest.param(  # a crisis line for an answer: the question again (resources in it), then the answer read
            [
                ("死にたい", None),
                ("もう消えたい", "again"),
                ("やっぱり死にたい", "again"),
                ("薬は手元にある", "means_safety"),
            ],
            id="a-crisis-line-for-an-answer-gets-the-question-again-not-the-protocol-twice",
        ),
        pytest.param(  # a means known at hand: a crisis line gets its step again, not the question about one
            [
                ("死にたい", None),
                ("薬がたくさんある", "means_safety"),
                ("やっぱり死にたい", "again_means"),
                ("わからない", "stay"),
                ("もう消えたい", "again_means"),
                ("別の部屋に置いてきた", "relief_away"),
            ],
            id="a-crisis-line-with-a-means-at-hand-gets-its-step-again-not-the-protocol",
        ),
        pytest.param(
            [("死にたい", None), ("安全かどうかって言われても", "means_question")],
            id="a-doubt-is-not-an-all-clear",
        ),
    ],
)
def test_each_answer_gets_its_follow_up(emu, conversation):
    u = "U" + "e2" * 16
    in_session(emu, u)
    for line, want in conversation:
        say(emu, u, line)
        if want is not None:
            assert texts(emu, u)[-1] == F.get(want, want), line
    assert texts(emu, u).count(crisis_message(["wish_dead"])) <= 1, "the protocol is never sent twice word for word"


@pytest.mark.parametrize(
    "word, answered_by",
    [
        ("終了", "心配"),  # the caring close
        ("削除", M.confirm_delete()[0]["text"]),
        ("相談員と話したい", M.human_requested(False, "")[0]["text"][:12]),
    ],
    ids=["end", "delete", "human"],
)
def test_a_control_word_after_the_protocol_is_not_read_as_an_answer(emu, word, answered_by):
    """M.control_word is the one list of what a message asks the bot to do: each word it names is
    acted on, never answered with the means question."""
    u = "U" + "e4" * 16
    in_session(emu, u)
    say(emu, u, "死にたい")
    n = len(texts(emu, u))
    say(emu, u, word)
    said = "\n".join(texts(emu, u)[n:])
    assert F["means_question"] not in said and answered_by in said, said


def test_a_session_a_console_counselor_holds_is_theirs_to_answer(emu):
    from bot import handoff

    u = "U" + "ea" * 16
    in_session(emu, u)
    engine = emu.runtime.engine
    sid = engine.store.open_session(u)["id"]
    handoff.take_over(engine, engine.console, sid, engine.console.get(engine.console.add("sato", "pw-long-enough-1")))
    say(emu, u, "死にたい")
    assert texts(emu, u)[-1] == crisis_message(["wish_dead"]), "the protocol is never held back"
    say(emu, u, "薬は手元にあります")
    assert F["means_safety"] not in texts(emu, u) and MODEL not in texts(emu, u)[-2:]
    assert engine.awaiting(u) is None, "nothing is awaited once the counselor answers"


def test_a_new_session_does_not_answer_the_last_ones_questions(emu):
    u = "U" + "e9" * 16
    in_session(emu, u)
    say(emu, u, "死にたい", "終了", "こんにちは")
    assert F["means_question"] not in texts(emu, u)


def test_in_a_session_a_late_answer_is_read_and_before_consent_only_within_the_window(tmp_path):
    """In a session the question stays open until the session ends (an answer after 11 minutes of
    silence, before the 15-minute idle end, is still an answer); asked before consent, with no
    session to end, it closes after ``crisis_window_s`` (0 here: every answer is late)."""
    e = make_emulator(tmp_path, FakeBackend(MODEL), crisis_window_s=0.0)
    try:
        u, v = "U" + "e5" * 16, "U" + "eb" * 16
        in_session(e, u)
        say(e, u, "死にたい", "薬は手元にあります")
        assert texts(e, u)[-1] == F["means_safety"]
        say(e, v, "死にたい", "薬は手元にあります")
        assert F["means_safety"] not in texts(e, v)
    finally:
        e.close()


def test_before_consent_the_answer_is_read_and_no_text_is_kept(emu):
    u = "U" + "e6" * 16
    say(emu, u, "もう死にたい", "ロープは用意してある")
    assert F["means_safety"] in texts(emu, u)
    assert not emu.runtime.engine.store.db["turns"].count


def test_a_replayed_event_reads_the_answer_as_it_first_did(emu):
    """kill -9 after the follow-up was sent and before the event was marked done: the replay
    finds the state moved on, reads the answer against what was asked then, sends nothing twice."""
    u = "U" + "e7" * 16
    in_session(emu, u)
    say(emu, u, "死にたい")
    engine, n = emu.runtime.engine, len(texts(emu, u))
    for _ in range(2):
        with engine.effects_of("replayed-event"):
            got = engine.crisis_first(u, "はい")
        assert got.text == F["means_question"]
    engine.outbox.flush()
    assert texts(emu, u)[n:] == [F["means_question"]]
    assert engine.awaiting(u) == "means"


def test_the_on_call_person_is_told_of_a_means_at_hand(emu, monkeypatch):
    import bot.handoff

    told = []
    monkeypatch.setattr(bot.handoff, "notify_oncall", lambda engine, sid, event="crisis": told.append(event))
    u = "U" + "e8" * 16
    in_session(emu, u)
    say(emu, u, "死にたい", "屋上にいます")
    assert told == ["crisis", "means_at_hand"]
