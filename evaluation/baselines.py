"""Trivial baselines every scorer report sits beside (fitted on the scorer split's train part)."""

from __future__ import annotations

from collections import Counter
from typing import Sequence

from kokoro.dataset import Dialogue

LENGTH_FEATURES = ("client_chars", "counselor_chars", "client_utterances", "counselor_utterances", "utterances")


def constant_mode(train: Sequence[Dialogue], n: int) -> list[list[int]]:
    """Each item's most frequent training value (ties: the lower value)."""
    modes = []
    for j in range(20):
        c = Counter(d.items[j] for d in train)
        modes.append(max(sorted(c), key=lambda v: c[v]))
    return [list(modes) for _ in range(n)]


def length_features(d: Dialogue) -> list[float]:
    cl = [t for t in d.turns if t.role == "client"]
    co = [t for t in d.turns if t.role == "counselor"]
    return [sum(len(t.text) for t in cl), sum(len(t.text) for t in co), len(cl), len(co), len(d.turns)]


def length_regression(train: Sequence[Dialogue], test: Sequence[Dialogue]) -> list[list[float]]:
    """Linear regression of the 20 items on five length features (continuous predictions)."""
    import numpy as np
    from sklearn.linear_model import LinearRegression

    X = np.array([length_features(d) for d in train])
    Y = np.array([d.items for d in train], dtype=float)
    model = LinearRegression().fit(X, Y)
    return model.predict(np.array([length_features(d) for d in test])).tolist()
