"""kokoro.session_audit: what a client would notice, counted the same way for bot and human."""

from kokoro.session_audit import audit, opener, summary


def test_openers_are_first_clauses():
    assert opener("そうなんですね。お仕事は？") == "そうなんですね"
    assert opener("「なるほど」、それで") == "なるほど"
    assert opener("お辛いですね\nそれで") == "お辛いですね"
    assert opener("今日はとても長い一文で始まる返事ですけれども") == "今日はとても長い一文で始"  # OPENER_CHARS


def test_a_session_is_counted_reply_by_reply_with_the_facts_known_then():
    turns = [
        ("counselor", "こんにちは。年齢と性別を教えていただけますか？"),  # the opening: said, not counted
        ("client", "30代の女性です。母の介護のことで悩んでいます"),
        ("counselor", "そうなんですね。年齢を教えていただけますか？"),  # a told fact asked again
        ("client", "夜も眠れません"),
        ("counselor", "そうなんですね。お父様はどうお考えですか？"),  # a person never mentioned
        ("client", "質問ばかりで疲れます"),
        ("counselor", "そうなんですね。介護はどんな感じですか？"),  # feedback ignored: still asking
        ("client", "はい"),
        ("counselor", "それでは終了させていただきますね。"),
        ("counselor", "PROTOCOL"),  # the bot's own message: not a reply
    ]
    a = audit(turns, before=1, fixed={"PROTOCOL"})
    assert a["replies"] == 4 and a["facts_reasked"] == 1 and a["invented"] == 1 and a["announces_end"] == 1
    assert a["feedback"] == 1 and a["feedback_ignored"] == 1
    assert a["top_opener"] == "そうなんですね" and a["top_opener_share"] == 0.75
    early = audit([("counselor", "年齢を教えていただけますか？")], before=0)
    assert early["facts_reasked"] == 0, "not told yet: asking is right"


def test_circling_is_a_question_asked_before_in_other_words():
    turns = [
        ("client", "仕事がつらいです"),
        ("counselor", "お仕事の内容は、どんなことでしょうか？"),
        ("client", "営業です"),
        ("counselor", "お仕事の内容は、どんな感じですか？"),
    ]
    assert audit(turns)["circling"] == 1


def test_the_summary_keeps_the_worst_session():
    a = audit([("client", "はい"), ("counselor", "そうですね。"), ("client", "うん"), ("counselor", "そうですね。")])
    b = audit([("client", "はい"), ("counselor", "なるほど。"), ("client", "うん"), ("counselor", "そうですか。")])
    s = summary([a, b])
    assert s["top_opener_share_max"] == 1.0 and s["top_opener_share_mean"] == 0.75 and s["sessions"] == 2
