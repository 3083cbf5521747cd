"""Issue 32: the session's memory of what the client said, and the rules a reply keeps because of
it — on the labelled sets (frozen held-out splits, first-run figures in docs/conversation.md),
through signed webhooks with a backend that writes the bad drafts on purpose, and through the
README's main command with the embedded demo counselor."""

import hashlib

import pytest
from conftest import REPO, quiesce
from test_conversation import demo_chat, replies_to
from test_crisis import FakeBackend, consented, make_emulator, texts

from bot import messages as M
from kokoro import memory
from kokoro.conversation import questions

SETS = REPO / "kokoro" / "rule_sets"
FROZEN = {
    "session_memory_holdout.tsv": "460f33a6191c86c4a5fbd029347ce43d92a3f0edb8c3c60272893da65bf9000c",
    "session_memory_holdout2.tsv": "7e91fa8060afed1c9ca33511a6f8acd9835b5ee95e4f311fc32d4daec5762cab",
    "session_end_holdout.tsv": "57c52bfd9000db9b653803cf4a8358bceef64474a8e1f4f5bd0abfe33a51e52b",
    "session_end_holdout2.tsv": "4e8345920bab9e81779772a7129d3d33e13f4fc2511b444f561fef3363357a7d",
    "client_leave_holdout.tsv": "ac348a41ff7f46b9afb8550d8f6585d8e98ab503cab418fc6a49631df6390777",
    "client_leave_holdout2.tsv": "a069308b63ae815a752582463c3aa764a6bbb399f331b07025797f10cb63dbd3",
}
MISSED = {"session_end_holdout.tsv": 2}  # 「お仕事、本当にお疲れさまでした」 cut as a sign-off; a long "come again"


@pytest.mark.parametrize("name", sorted(FROZEN))
def test_the_held_out_sets_are_frozen_and_read_right(name):
    data = (SETS / name).read_bytes()
    assert hashlib.sha256(data).hexdigest() == FROZEN[name], f"{name} changed: write a new held-out set instead"
    r = memory.evaluate(SETS / name)
    # first runs: 43/46 (then fixed), 32/32; session_end: 19/40 on the old rule, 36/40 on the rule written
    # from KokoroChat's own closings (then two of its misses fixed), 30/30; client_leave: 59/60 (then fixed), 39/40
    # (then fixed)
    assert r["of"] - r["right"] <= MISSED.get(name, 0), r["misses"]


def test_facts_come_from_the_clients_own_words():
    f = memory.facts(["こんにちは", "高2の女子です。母が認知症になって、介護のことで悩んでいます"])
    assert (f.age, f.gender, f.people, f.topic) == ("高校生", "女性", frozenset({"mother"}), True)
    assert memory.facts(["こんにちは"]).known() == [] and not memory.facts(["よろしくお願いします"]).topic
    assert memory.facts(["35歳、女性です"]).topic is False
    burst = ["こちらこそよろしくお願いします！\nはい", "30代 女性です"]  # a replayed client's first block, merged
    assert memory.facts(burst).topic is False and memory.facts(["はい、上司のことで悩んでいます"]).topic


def test_words_that_hold_a_relations_character_name_nobody():
    for text in (
        "大丈夫ですよ。",
        "工夫してみましょう。",
        "親しい人はいますか？",
        "責任転嫁ではありません。",
        "弟子入り",
    ):
        assert memory.people_of(text) == frozenset(), text
    assert memory.people_of("夫が冷たいんです") == {"husband"} and memory.people_of("親に言えない") == {
        "mother",
        "father",
    }


