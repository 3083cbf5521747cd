"""kokoro.generation: the one rule for the next counselor turn (window, tokens, session memory)."""

import pytest

from kokoro.chat_formats import get_format
from kokoro.dataset import Turn
from kokoro.generation import WINDOW_SLACK, next_turn, prompt_tokens, window

FMT = get_format("gemma")
count = len  # one token per character: the rule does not depend on the tokenizer


def history(n: int, chars: int = 40) -> list[Turn]:
    roles = ("client", "counselor")
    return [Turn(roles[i % 2], f"2026-01-01 00:{i:02d}", f"{i:02d}" + "あ" * (chars - 2)) for i in range(n)]


def test_a_session_that_fits_keeps_its_whole_history():
    prompt, start = window(FMT, history(6), budget=2000, start=0, count_tokens=count)
    assert start == 0 and "00あ" in prompt and count(prompt) <= 2000


def test_a_moving_window_is_cut_to_the_slack_and_then_stays_put():
    budget = 1200
    h = history(60)
    prompt, start = window(FMT, h, budget=budget, start=0, count_tokens=count)
    assert start > 0 and count(prompt) <= int(budget * WINDOW_SLACK)
    later, again = window(FMT, h + history(62)[60:], budget=budget, start=start, count_tokens=count)
    assert again == start and later.startswith(prompt[:100])  # the cached prefix is reused


def test_one_message_longer_than_any_window_is_answered_from_its_end():
    huge = [Turn("client", "2026-01-01 00:00", "い" * 5000 + "最後の言葉")]
    prompt, start = window(FMT, huge, budget=800, start=0, count_tokens=count)
    assert "最後の言葉" in prompt and count(prompt) <= 800 and start == 0


def test_next_turn_avoids_what_was_said_and_asked_and_cuts_a_reask():
    seen = []

    def generate(avoid, openers):
        seen.append(list(avoid))
        return "そうなんですね。年齢を教えていただけますか？"

    turns = [("counselor", "こんにちは。"), ("client", "30代の女性です。仕事のことで悩んでいます。")]
    text, applied = next_turn(generate, turns)
    assert len(seen) == 1 and "こんにちは。" in seen[0] and len(seen[0]) > 1  # the answered questions too
    assert "年齢" not in text and applied


def test_an_empty_draft_stays_empty_for_the_caller_to_replace():
    assert next_turn(lambda avoid, openers: "", [("client", "はい")]) == ("", [])


def test_a_rendered_prompt_is_tokenized_without_a_second_bos():
    class Llm:
        def tokenize(self, data, add_bos=True, special=False):
            self.args = (data, add_bos, special)
            return [1, 2]

    llm = Llm()
    assert prompt_tokens(llm, "<bos>あ") == [1, 2] and llm.args == ("<bos>あ".encode(), False, True)


# ------------------------------------------------------------------ openers


def test_an_opener_is_worn_when_one_more_use_would_pass_the_share():
    from kokoro.generation import OPENER_SHARE, worn_openers

    said = ["こんにちは。相談員です。", "そうなんですね。大変でしたね。", "なるほど、それで？"]
    assert worn_openers(said) == ["こんにちは", "そうなんですね", "なるほど"]  # 2 of 4 > 0.3
    many = said + [f"{w}ですね。" for w in ("つらい", "悲しい", "苦しい", "寂しい", "悔しい", "心細い", "不安")]
    assert (1 + 1) / (len(many) + 1) <= OPENER_SHARE and worn_openers(many) == []


def test_the_opener_ban_takes_logits_off_a_worn_openers_next_token_only_on_its_path():
    import numpy as np

    from kokoro.llm import OpenerBan

    class Llm:
        def tokenize(self, data, add_bos=False, special=False):
            return {"そうなんですね": [5, 6, 7], "はい": [9], "ありがとうございます": [10]}[data.decode()]

    ban = OpenerBan(Llm(), ["そうなんですね", "はい", "ありがとうございます"], n_prompt=2, penalty=8.0)
    step = lambda gen: ban(np.array([1, 2, *gen]), np.zeros(12))
    assert list(np.nonzero(step([]))[0]) == [10], "「そう」 and 「はい」 stay free; a one-token phrase does not"
    assert list(np.nonzero(step([5]))[0]) == [6] and step([5])[6] == -8.0
    assert list(np.nonzero(step([5, 6]))[0]) == [7]
    assert not step([5, 8]).any() and not step([5, 6, 7]).any(), "off the path, or past it: untouched"


