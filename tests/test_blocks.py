"""The scorer build's shared analysis (kokoro/blocks.py): the same features however the work is
cached or spread over processes."""

import re

import numpy as np
import pytest

from kokoro import blocks
from kokoro.blocks import BlockCache, fork_map, gram_codes
from kokoro.dataset import Turn

CONTENT = "0123456789ABCXYZabcxyzＡＺａｚ０９漢字カタカナ"


def _grams(s, n):
    return {s[i : i + n] for i in range(len(s) - n + 1)}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "あ",
        "そうなんですね。",
        "母の介護で、毎日つらいです…😢",
        "ＯＫです、A4の紙に\n書きました",
        CONTENT + "ーぁ、",
    ],
)
def test_gram_codes_are_the_ngrams_themselves(text):
    """A code is the n-gram, exactly: as many codes as distinct n-grams, equal where they are
    equal; a bigram is content when either char is a kanji, katakana, letter or digit."""
    bi, tri = gram_codes(text)
    content = re.compile(r"[\u4e00-\u9fff\u30a0-\u30ffA-Za-z0-9Ａ-Ｚａ-ｚ０-９]").search  # the rule as a regex
    assert len(tri) == len(_grams(text, 3))
    assert len(bi) == len({g for g in _grams(text, 2) if content(g)})
    assert all(np.diff(tri) > 0) and all(np.diff(bi) > 0)


def test_shared_ngrams_count_the_intersections():
    from kokoro.cpu_scorer import _shared

    texts = ["今日は仕事がつらい", "仕事がつらいんですね", "まったく別の話"]
    inter, sizes = _shared([gram_codes(t)[1] for t in texts])
    for i, a in enumerate(texts):
        assert sizes[i] == len(_grams(a, 3))
        for j, b in enumerate(texts):
            assert inter[i, j] == len(_grams(a, 3) & _grams(b, 3))


def _square(x):
    return x * x + blocks.state()


def test_fork_map_keeps_order_and_state_in_both_paths(monkeypatch):
    monkeypatch.setattr(blocks, "PARALLEL_MIN", 10)
    items = list(range(25))
    assert fork_map(_square, items, 2, 7) == fork_map(_square, items, 1, 7) == [x * x + 7 for x in items]
    assert blocks.state() is None, "a finished map leaves no state behind"


def _sessions():
    from kokoro.perturb import suite

    client = ["職場の人間関係で悩んでいます", "上司に毎日怒られます", "もう行きたくないです", "眠れません"]
    counselor = ["そうなんですね。", "上司の方に怒られるのはつらいですね。", "眠れないのですか？", "そうなんですね。"]
    sessions = []
    for k in range(12):
        turns = []
        for i, (c, o) in enumerate(zip(client, counselor)):
            turns += [
                Turn("client", f"2024-01-01T10:{i:02d}:00", c + "。" * (k % 3)),
                Turn("counselor", f"2024-01-01T10:{i:02d}:30", o),
            ]
        sessions.append(turns)
    return sessions + suite(sessions, "other_sessions") + suite(sessions, "backchannel")


def test_coherence_features_are_the_same_serial_cached_and_forked(monkeypatch):
    from sklearn.feature_extraction.text import TfidfVectorizer

    from kokoro.cpu_scorer import coherence_features, coherence_matrix, text_blocks

    monkeypatch.setattr(blocks, "PARALLEL_MIN", 5)
    ss = _sessions()
    v = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True).fit([text_blocks(t)[1] for t in ss])
    alone = np.array([coherence_features(t, v) for t in ss])  # a fresh cache per session
    cache = BlockCache(v, 2)
    forked = coherence_matrix(ss, v, cache=cache)
    again = coherence_matrix(ss[:5], v, cache=cache)  # served from the cache
    assert np.allclose(alone, forked, atol=1e-6) and np.allclose(forked[:5], again)
    assert len(cache.row) < sum(len(t) for t in ss), "each distinct block is analysed once"