def test_a_draft_keeps_to_what_the_client_said():
    f = memory.facts(["35歳、女性です。母の介護がつらいです"])
    draft = "そうなんですね。相談者様は、どのようなご年齢ですか？お父様は介護についてどうお考えですか？"
    assert memory.problems(draft, f) == ["ask-age", "invented:father"]
    assert memory.repair(draft, f) == "そうなんですね。"
    assert memory.problems("お母様の介護、大変ですね。", f) == []
    # the demo's reply to a first line that already gave the topic (bot chat --script, fresh clone)
    asks_topic = "ありがとうございます。では、どのようなご相談でしょうか？"
    assert memory.problems(asks_topic, f) == ["ask-topic"] and memory.repair(asks_topic, f) == "ありがとうございます。"
    assert memory.problems("どんなことがあったんですか？", f) == [], "a follow-up is not the topic asked again"
    assert memory.problems(asks_topic, memory.facts(["35歳、女性です"])) == [], "not told yet: asking is right"
    assert memory.problems("それでは終了させていただきますね。", f) == ["announces-end"]
    assert memory.repair("それでは終了させていただきますね。", f) == memory.LISTEN
    clean = "お辛いですね。\nお母様の介護、大変ですね。"
    assert memory.repair(clean, f) == clean, "a draft that breaks nothing is sent as written, line breaks kept"
    cut = "お辛いですね。\nお父様はどうお考えですか？\nお母様の介護、大変ですね。"
    assert memory.repair(cut, f) == clean, "a cut sentence goes; the rest keeps its line breaks"


def test_what_the_client_says_about_the_conversation_is_answered():
    f = memory.Facts()
    draft = "つらかったですね。どんなことがあったんですか？"
    text, applied = memory.shape(draft, f, ["質問ばかりで疲れます"])
    assert questions(text) == [] and "no-questions" in applied
    text, _ = memory.shape(draft, f, ["質問ばかりで疲れます", "はい", "そうです"])
    assert questions(text) == [], "the quiet lasts for the next replies"
    text, _ = memory.shape(draft, f, ["質問ばかりで疲れます", "はい", "そうです", "仕事です"])
    assert questions(text), "then questions come back"
    assert memory.shape(draft, f, ["そういう意味じゃないです"])[0].startswith(memory.APOLOGY)
    text, applied = memory.shape(draft, f, ["ただ話を聞いてほしいだけなんです"])
    assert text.startswith(memory.EMPATHY) and questions(text) == []
    assert memory.shape(draft, f, ["もうやめたいです"]) == (memory.OFFER_END, ["offer-end"])
    assert memory.shape(draft, f, ["仕事をやめたいと思っています"])[0] == draft
    assert memory.shape(draft, f, ["ありがとうございました。さようなら"]) == (memory.OFFER_END, ["offer-end"])
    assert memory.shape(draft, f, ["母に「さようなら」と言われました"])[0] == draft


# ------------------------------------------------------------------ through signed webhooks


class Scripted(FakeBackend):
    """A counselor that writes the given drafts in order (the bad ones the rules must catch)."""

    def __init__(self, drafts):
        super().__init__()
        self.drafts = list(drafts)
        self.avoided = []

    def generate(self, key, prompt, avoid=(), openers=()):
        self.avoided.append(list(avoid))
        return self.drafts.pop(0) if self.drafts else "そうなんですね。"


@pytest.fixture
def scripted(tmp_path):
    made = []

    def make(drafts):
        backend = Scripted(drafts)
        (tmp_path / str(len(made))).mkdir()
        emu = make_emulator(tmp_path / str(len(made)), backend)
        made.append(emu)
        return emu, backend

    yield make
    for e in made:
        e.close()


def test_a_client_who_gives_everything_first_gets_a_greeting_and_a_reply_not_the_questions(scripted):
    emu, backend = scripted(["お母様の介護、本当に大変でしたね。相談者様は、おいくつですか？"])
    u = "U" + "m1" * 16
    consented(emu, u)
    emu.text(u, "40代の女性です。母の介護で毎日くたくたです")
    quiesce(emu)
    got = texts(emu, u)[2:]
    assert got[0] == M.GREETING + "\nメッセージをありがとうございます。", got
    assert got[1] == "お母様の介護、本当に大変でしたね。", "the model answered, without asking the age"
    assert {"年齢を教えていただけますか？", "今日はどのようなご相談でしょうか？"} <= set(backend.avoided[0])


def test_the_opening_asks_only_what_is_missing(scripted):
    emu, _ = scripted([])
    u = "U" + "m2" * 16
    consented(emu, u)
    emu.text(u, "大学2年です")
    quiesce(emu)
    opening = texts(emu, u)[2]
    assert "性別" in opening and "年齢" not in opening and "どのようなご相談" in opening