def test_a_scripted_client_sees_varied_openers_and_none_of_the_broken_rules(tmp_path):
    """The README's main command with the demo counselor and a written client (evaluation/clients):
    counted by kokoro.session_audit, as `evaluation simulate` counts it."""
    from conftest import REPO
    from test_conversation import demo_chat

    from kokoro.dataset import merge_turns
    from kokoro.session_audit import audit

    lines = (REPO / "evaluation" / "clients" / "student.txt").read_text(encoding="utf-8").splitlines()
    messages: list[list[str]] = []  # [role, text]; a message's further lines continue it
    for x in demo_chat([x for x in lines if x.strip()], tmp_path):
        head = x.split(": ", 1)
        if head[0] in ("client", "bot") and len(head) == 2:
            messages.append(["client" if head[0] == "client" else "counselor", head[1]])
        elif messages:
            messages[-1][1] += "\n" + x
    first = next(i for i, m in enumerate(messages) if m[0] == "client")  # the consent notice before it
    last = max(i for i, m in enumerate(messages) if m[0] == "client")  # the script's end: the bot closes
    merged = merge_turns([Turn(role, "", text) for role, text in messages[first:last]])
    a = audit([(t.role, t.text) for t in merged], before=1)  # the opening block, as simulate counts it
    assert a["replies"] >= 6
    assert a["top_opener_share"] <= 0.35, a
    assert a["facts_reasked"] == 0 and a["invented"] == 0 and a["announces_end"] == 0, a


def test_a_worn_interjection_is_cut_and_a_circling_question_dropped():
    from kokoro.memory import GENTLE

    said = [
        ("counselor", "ええ、そうですか。"),
        ("client", "はい"),
        ("counselor", "ええ、なるほど。"),
        ("client", "部活です"),
    ]
    text, applied = next_turn(lambda avoid, openers: "ええ、部活では何をしていますか？", said)
    assert text == "部活では何をしていますか？" and "opener" in applied
    asked = [
        ("client", "仕事がつらいです"),
        ("counselor", "お仕事の内容は、どんなことでしょうか？"),
        ("client", "営業です"),
    ]
    text, applied = next_turn(lambda avoid, openers: "大変ですね。お仕事の内容は、どんな感じですか？", asked)
    assert text == "大変ですね。" and "circling" in applied
    text, _ = next_turn(
        lambda avoid, openers: "大変ですね。\nお仕事の内容は、どんな感じですか？\n無理しないでね。", asked
    )
    assert text == "大変ですね。\n無理しないでね。", "what stays keeps its line breaks"
    text, _ = next_turn(lambda avoid, openers: "お仕事の内容は、どんな感じですか？", asked)
    assert text == GENTLE[0], "nothing but the question again: a line without pressure instead"


def test_every_draft_is_penalised_for_copying_and_a_second_try_is_sampled():
    """Issue 32's cost: the n-gram penalty on the first draft (most replies then need no second),
    and a second try that can differ from the first (greedy with the same penalty would not)."""
    import numpy as np

    from kokoro.conversation import SECOND_TEMPERATURE
    from kokoro.llm import NgramBan, OpenerBan, reply

    said = ["そうなんですね。つらかったですね。", "お仕事のことですね。"]

    class Llm:
        def __init__(self, drafts):
            self.drafts, self.calls = list(drafts), []

        def tokenize(self, data, add_bos=False, special=False):
            return [ord(c) for c in data.decode()]

        def create_completion(self, tokens, stop, logits_processor=None, **decoding):
            self.calls.append((decoding, list(logits_processor or [])))
            return {"choices": [{"text": self.drafts.pop(0), "finish_reason": "stop"}], "usage": {}}

    greedy = {"max_tokens": 32, "temperature": 0.0}
    llm = Llm(["少しずつ教えてください。"])
    text, info = reply(llm, [1, 2], ["<end>"], greedy, avoid=said, openers=["そうなんですね"])
    ((decoding, steer),) = llm.calls
    assert text == "少しずつ教えてください。" and info["tries"] == 1 and decoding == greedy
    assert {type(p) for p in steer} == {NgramBan, OpenerBan}
    copy = next(p for p in steer if isinstance(p, NgramBan))
    ids = np.array([1, 2, *map(ord, "つら")])
    assert copy(ids, np.zeros(0x10000))[ord("か")] < 0, "the draft is steered off the session's words"

    llm = Llm([said[0], "それは大変でしたね。"])
    text, info = reply(llm, [1, 2], ["<end>"], greedy, avoid=said)
    assert text == "それは大変でしたね。" and info["tries"] == 2
    again, steer2 = llm.calls[1]
    assert again["temperature"] == SECOND_TEMPERATURE and again["seed"] == len(said) and again["max_tokens"] == 32
    assert [type(p) for p in steer2] == [NgramBan]


