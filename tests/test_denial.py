"""A client at risk who denies the crisis words they use (「別に死ぬとかじゃないです」) is answered as
answering the protocol, not sent the protocol's question again as a new crisis line; nothing that is
itself a crisis (「死にたい気持ちが止まらない」, 「死ぬつもりはないけど消えたい」) is read as a denial.
bot/denial.py; docs/safety.md "A denial of the crisis words"."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from conftest import say
from test_crisis import FakeBackend, in_session, make_emulator, texts

from bot import messages as M
from bot.denial import figures
from bot.safety import crisis_message

SETS = Path(__file__).resolve().parents[1] / "bot" / "safety_sets"
F = M.SAFETY_FOLLOWUPS
MODEL = "そうなんですね。"


@pytest.fixture
def emu(tmp_path):
    e = make_emulator(tmp_path, FakeBackend(MODEL))
    yield e
    e.close()


def test_the_denial_sets_are_frozen():
    want = {
        "denials_holdout.tsv": "6045534d012b5227",  # read while writing the rule: first run 23/23, 1 crisis (not clean)
        "denials_holdout2.tsv": "b92ae8596c5f77cc",  # first run (clean) 15 of 18 denials read, 0 of 12 crisis
        "denials_holdout3.tsv": "1978bad751dc2db7",  # first run (clean, after the head rule) 10 of 13, 0 of 16
    }
    for name, prefix in want.items():
        assert hashlib.sha256((SETS / name).read_bytes()).hexdigest().startswith(prefix), name


@pytest.mark.parametrize(
    "name, crisis_as_denial",
    [
        (
            "denials_holdout.tsv",
            1,
        ),  # 「死にたいわけじゃないけど、明日が来なければいいと思う」: its second clause the lexicon misses
        ("denials_holdout2.tsv", 0),
        ("denials_holdout3.tsv", 0),
    ],
)
def test_denials_the_detector_fires_on_are_read_and_no_crisis_is(name, crisis_as_denial):
    got = figures(SETS / name)  # what `python -m bot safety-eval` reports under "denials"
    assert got["denials_read"] == got["denials_fired"] > 0, got["wrong"]
    assert got["crisis_read_as_denial"] <= crisis_as_denial, got["wrong"]


@pytest.mark.parametrize("name", ["cssrs_holdout5.tsv", "cssrs_train3.tsv", "crisis.tsv"])
def test_no_written_crisis_line_is_read_as_a_denial(name):
    """The first rule read 81 of the written splits' 1,510 firing crisis lines as denials
    (死にたい気持ちが止まらない, この世にいない, 頭から離れない): a negation of any word but a frame."""
    got = figures(SETS / name)
    assert got["crisis_fired"] > 20 and got["crisis_read_as_denial"] == 0, got["wrong"]


def _after_protocol(emu, u, line):
    in_session(emu, u)
    say(emu, u, "もう死にたい")
    assert texts(emu, u)[-1] == crisis_message(["ideation"])
    n = len(texts(emu, u))
    say(emu, u, line)
    return texts(emu, u)[n:]


def test_a_denial_answers_the_protocol_with_the_means_question_not_the_protocol_again(emu):
    u = "U" + "d1" * 16
    got = _after_protocol(emu, u, "別に死ぬとかじゃないです")
    assert got == [F["means_question"]], got
    n = len(texts(emu, u))
    say(emu, u, "家にいます")  # the means question answered: relief, then the counselor goes on
    assert texts(emu, u)[n:] == [F["relief"]]
    n = len(texts(emu, u))
    say(emu, u, "死ぬつもりはないです", "仕事の話なんですけど")  # a denial later: the counselor, never the protocol
    assert texts(emu, u)[n:] == [MODEL, MODEL], texts(emu, u)[n:]
    n = len(texts(emu, u))
    say(emu, u, "終了")  # read alone, not with the denial before it: the caring close, no protocol
    said = "\n".join(texts(emu, u)[n:])
    assert "いつでも開いています" in said and crisis_message(["ideation"]) not in said and F["again"] not in said, said


@pytest.mark.parametrize(
    "line",
    ["死ぬつもりはないけど、消えてしまいたい", "死にたい気持ちが止まらない", "死にたくないわけじゃない"],
    ids=["denial-beside-a-crisis", "negation-of-another-word", "double-negation"],
)
def test_a_crisis_that_holds_a_negation_still_gets_the_protocols_question_again(emu, line):
    got = _after_protocol(emu, "U" + "d2" * 16, line)
    assert got == [F["again"]], got


def test_a_denial_as_the_first_word_of_risk_still_gets_the_protocol(emu):
    """Outside a session at risk the detector stays as it is: someone who brings up dying, even to deny
    it, is given the lines once (docs/safety.md says why)."""
    u = "U" + "d3" * 16
    in_session(emu, u)
    say(emu, u, "死にたいわけじゃないです")
    assert texts(emu, u)[-1] == crisis_message(["ideation"])


@pytest.mark.parametrize(
    "line",
    [
        "家を出るか、親を殺すかないかもしれない",  # か is a frame only in とか
        "死にたいことは誰にも言わないようにしてる",  # 言わないように: kept secret, not denied
        "このまま死ぬんじゃないかと思う",  # じゃないか: a fear said
        "リスカしてるなんて親に言うわけないじゃん",  # わけない: "no way would I say it"
        "自分じゃ死ねないなって思う",  # 死ねない: cannot, not will not
        "まだ死にたくはないので",  # not yet
        "死にたくないから我慢してる",  # an urge held back
        "死にたいと思う日が来るなんて思わなくて、怖くなった",  # 思わなくて: a story, not a denial
        "死にたいと思わないくらいには元気になりたい",  # a degree hoped for
        "自殺したいとは誰にも言えない",  # cannot tell, not does not want
        "どうしたら死にたいと思わなくなるんだろう",  # 〜なくなる: to stop wanting is to want now
        "こんな人生なら死んでもいいと思いませんか",  # a question that asserts
    ],
)
def test_what_real_clients_say_beside_a_negation_is_not_a_denial(line):
    """Forms met in KokoroChat's client turns (dialogues 2001–5500, read, not committed), reworded."""
    from bot.denial import denies
    from bot.safety import crisis_categories

    assert crisis_categories(line), "the detector must fire on it for the test to mean anything"
    assert not denies(line)


def test_koto_is_a_denial_only_after_a_verb_of_thinking():
    """「死にたいと思うことなんてない」 denies a thought; other こと (「いいことなんてない」, met in a real
    client's turn) negate something else, so the reader leaves them to the protocol — 「自分を傷つけること
    なんてない」 among them, a denial it does not read (a question asked again, not a crisis missed)."""
    from bot.denial import denies

    assert denies("死にたいと思うことなんてない") and denies("消えたいと考えたこともない")
    assert not denies("自分を傷つけることなんてない")
