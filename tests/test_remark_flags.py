"""Issue 33: the paper's screening flags predicted from the counselor's words (kokoro/flags.py), with
the rules the bot screens its own drafts with (kokoro/screening_lexicon.yaml)."""

import json

import pytest

from kokoro.dataset import Turn
from kokoro.flags import FLAG_OF, ZERO_RULE, predicted_total, remark_flags
from kokoro.labelled import read_tsv
from kokoro.perturb import EARLIER_REMARKS, REMARKS_HOLDOUT

RULES = REMARKS_HOLDOUT.parent


def said(*counselor: str) -> list[Turn]:
    turns = [Turn("client", "2024-01-01T10:00:00", "仕事がつらくて、相談したいです。")]
    for k, text in enumerate(counselor):
        turns += [
            Turn("counselor", f"2024-01-01T10:{k + 1:02d}:00", text),
            Turn("client", "2024-01-01T11:00:00", "はい"),
        ]
    return turns


def share(lines: list[str]) -> float:
    return sum(bool(remark_flags(said(t))) for t in lines) / len(lines)


def test_the_training_lists_remarks_raise_their_flag_and_look_alikes_do_not():
    rows = read_tsv(RULES / "remarks_train.tsv", 2)
    for label, floor in (("harmful", 0.9), ("unethical", 0.9)):
        lines = [t for lab, t in rows if lab == label]
        got = [FLAG_OF[label] in remark_flags(said(t)) for t in lines]
        assert sum(got) / len(lines) >= floor, (label, sum(got), len(lines))
    assert share([t for lab, t in rows if lab == "ok"]) == 0.0


def test_held_out_look_alikes_are_left_alone():
    """The held-out lists' careful counselor lines (reflections of the same words, boundaries)."""
    for path in (REMARKS_HOLDOUT, *EARLIER_REMARKS):
        ok = [t for lab, t in read_tsv(path, 2) if lab == "ok"]
        assert share(ok) <= 1 / 30, path.name


@pytest.mark.parametrize(
    "line",
    [
        "根性が足りないと思ってしまうのですね。",  # a reflection of the client's own words
        "わがままだと言われて、悔しかったのですね。",  # what the client was told
        "自業自得だとおっしゃっていましたね。",
        "あなたのせいではありません。",  # on the client's side
        "わがままではないと思いますよ。",
        "お母さんがあなたのせいにしてくるのですね。",  # someone else blames the client
        "少しお話を伺いたいだけです。",
    ],
)
def test_reflections_negations_and_someone_elses_blame_raise_no_flag(line):
    assert remark_flags(said(line)) == {}


@pytest.mark.parametrize(
    "line,flag",
    [
        ("自分勝手ですね。", "harmful_due_to_ignorance"),
        ("結局はやる気の問題です。", "harmful_due_to_ignorance"),
        ("甘ったれたことを言わないでください。", "harmful_due_to_ignorance"),
        ("根性が足りないと言われたのですね。でも、私も根性が足りないと思います。", "harmful_due_to_ignorance"),
        ("私の連絡先をお伝えしますね。", "other_potentially_unethical"),
    ],
)
def test_a_remark_raises_its_flag_even_beside_a_reflection(line, flag):
    """A reflection frame lets its own sentence through, not the next one."""
    assert list(remark_flags(said(line))) == [flag]


def test_the_flags_name_the_turn_and_the_zero_rule_is_a_stated_switch():
    turns = said("そうなんですね。", "それは甘ったれた考えです。", "ほかにもありますか？")
    flags = remark_flags(turns)
    assert flags == {"harmful_due_to_ignorance": [3]} and "甘ったれ" in turns[3].text
    items = [3] * 20
    assert predicted_total(items, turns, zero_rule=True) == (0, flags)  # the paper's rule (App. A.3)
    assert predicted_total(items, turns, zero_rule=False) == (60, flags)
    assert ZERO_RULE is False, "docs/training.md says why the rule is off; change both together"


def test_real_counselors_rarely_raise_a_flag(dialogues):
    """KokoroChat's validation sessions, where clients flagged almost nothing: a flag there is a false one."""
    from kokoro.splits import scorer_split

    by = {d.id: d for d in dialogues}
    sessions = [by[i] for i in scorer_split(dialogues, 1).validation[:300]]
    flagged = sum(bool(remark_flags(d.turns)) for d in sessions)
    assert flagged / len(sessions) <= 0.015, flagged


def test_a_counselors_remark_is_stored_with_the_score_through_the_app(small_cpu_scorer, tmp_path):
    """A person at the console writes a harmful remark; the session ends; the score is stored with
    the flag naming that turn, and the client's card keeps the items' total (ZERO_RULE is off)."""
    from conftest import quiesce
    from test_console import Console, live
    from test_crisis import FakeBackend, make_emulator, texts

    scorer_dir, _ = small_cpu_scorer
    emu = make_emulator(
        tmp_path, FakeBackend(), duty_hours="平日 18:00〜22:00", quiet_gap_s=0.0, scorer=str(scorer_dir)
    )
    try:
        u = "U" + "d5" * 16
        sid = live(emu, u, "仕事でミスばかりして、つらいです")
        sato = Console(emu, "sato")
        sato.login()
        assert sato.post(f"/console/s/{sid}/take").json["ok"]
        remark = "それはあなたの努力が足りないのだと思います。"
        assert sato.post(f"/console/s/{sid}/reply", text=remark, nonce="r1").json["ok"]
        quiesce(emu)
        assert sato.post(f"/console/s/{sid}/end").json["ok"]
        quiesce(emu)
        store = emu.runtime.engine.store
        rows = store.turns(sid)
        at = next(i for i, r in enumerate(rows) if r["text"] == remark)
        score = list(store.db["scores"].rows_where("session_id = ?", [sid]))[0]
        assert json.loads(score["flags"]) == {"harmful_due_to_ignorance": [at]}
        assert score["total"] == sum(json.loads(score["items"])) > 0
        assert any(f"合計 {score['total']} / 100" in t for t in texts(emu, u))
    finally:
        emu.close()
