"""Concepts for the learned crisis layer: classes of words by meaning (bot/crisis_concepts.yaml),
read on MeCab tokens, and the features the model weighs — each concept present, and each pair of
concepts present together (a dangerous place with being there, a means with storing it up)."""

from __future__ import annotations

from functools import lru_cache
from itertools import combinations
from pathlib import Path

FILE = Path(__file__).with_name("crisis_concepts.yaml")


class ConceptsError(ValueError):
    """bot/crisis_concepts.yaml cannot be read as concepts."""


@lru_cache(maxsize=1)
def table() -> tuple[tuple[str, tuple[tuple[str, ...], ...]], ...]:
    """(concept, its words as token sequences), in file order."""
    import yaml

    data = yaml.safe_load(FILE.read_text(encoding="utf-8")) or {}
    concepts = data.get("concepts")
    if not isinstance(concepts, dict) or not concepts:
        raise ConceptsError(f"{FILE}: no 'concepts' mapping; see the file's header for its form")
    out = []
    for name, words in concepts.items():
        if not isinstance(words, list) or not words:
            raise ConceptsError(f"{FILE}: concept {name!r} needs a non-empty list of words")
        out.append((str(name), tuple(tuple(str(w).split()) for w in words)))
    return tuple(out)


@lru_cache(maxsize=1)
def _features() -> tuple[tuple[str, ...], ...]:
    """The concepts each feature needs present: every concept alone, then every pair of them."""
    singles = [c for c, _ in table()]
    return tuple((c,) for c in singles) + tuple(combinations(singles, 2))


def names() -> list[str]:
    return ["+".join(f) for f in _features()]


def _forms(tok) -> set[str]:
    return {tok.lemma, tok.surface, tok.kana} - {""}


@lru_cache(maxsize=1)
def _index() -> dict[str, list[tuple[str, tuple[str, ...]]]]:
    """First word of a sequence -> (concept, sequence): a token is looked up once, not per word."""
    out: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    for name, words in table():
        for seq in words:
            out.setdefault(seq[0], []).append((name, seq))
    return out


def present(toks) -> set[str]:
    """The concepts whose words occur in ``toks`` (kokoro.morph tokens)."""
    forms = [_forms(t) for t in toks]
    index, found = _index(), set()
    for i, f in enumerate(forms):
        for first in f:
            for name, seq in index.get(first, ()):
                if name not in found and i + len(seq) <= len(forms):
                    if all(seq[k] in forms[i + k] for k in range(1, len(seq))):
                        found.add(name)
    return found


def vector(found: set[str]) -> list[float]:
    """1/0 per feature, in ``names()`` order."""
    return [float(all(c in found for c in f)) for f in _features()]
