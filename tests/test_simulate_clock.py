"""A simulated session runs in seconds; the scorer reads durations and reply delays. Scored
against the human counselor of a replayed dialogue, the bot's session takes that dialogue's
clock (evaluation.simulate.retime), so the two differ in words only."""

from evaluation.simulate import retime
from kokoro.dataset import Turn


def T(role, time, text="x"):
    return Turn(role, time, text)


def test_bot_blocks_take_the_times_of_the_dialogue_blocks_they_stand_for():
    human = [
        T("counselor", "2020-01-01T10:00:00"),
        T("client", "2020-01-01T10:02:00"),
        T("client", "2020-01-01T10:03:00"),
        T("counselor", "2020-01-01T10:05:00"),
        T("client", "2020-01-01T10:09:00"),
        T("counselor", "2020-01-01T10:12:00"),
        T("client", "2020-01-01T10:20:00"),  # the human counselor said nothing after this one
    ]
    bot = [
        T("counselor", "2026-12-02T01:00:00.0", "opening"),
        T("counselor", "2026-12-02T01:00:00.1", "opening 2"),
        T("client", "2026-12-02T01:00:01"),
        T("client", "2026-12-02T01:00:01.5"),
        T("counselor", "2026-12-02T01:00:02", "reply 1"),
        T("client", "2026-12-02T01:00:03"),
        T("counselor", "2026-12-02T01:00:04", "reply 2"),
        T("client", "2026-12-02T01:00:05"),
        T("counselor", "2026-12-02T01:00:06", "reply 3"),
    ]
    got = retime(bot, human)
    assert [t.text for t in got] == [t.text for t in bot] and [t.role for t in got] == [t.role for t in bot]
    assert [t.time[11:16] for t in got] == [
        "10:00",
        "10:00",
        "10:02",
        "10:02",
        "10:05",
        "10:09",
        "10:12",
        "10:20",
        "10:20",
    ]


def test_more_bot_client_blocks_than_the_dialogue_keep_its_last_time():
    human = [T("client", "2020-01-01T10:00:00"), T("counselor", "2020-01-01T10:01:00")]
    bot = [T("client", "a"), T("counselor", "b"), T("client", "c"), T("counselor", "d")]
    assert [t.time[11:16] for t in retime(bot, human)] == ["10:00", "10:01", "10:00", "10:01"]