def test_a_sentence_that_stopped_and_the_platforms_scheduling_are_never_sent():
    """Driven as a client at risk, the demo answered 「わかった」 with 「今日、。」 and went on with
    「お時間になりましたら、相談員と話を聞かせていただきますね」 (role-play scheduling before a session)."""
    from kokoro.memory import GENTLE, LISTEN

    said = [("counselor", "こんにちは。相談員です。"), ("client", "わかった")]
    text, applied = next_turn(lambda avoid, openers: "今日、。", said)
    assert text in (LISTEN, *GENTLE) and applied == ["fragment"]
    text, applied = next_turn(lambda avoid, openers: "つらかったですね。お仕事のこと、", said)
    assert text == "つらかったですね。" and applied == ["fragment"]
    text, applied = next_turn(
        lambda avoid, openers: "はい。\nお時間になりましたら、相談員と話を聞かせていただきますね。", said
    )
    assert text == "はい。" and applied == ["schedules"]
    assert next_turn(lambda avoid, openers: "はい、そうなんですね。", said) == ("はい、そうなんですね。", [])


def test_a_bracketed_draft_is_unwrapped_and_a_fragment_never_sent():
    """The demo writes stage directions (「（…）」, 5 % of replayed replies); a cut inside one left 「）」."""
    from kokoro.memory import GENTLE, LISTEN

    said = [("counselor", "こんにちは。相談員です。"), ("client", "話を聞いてもらえてうれしいです")]  # not a goodbye
    text, applied = next_turn(lambda avoid, openers: "（お話ししてくださって、ありがとうございます。）", said)
    assert text == "お話ししてくださって、ありがとうございます。" and "brackets" in applied
    text, applied = next_turn(lambda avoid, openers: "（。）", said)
    assert text == LISTEN and "fragment" in applied
    again = [*said, ("counselor", LISTEN), ("client", "話を聞いてもらえてうれしいです")]
    text, _ = next_turn(lambda avoid, openers: "（それでは終了させていただきます。）", again)
    assert text == GENTLE[0], "nothing could stay, and the line for that was said already: another one"
    kept = "そうなんですね。（笑）"
    assert next_turn(lambda avoid, openers: kept, said)[0] == kept, "brackets inside a reply stay"


@pytest.mark.parametrize(
    "draft, want",
    [
        ("。）\n（本日は、）", None),  # sent to a client at risk who said 「ありがとう」 (2026-12-07)
        ("ありがとうございます。）\n（本日は、）", "ありがとうございます。"),
        ("（ありがとうございます。）\n（本日は、）", "ありがとうございます。"),
        ("そうですね。（本日は、）", "そうですね。"),  # a comma before a closing bracket: it stopped there
        ("そうなんですね。\n。）", "そうなんですね。"),  # a line of punctuation alone
    ],
    ids=["punct-and-bracketed-fragment", "a-stray-bracket", "each-line-bracketed", "comma-in-brackets", "punct-line"],
)
def test_stray_brackets_and_bracketed_fragments_never_reach_the_client(draft, want):
    from kokoro.memory import GENTLE, LISTEN

    said = [("counselor", "答えてくださって、ありがとうございます。"), ("client", "ありがとう")]
    text, applied = next_turn(lambda avoid, openers: draft, said)
    assert "）" not in text and "（" not in text, text
    assert text == want if want else text in (LISTEN, *GENTLE), text