def test_invented_people_and_the_end_announcement_never_reach_the_client(scripted):
    emu, _ = scripted(
        ["お父様はどう思っていらっしゃいますか？", "それでは終了させていただきますね。またいつでもどうぞ。"]
    )
    u = "U" + "m3" * 16
    consented(emu, u)
    emu.text(u, "こんにちは")
    quiesce(emu)
    for line in ("母が認知症で、介護に疲れました", "はい"):
        emu.text(u, line)
        quiesce(emu)
    got = texts(emu, u)[3:]
    assert not any("お父様" in t or "終了させて" in t for t in got), got
    assert got.count(memory.LISTEN) == 1 and emu.runtime.engine.store.open_session(u), "the session stays open"


def test_a_client_at_risk_is_never_told_the_session_is_over_by_the_model(scripted):
    """The demo said 「お疲れさまでした。」 to a client with pills at hand whose 「わからない」 left the
    means-safety question without an answer. That answer now gets the means step once more; then the
    model goes on, and a sign-off from it never reaches the client; the session stays open and flagged."""
    emu, _ = scripted(["お疲れさまでした。", "本日はありがとうございました。またいつでもご相談くださいね。"] * 3)
    u = "U" + "m4" * 16
    consented(emu, u)
    lines = ("最近仕事がつらくて眠れません", "全部終わりにしたい", "さっき薬をたくさん集めておきました", "わからない")
    for line in (*lines, "仕事のことを聞いてほしい"):
        emu.text(u, line)
        quiesce(emu)
        if line == "わからない":
            assert texts(emu, u)[-1] == M.SAFETY_FOLLOWUPS["stay"], "the means step once more, not the model"
    got = texts(emu, u)
    assert got[-1] in (memory.LISTEN, *memory.GENTLE), "then the model, its sign-off cut"
    assert not any(memory.ends_session(t) for t in got[2:]), [t for t in got if memory.ends_session(t)]
    sess = emu.runtime.engine.store.open_session(u)
    assert sess and sess["crisis"], "the session stays open, and flagged"


def test_a_goodbye_is_answered_with_how_to_end_not_with_the_models_words(scripted):
    """A client's goodbye got the model's reply, its sign-off cut: words the session had not said yet, to
    someone leaving. Now: how to end (「終了」) or go on; the session stays open, nothing is scored yet. A
    second goodbye ends it; thanks after the close get an answer, not a new session's questions."""
    emu, _ = scripted(["こちらこそありがとうございました。またいつでもご相談くださいね。"])
    u = "U" + "m5" * 16
    consented(emu, u)
    for line in ("母との関係で悩んでいます", "今日はありがとうございました。おやすみなさい"):
        emu.text(u, line)
        quiesce(emu)
    assert texts(emu, u)[-1] == memory.OFFER_END and emu.runtime.engine.store.open_session(u)
    emu.text(u, "はい、ありがとうございました")  # a goodbye again: the close, with feedback and the rating invite
    quiesce(emu)
    assert not emu.runtime.engine.store.open_session(u) and texts(emu, u)[-3].startswith("本日の相談はここまで")
    emu.text(u, "ありがとうございました！")  # and after the close: an answer, not a new session asking the age
    quiesce(emu)
    assert texts(emu, u)[-1] == M.goodbye_after_close()[0]["text"] and not emu.runtime.engine.store.open_session(u)


# ------------------------------------------------------------------ the README's main command, scripted


def test_bot_chat_keeps_to_the_clients_facts_and_listens_to_pushback(tmp_path):
    lines = [
        "35歳の女性です。母が認知症になって、介護のことで相談したいです",
        "母は物忘れがひどくて、夜も眠れません",
        "質問ばかりで疲れます",
        "はい",
        "そういう意味じゃないです",
        "もうやめたいです",
    ]
    seen = replies_to(demo_chat(lines, tmp_path))
    closing = M.closing("user")[0]["text"]  # the script's end closes the session: the bot's, not the model's
    replies = [r for turn in seen for r in turn if r != closing]
    f = memory.facts(lines)
    assert not [(r, memory.problems(r, f)) for r in replies if memory.problems(r, f)]
    assert M.OPENING not in replies and not any("年齢" in r for r in replies)
    assert questions(" ".join(seen[3])) == [] and questions(" ".join(seen[4])) == [], "no questions after pushback"
    assert seen[4][-1].startswith(memory.APOLOGY)
    assert seen[5][-1] == memory.OFFER_END
