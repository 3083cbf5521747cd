"""The CPU scorer: char n-gram TF-IDF blocks + session-shape features → one linear model for the
20 items, with a stretch about the mean and per-item rounding offsets. Trained by ``python -m
training scorer --preset cpu``; loaded here by the bot and evaluation (numpy + scikit-learn, no torch).

Features come only from the session itself (text, lengths, times) — never from rater ids — so
the same model scores a new LINE user's session.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

from .blocks import PARALLEL_MIN, BlockCache, fork_map, state
from .dataset import Turn, merge_turns, parse_time
from .items import ITEMS, MAX_ITEM, MIN_ITEM

ARTIFACT = "cpu_scorer.joblib"
CARD = "scorer.json"
LAST_N = 6


class ScorerArtifactError(ValueError):
    pass


def text_blocks(turns: Sequence[Turn]) -> tuple[str, str, str, str]:
    """All client text, all counselor text, the last six client and last six counselor utterances."""
    cl = [t.text for t in turns if t.role == "client"]
    co = [t.text for t in turns if t.role == "counselor"]
    return "\n".join(cl), "\n".join(co), "\n".join(cl[-LAST_N:]), "\n".join(co[-LAST_N:])


def word_blocks(turns: Sequence[Turn]) -> tuple[str, str]:
    """All client text and all counselor text as space-separated MeCab words (kokoro.morph)."""
    from .morph import tagger

    tg = tagger()
    cl = "\n".join(t.text for t in turns if t.role == "client")
    co = "\n".join(t.text for t in turns if t.role == "counselor")
    return " ".join(w.surface for w in tg(cl)), " ".join(w.surface for w in tg(co))


NUMERIC = (
    "client_utterances",
    "counselor_utterances",
    "client_chars",
    "counselor_chars",
    "merged_turns",
    "minutes",
    "counselor_reply_seconds",
    "client_reply_seconds",
    "client_share",
)


def numeric_features(turns: Sequence[Turn]) -> list[float]:
    """Session shape: counts and lengths (log1p), duration, mean reply delays, client share of text."""
    cl = [t for t in turns if t.role == "client"]
    co = [t for t in turns if t.role == "counselor"]
    times = []
    for t in turns:
        try:
            times.append(parse_time(t.time))
        except (TypeError, ValueError):
            times.append(None)
    delays = {"counselor": [], "client": []}
    for (a, ta), (b, tb) in zip(zip(turns, times), zip(turns[1:], times[1:])):
        if a.role != b.role and ta and tb:
            delays[b.role].append(max(0.0, (tb - ta).total_seconds()))
    span = (times[-1] - times[0]).total_seconds() / 60 if times and times[0] and times[-1] else 0.0
    ccl, cco = sum(len(t.text) for t in cl), sum(len(t.text) for t in co)
    mean = lambda xs: sum(xs) / len(xs) if xs else 0.0
    raw = [
        len(cl),
        len(co),
        ccl,
        cco,
        len(merge_turns(turns)),
        max(span, 0.0),
        mean(delays["counselor"]),
        mean(delays["client"]),
    ]
    return [math.log1p(x) for x in raw] + [ccl / (ccl + cco) if ccl + cco else 0.0]


COHERENCE = (
    "counselor_echoes_client",  # share of a counselor block's content bigrams found in the client block before it
    "counselor_echoes_elsewhere",  # … found in the session's client blocks more than two blocks away
    "counselor_echo_gain",
    "client_echoes_counselor",  # share of a client block's content bigrams found in the counselor block before it
    "client_echoes_elsewhere",
    "client_echo_gain",
    "counselor_blocks_echoing",  # share of counselor blocks sharing any content bigram with the client before
    "counselor_repeats",  # share of counselor blocks whose char-3-gram Jaccard with an earlier one is ≥ 0.6
    "counselor_distinct",
    "counselor_short",  # share of counselor blocks of ≤ 12 characters
    "counselor_block_chars",
    "blocks",
    # the same echoes as TF-IDF cosines (the scorer's counselor-text vectorizer)
    "tfidf_counselor_client",
    "tfidf_counselor_far_client",
    "tfidf_counselor_gain",
    "tfidf_client_counselor",
    "tfidf_client_far_counselor",
    "tfidf_client_gain",
    # topic cohesion: mean cosine between the session's own counselor blocks, its client blocks
    "counselor_cohesion",
    "client_cohesion",
    "cohesion_gap",
    "long_counselor_cohesion",  # counselor blocks over 15 characters (greetings are generic)
    "counselor_reasks",  # share of counselor blocks re-asking an earlier question (kokoro.conversation)
)
REPEAT_JACCARD = 0.6


def coherence_features(turns: Sequence[Turn], vectorizer, cache: BlockCache | None = None) -> list[float]:
    """Does the counselor answer *this* client? Word echoes between adjacent blocks (merged
    turns), against the same echoes with far-away blocks of the session; topic cohesion of the
    counselor's blocks with each other; repetition and back-channel shares. Content bigrams
    contain a kanji, katakana, letter or digit (``kokoro.blocks.gram_codes``). Names in COHERENCE."""
    from .conversation import reask_share

    cache = BlockCache.of(vectorizer, cache)
    bl = merge_turns(turns)
    if not bl:
        return [0.0] * len(COHERENCE)
    reasks = reask_share([t.text for t in bl if t.role == "counselor"], cache.asked)
    return _echo_features(bl, cache) + _tfidf_features(bl, cache) + [reasks]


def coherence_matrix(
    sessions: Sequence[Sequence[Turn]], vectorizer, names: Sequence[str] = COHERENCE, cache: BlockCache | None = None
):
    """COHERENCE features of many sessions, one row each (what the coherence model reads);
    ``names``: the features a model was trained on, in its order (older scorers read fewer).
    ``cache``: a BlockCache of ``vectorizer`` shared with other calls (a build's copies of the
    same sessions); without one, the blocks are analysed once within this call."""
    import numpy as np

    unknown = [n for n in names if n not in COHERENCE]
    if unknown:
        raise ScorerArtifactError(f"coherence features {unknown} are unknown to this code; rebuild the scorer")
    cols = [COHERENCE.index(n) for n in names]
    cache = BlockCache.of(vectorizer, cache)
    parts = _by_origin(sessions, cache.n_workers)
    rows = [None] * len(sessions)
    for part, got in zip(parts, fork_map(_coherence_rows, parts, len(parts), (sessions, cache), min_items=2)):
        for i, row in zip(part, got):
            rows[i] = row
    return np.array(rows).reshape(len(sessions), -1)[:, cols]


def _by_origin(sessions, n: int) -> list[list[int]]:
    """Session indices in ``n`` parts (one when the sessions are few), a session's copies with
    it: perturbed copies and prefixes keep the session's first client block, so each part's
    cache analyses each shared block once."""
    n = n if len(sessions) >= PARALLEL_MIN else 1
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(sessions):
        groups.setdefault(next((t.text for t in s if t.role == "client"), ""), []).append(i)
    parts: list[list[int]] = [[] for _ in range(n)]
    for g in sorted(groups.values(), key=len, reverse=True):  # largest first, each to the smallest part
        min(parts, key=len).extend(g)
    return [p for p in parts if p]


def _coherence_rows(part: list[int]) -> list[list[float]]:
    sessions, cache = state()
    cache.add(t.text for i in part for t in merge_turns(sessions[i]))
    return [coherence_features(sessions[i], cache.vectorizer, cache) for i in part]


def _tfidf_features(bl, cache: BlockCache) -> list[float]:
    import numpy as np

    role = np.array([t.role == "counselor" for t in bl])
    M = cache.tfidf([t.text for t in bl])
    S = (M @ M.T).toarray()
    co, cl = np.where(role)[0], np.where(~role)[0]
    six, _ = _echoes(role, S)

    def cohesion(ix) -> float:
        if len(ix) < 2:
            return 0.0
        sub = S[np.ix_(ix, ix)]
        return float((sub.sum() - np.trace(sub)) / (len(ix) * (len(ix) - 1)))

    long_co = [i for i in co if len(bl[i].text) > 15]
    return six + [
        cohesion(co),
        cohesion(cl),
        cohesion(co) - cohesion(cl),
        cohesion(long_co),
    ]


def _mean(xs) -> float:
    return float(sum(xs) / len(xs)) if len(xs) else 0.0


def _echoes(role, sim) -> tuple[list[float], list[float]]:
    """For each counselor block: ``sim`` with the client block before it and (mean) with the
    client blocks more than two away; for each client block after a counselor block: ``sim``
    with that block and with the counselor blocks more than two away. ``role``: True for a
    counselor block; ``sim[a, b]``: how much of block a is found in block b (a matrix). Returns
    the six means (adjacent, far, gain; both ways) and the adjacent counselor echoes."""
    import numpy as np

    co = np.asarray(role, dtype=bool)
    n = len(co)
    at = np.arange(n)
    dist = np.abs(at[:, None] - at[None, :])

    def side(rows, cols, ref, pool):
        """sim[rows, cols] pairwise, and per row the mean of sim[row, pool blocks more than two
        from ref]."""
        if not len(rows):
            return np.zeros(0), np.zeros(0)
        mask = pool[None, :] & (dist[ref] > 2)
        count = mask.sum(1)
        far = np.where(count > 0, (sim[rows] * mask).sum(1) / np.maximum(count, 1), 0.0)
        return sim[rows, cols], far

    first = at[co & (at > 0)]
    first = first[~co[first - 1]]
    last = at[co & (at + 1 < n)]
    last = last[~co[last + 1]]
    adj, far = side(first, first - 1, first, ~co)
    adj2, far2 = side(last + 1, last, last, co)
    m = [float(x.mean()) if len(x) else 0.0 for x in (adj, far, adj2, far2)]
    return [m[0], m[1], m[0] - m[1], m[2], m[3], m[2] - m[3]], adj


def _shared(codes: list):
    """|a ∩ b| for every pair of the blocks' n-gram code sets, and each set's size."""
    import numpy as np

    sizes = np.array([len(x) for x in codes])
    if not sizes.sum():
        return np.zeros((len(codes), len(codes))), sizes
    _, col = np.unique(np.concatenate(codes), return_inverse=True)
    B = np.zeros((len(codes), col.max() + 1), dtype=np.float32)
    B[np.repeat(np.arange(len(codes)), sizes), col] = 1.0
    return (B @ B.T).astype(np.float64), sizes


def _echo_features(bl, cache: BlockCache) -> list[float]:
    import numpy as np

    role = np.array([t.role == "counselor" for t in bl])
    bigrams, trigrams = zip(*[cache.gram_codes(t.text) for t in bl])
    i2, s2 = _shared(list(bigrams))
    found = np.divide(i2, s2[:, None], out=np.zeros_like(i2), where=s2[:, None] > 0)
    six, adj = _echoes(role, found)
    co = np.where(role)[0]
    i3, s3 = _shared([trigrams[i] for i in co])
    union = s3[:, None] + s3[None, :] - i3
    jac = np.divide(i3, union, out=np.zeros_like(i3), where=(s3[:, None] > 0) & (s3[None, :] > 0))
    n = max(len(co), 1)
    repeats = int(np.tril(jac >= REPEAT_JACCARD, -1).any(1).sum())
    chars = [len(bl[i].text) for i in co]
    return six + [
        float((adj > 0).sum()) / max(len(adj), 1),
        repeats / n,
        len({bl[i].text for i in co}) / n,
        sum(1 for c in chars if c <= 12) / n,
        math.log1p(_mean(chars)),
        math.log1p(len(bl)),
    ]


class CpuScorer:
    """A fitted CPU scorer. ``predict_raw`` gives continuous scores, ``predict`` integers 0–5.

    ``coherence`` (optional; scorers trained before it have none): a classifier of real sessions
    against sessions whose counselor does not answer this client (``model``, on COHERENCE
    features), and the calibrated penalty it gates: the items move ``strength × gate(q)`` of the
    way towards ``bad`` — the mean items of the lowest-rated 5 % of training sessions — where
    gate(q) rises linearly from 0 at q = ``lo`` to 1 at q = ``hi``."""

    def __init__(
        self,
        vectorizers,
        numeric_mean,
        numeric_scale,
        coef,
        intercept,
        offsets,
        identity: dict,
        coherence=None,
        word_vectorizers=(),
    ):
        self.vectorizers, self.numeric_mean, self.numeric_scale = vectorizers, numeric_mean, numeric_scale
        self.coef, self.intercept, self.offsets, self.identity = coef, intercept, offsets, identity
        self.coherence, self.word_vectorizers = coherence, list(word_vectorizers)

    def features(self, sessions: Sequence[Sequence[Turn]]):
        import numpy as np
        import scipy.sparse as sp

        blocks = list(zip(*[text_blocks(t) for t in sessions]))
        mats = [v.transform(b) * w for (v, w), b in zip(self.vectorizers, blocks)]
        if self.word_vectorizers:
            words = list(zip(*[word_blocks(t) for t in sessions]))
            mats += [v.transform(b) * w for (v, w), b in zip(self.word_vectorizers, words)]
        num = (np.array([numeric_features(t) for t in sessions]) - self.numeric_mean) / self.numeric_scale
        return sp.hstack(mats + [sp.csr_matrix(num)]).tocsr()

    def predict_base_raw(self, sessions: Sequence[Sequence[Turn]]):
        """The ridge's continuous items, before the coherence penalty."""
        return self.features(sessions) @ self.coef + self.intercept

    def incoherence(self, sessions: Sequence[Sequence[Turn]], cache: BlockCache | None = None):
        """P(the counselor does not answer this client) per session; zeros without a coherence
        model. ``cache``: a BlockCache of this scorer's counselor vectorizer to share."""
        import numpy as np

        if not self.coherence:
            return np.zeros(len(sessions))
        names = self.identity.get("coherence", {}).get("features", COHERENCE)
        m = coherence_matrix(sessions, self.vectorizers[1][0], names, cache)
        return self.coherence["model"].predict_proba(m)[:, 1]

    def predict_raw(self, sessions: Sequence[Sequence[Turn]], cache: BlockCache | None = None):
        raw = self.predict_base_raw(sessions)
        if not self.coherence:
            return raw
        return apply_penalty(raw, self.incoherence(sessions, cache), self.coherence)

    def rounded(self, raw) -> list[tuple[int, ...]]:
        """The integer items (0–5) of continuous ones: stretched about the mean (``stretch``; scorers
        built before it have none), shifted by the tuned offsets, rounded."""
        import numpy as np

        s = self.identity.get("stretch")
        raw = stretch(raw, s["factor"], s["center"]) if s else np.asarray(raw)
        return [tuple(int(x) for x in row) for row in np.clip(np.rint(raw + self.offsets), MIN_ITEM, MAX_ITEM)]

    def predict_many(self, sessions: Sequence[Sequence[Turn]]) -> list[tuple[int, ...]]:
        return self.rounded(self.predict_raw(sessions))

    def predict(self, turns: Sequence[Turn]) -> tuple[int, ...]:
        if not turns:
            raise ValueError("cannot score an empty session")
        return self.predict_many([list(turns)])[0]

    def save(self, folder: Path) -> None:
        import joblib

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for v, _ in self.vectorizers + self.word_vectorizers:
            if hasattr(v, "stop_words_"):
                v.stop_words_ = None  # sklearn keeps every pruned n-gram here; not needed to predict
        joblib.dump(
            {
                "vectorizers": self.vectorizers,
                "numeric_mean": self.numeric_mean,
                "numeric_scale": self.numeric_scale,
                "coef": self.coef,
                "intercept": self.intercept,
                "offsets": self.offsets,
                "coherence": self.coherence,
                "word_vectorizers": self.word_vectorizers,
            },
            folder / ARTIFACT,
            compress=3,
        )
        (folder / CARD).write_text(json.dumps(self.identity, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: Path | str) -> "CpuScorer":
        folder = Path(folder)
        if not (folder / ARTIFACT).is_file() or not (folder / CARD).is_file():
            raise ScorerArtifactError(
                f"{folder} is not a CPU scorer folder (needs {ARTIFACT} and {CARD}); build one with "
                "`python -m training scorer --preset cpu --data DIR --out DIR`"
            )
        import joblib

        d = joblib.load(folder / ARTIFACT)
        identity = json.loads((folder / CARD).read_text(encoding="utf-8"))
        if identity.get("items") != [it.key for it in ITEMS]:
            raise ScorerArtifactError(f"{folder}: the scorer's item list differs from kokoro.items")
        return cls(
            d["vectorizers"],
            d["numeric_mean"],
            d["numeric_scale"],
            d["coef"],
            d["intercept"],
            d["offsets"],
            identity,
            d.get("coherence"),
            d.get("word_vectorizers", ()),
        )


def stretch(raw, factor: float, center: float):
    """Every item of a session moved ``factor - 1`` times its session's distance from ``center``
    (the mean item of the sessions the scorer was calibrated on): a ridge pulls whole sessions
    towards the mean, so a session rated 95 is predicted near 85 and almost no total reaches 90.
    The factor is chosen at build time (training/cpu_scorer.py: ``_choose_stretch``)."""
    import numpy as np

    raw = np.asarray(raw, dtype=float)
    return raw + (factor - 1.0) * (raw.mean(1, keepdims=True) - center)


def gate(q, lo: float, hi: float):
    import numpy as np

    return np.clip((np.asarray(q) - lo) / (hi - lo), 0.0, 1.0)


def apply_penalty(raw, q, c: dict):
    """Move each session's items ``strength × gate(q)`` of the way towards ``c["bad"]``."""
    import numpy as np

    g = c["strength"] * gate(q, c["lo"], c["hi"])
    return raw - g[:, None] * (raw - np.asarray(c["bad"])[None, :])
