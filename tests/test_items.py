import pytest

from kokoro.items import FLAGS, ITEM_KEYS, ITEMS, table2_groups, total_score


def test_twenty_items_in_paper_order_with_data_keys():
    assert len(ITEMS) == 20
    assert [it.number for it in ITEMS] == list(range(1, 21))
    assert ITEMS[0].key == "felt_heard_and_understood" and ITEMS[0].dim == "D1"
    assert ITEMS[16].key == "clarified_issues_cleraly"  # the data's spelling, D17
    assert ITEMS[19].label_ja == "勇気づけ・希望の喚起"
    assert len(set(ITEM_KEYS)) == 20 and len({it.label_ja for it in ITEMS}) == 20


def test_table2_grouping():
    groups = table2_groups()
    assert [(a, [it.number for it in its]) for _, a, its in groups] == [
        ("Sense of Validation", [1, 2]),
        ("Awareness and Hope", [3, 4]),
        ("Engagement", [5, 6]),
        ("Flow and Comfort", [7, 8]),
        ("Overall Evaluation", [9, 10]),
        ("Flow of Conversation", [11, 12]),
        ("Counseling Skills", list(range(13, 21))),
    ]
    assert {g for g, _, _ in groups[:6]} == {"Overall Impression of the Conversation"}
    assert groups[6][0] == "Evaluation of Counseling Skills"


@pytest.mark.parametrize(
    "flags,expected",
    [
        ({}, 71),
        ({"unwilling_to_continue": True}, 35),  # floor(71/2)
        ({"harmful_due_to_ignorance": True}, 0),
        ({"other_potentially_unethical": True}, 0),
        ({"unwilling_to_continue": True, "harmful_due_to_ignorance": True}, 0),
        ({"unwilling_to_continue": False}, 71),
    ],
)
def test_total_score_rule(flags, expected):
    items = [4] * 11 + [3] * 9  # 44 + 27 = 71
    assert total_score(items, flags) == expected


@pytest.mark.parametrize(
    "items,msg",
    [([3] * 19, "expected 20"), ([3] * 19 + [6], "0-5"), ([3] * 19 + [-1], "0-5"), ([3] * 19 + [2.5], "0-5")],
)
def test_total_score_rejects_bad_items(items, msg):
    with pytest.raises(ValueError, match=msg):
        total_score(items)


def test_unknown_flag_is_named():
    with pytest.raises(ValueError, match="bogus"):
        total_score([3] * 20, {"bogus": True})


def test_flags_effects():
    assert [(f.key, f.effect) for f in FLAGS] == [
        ("harmful_due_to_ignorance", "zero"),
        ("other_potentially_unethical", "zero"),
        ("unwilling_to_continue", "halve"),
    ]
