import time

import pytest

from bot.safety import crisis_message, is_crisis, normalize, resources


@pytest.mark.parametrize("text", [
    "死にたい", "死 に た い", "シニタイ…😢", "ｼﾆﾀｲ", "もう消えたい", "生きていたくないです", "リスカしちゃった",
    "上司を殺したい", "自殺を考えています", "夏休みが終わったら、死のうと思っています", "首を吊ろうかと", "飛び降りたい",
    "じさつしたい", "消えてしまいたい…！！", "薬をODしました",
])
def test_crisis_expressions_are_detected(text):
    assert is_crisis(text)


@pytest.mark.parametrize("text", [
    "死ぬほど忙しい", "地震が怖いです", "今日は疲れました", "自信がない", "老舗のお店", "消しゴムをなくした", "事務職です",
    "仕事で上司に怒られました", "死ぬかと思った", "よろしくお願いします。", "家族のことで悩んでいます",
])
def test_ordinary_turns_do_not_trigger(text):
    assert not is_crisis(text)


def test_ordinary_kokorochat_client_turns_rarely_trigger(dialogues):
    """On the first 300 dialogues' client turns, triggers stay rare and each holds a crisis word."""
    turns = [t.text for d in dialogues[:300] for t in d.turns if t.role == "client"]
    hits = [t for t in turns if is_crisis(t)]
    assert len(hits) / len(turns) < 0.01
    words = ("死", "し", "消", "き", "生", "い", "自", "じ", "殺", "ころ", "首", "飛", "り", "手", "od", "薬", "く")
    assert all(any(w in normalize(h) for w in words) for h in hits)


def test_normalize_folds_variants():
    assert normalize("シ ニ タ イ！！😢") == normalize("しにたい")


def test_resources_file_has_a_last_checked_date():
    r = resources()
    assert r["last_checked"] and any(x["contact"] == "0120-279-338" for x in r["resources"])
    assert "119" in crisis_message() and "0120-279-338" in crisis_message()


@pytest.fixture
def emu(tiny_gguf, tmp_path):
    from bot.emulator.client import Emulator

    e = Emulator(counselor_gguf=str(tiny_gguf), db_path=str(tmp_path / "b.sqlite3"), quiet_gap_s=0.3, tick_s=0.1,
                 n_threads=1, max_tokens=8, n_ctx=512)
    yield e
    e.close()


def consent(emu, u):
    from bot import messages as M

    emu.follow(u)
    emu.fake.wait_for(1, 10, u)
    emu.postback(u, M.CONSENT)
    emu.fake.wait_for(2, 10, u)


def test_bot_answers_a_crisis_at_once_and_keeps_the_session(emu):
    u = "U" + "9" * 32
    consent(emu, u)
    emu.text(u, "もう 死にたい")
    got = emu.fake.wait_for(5, 30, u)  # opening, crisis resources, counselor reply
    texts = [m["text"] for m in got[2:]]
    assert any("0120-279-338" in t for t in texts)
    i = next(i for i, t in enumerate(texts) if "0120-279-338" in t)
    assert i < len(texts) - 1  # the counselor reply came after the resources
    store = emu.runtime.engine.store
    sess = store.open_session(u)
    assert sess is not None and sess["crisis"] == 1


@pytest.mark.parametrize("draft,item", [
    ("それは普通じゃないですね", "harmful"), ("あなたにも悪いところがあります", "harmful"), ("甘えているだけです", "harmful"),
    ("それはうつ病ですね", "medical"), ("お薬をやめてみましょう", "medical"), ("睡眠薬を使うといいですよ", "medical"),
    ("霊のせいかもしれません", "occult"), ("前世の因縁です", "occult"), ("性的な話をしましょう", "sexual"),
])
def test_drafts_failing_screening_items_are_caught(draft, item):
    from bot.safety import screen_draft

    assert item in screen_draft(draft)


@pytest.mark.parametrize("draft", ["そうなんですね。", "お仕事、大変でしたね。", "眠れない日が続いているのですね。",
                                   "病院には行かれましたか？", "お話ししてくださってありがとうございます。"])
def test_ordinary_counselor_replies_pass(draft):
    from bot.safety import screen_draft

    assert screen_draft(draft) == []


def test_gold_counselor_turns_rarely_fail_screening(dialogues):
    from bot.safety import screen_draft

    turns = [t.text for d in dialogues[:300] for t in d.merged() if t.role == "counselor"]
    assert sum(bool(screen_draft(t)) for t in turns) / len(turns) < 0.01


def test_a_failing_draft_is_replaced_by_a_safe_reply(emu):
    from bot.safety import SAFE_REPLY

    emu.runtime.engine.backend.generate = lambda key, prompt: "それはうつ病ですね"
    u = "U" + "6" * 32
    consent(emu, u)
    emu.text(u, "眠れません")
    got = emu.fake.wait_for(4, 20, u)
    assert got[3]["text"] == SAFE_REPLY
    turns = emu.runtime.engine.store.turns(emu.runtime.engine.store.open_session(u)["id"])
    assert turns[-1]["text"] == SAFE_REPLY and "うつ病" not in "".join(t["text"] for t in turns)
