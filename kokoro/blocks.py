"""What the CPU scorer's coherence features read of one block (merged turn) of text, computed
once per text however many sessions and perturbed copies hold it, and spread over the cores.

A scorer build reads the same client and counselor blocks in the real session, its prefixes and
a dozen perturbed copies; analysing each text once (its counselor TF-IDF row, its char n-grams,
its questions' morphology) and using every core is what makes the build take minutes instead of
half an hour (docs/training.md: CPU scorer, build time). Work is spread by forking: a worker
inherits the parent's data and sends back only its results.

A ``BlockCache`` belongs to one build or one scoring call, never to the module: counseling text
must not outlive the sessions that hold it in a serving process.
"""

from __future__ import annotations

import os
from typing import Callable, Sequence

_CONTENT_RANGES = ((0x4E00, 0x9FFF), (0x30A0, 0x30FF), (0x41, 0x5A), (0x61, 0x7A), (0x30, 0x39))
_CONTENT_RANGES += ((0xFF21, 0xFF3A), (0xFF41, 0xFF5A), (0xFF10, 0xFF19))  # full-width letters, digits
PARALLEL_MIN = 2000  # fewer items than this are not worth a process

_active = None  # the state a forked worker reads (set just before the fork)
_fn = None  # the function a forked worker applies


def gram_codes(text: str):
    """(content-bigram codes, 3-gram codes) of a text as sorted unique int64 arrays: each char's
    code point in 21 bits, so a code is the n-gram itself, exactly. A content bigram holds a
    kanji, katakana, letter or digit (half or full width)."""
    import numpy as np

    c = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.int64)
    content = np.zeros(len(c), dtype=bool)
    for lo, hi in _CONTENT_RANGES:
        content |= (c >= lo) & (c <= hi)
    bi = ((c[:-1] << 21) | c[1:])[content[:-1] | content[1:]]
    tri = (c[:-2] << 42) | (c[1:-1] << 21) | c[2:]
    return np.unique(bi), np.unique(tri)


def workers(n: int = 0) -> int:
    """``n`` processes, or with 0 every core this process may use."""
    if n:
        return n
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def fork_map(fn: Callable, items: Sequence, n: int, state=None, min_items: int = PARALLEL_MIN) -> list:
    """``[fn(x) for x in items]`` over ``n`` forked processes, in order, where ``fn`` finds
    ``state`` through ``blocks.state()``. Items go out in small chunks, so a run of heavy items
    (a build's real sessions come before their lighter copies) does not hold up one process.
    One process when ``n`` is 1, there are fewer than ``min_items`` items, or fork is
    unavailable."""
    global _active
    import multiprocessing as mp

    if n <= 1 or len(items) < min_items or "fork" not in mp.get_all_start_methods():
        _active = state
        try:
            return [fn(x) for x in items]
        finally:
            _active = None
    _active = (fn, state)
    try:
        with mp.get_context("fork").Pool(n, initializer=_start_worker) as pool:
            return pool.map(_apply, items, chunksize=max(1, len(items) // (n * 16)))
    finally:
        _active = None


def _start_worker():
    global _fn, _active
    from threadpoolctl import threadpool_limits

    _fn, _active = _active
    threadpool_limits(1)  # one BLAS thread per worker: n workers already fill n cores


def _apply(x):
    return _fn(x)


def state():
    """The state a ``fork_map`` worker was given."""
    return _active


class BlockCache:
    """Per text: its row of ``vectorizer`` (the scorer's counselor char TF-IDF), its n-gram codes
    and its questions' (3-grams, topics) (``kokoro.conversation._asked``, the MeCab pass).
    ``n_workers``: processes a ``coherence_matrix`` call may use (1: none; 0: every core)."""

    @classmethod
    def of(cls, vectorizer, cache: "BlockCache | None" = None) -> "BlockCache":
        """``cache`` when it holds ``vectorizer``'s rows, else a new one-process cache."""
        return cache if cache is not None and cache.vectorizer is vectorizer else cls(vectorizer)

    def __init__(self, vectorizer, n_workers: int = 1):
        self.vectorizer, self.n_workers = vectorizer, workers(n_workers)
        self.row: dict[str, int] = {}
        self.matrix = None
        self.grams: dict[str, tuple] = {}
        self.asked_of: dict[str, list] = {}

    def add(self, texts) -> None:
        """Analyse the texts not seen yet (their TF-IDF rows in one batch, their n-grams)."""
        import scipy.sparse as sp

        new = [t for t in dict.fromkeys(texts) if t not in self.row]
        if not new:
            return
        for t in new:
            self.grams[t] = gram_codes(t)
        base = len(self.row)
        self.row.update((t, base + k) for k, t in enumerate(new))
        m = self.vectorizer.transform(new).tocsr()
        self.matrix = m if self.matrix is None else sp.vstack([self.matrix, m]).tocsr()

    def tfidf(self, texts):
        self.add(texts)
        return self.matrix[[self.row[t] for t in texts]]

    def gram_codes(self, text: str) -> tuple:
        self.add([text])
        return self.grams[text]

    def prefetch_asked(self, texts) -> None:
        """``asked`` of the texts not analysed yet, on ``n_workers`` processes, kept here (and so
        in every worker forked later)."""
        from .conversation import _asked

        new = [t for t in dict.fromkeys(texts) if t not in self.asked_of]
        self.asked_of.update(zip(new, fork_map(_asked, new, self.n_workers)))

    def asked(self, text: str) -> list:
        """Asked of counselor blocks only, so analysed on first request."""
        from .conversation import _asked

        got = self.asked_of.get(text)
        if got is None:
            got = self.asked_of[text] = _asked(text)
        return got
