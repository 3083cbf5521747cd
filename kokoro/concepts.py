"""Concepts for a learned layer: classes of words by meaning (a YAML file a reviewer can read),
matched on MeCab tokens, and the features a model weighs — each concept present, and each pair
of concepts present together. The crisis layer (bot/crisis_concepts.yaml) and the scorer's
remark flags (kokoro/remark_concepts.yaml) read their files through this one reader.

A word matches a MeCab (UniDic) lemma, a surface form or a hiragana reading of one token;
"a b" matches consecutive tokens."""

from __future__ import annotations

from functools import cached_property
from itertools import combinations
from pathlib import Path


class ConceptsError(ValueError):
    """A concepts file that cannot be read as concepts (names the file)."""


class Concepts:
    def __init__(self, path: Path | str):
        self.path = Path(path)

    @cached_property
    def table(self) -> tuple[tuple[str, tuple[tuple[str, ...], ...]], ...]:
        """(concept, its words as token sequences), in file order."""
        import yaml

        data = yaml.safe_load(self.path.read_text(encoding="utf-8")) or {}
        concepts = data.get("concepts")
        if not isinstance(concepts, dict) or not concepts:
            raise ConceptsError(f"{self.path}: no 'concepts' mapping; see the file's header for its form")
        out = []
        for name, words in concepts.items():
            if not isinstance(words, list) or not words:
                raise ConceptsError(f"{self.path}: concept {name!r} needs a non-empty list of words")
            out.append((str(name), tuple(tuple(str(w).split()) for w in words)))
        return tuple(out)

    @cached_property
    def features(self) -> tuple[tuple[str, ...], ...]:
        """The concepts each feature needs present: every concept alone, then every pair of them."""
        singles = [c for c, _ in self.table]
        return tuple((c,) for c in singles) + tuple(combinations(singles, 2))

    def names(self) -> list[str]:
        return ["+".join(f) for f in self.features]

    @cached_property
    def _index(self) -> dict[str, list[tuple[str, tuple[str, ...]]]]:
        """First word of a sequence -> (concept, sequence): a token is looked up once, not per word."""
        out: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
        for name, words in self.table:
            for seq in words:
                out.setdefault(seq[0], []).append((name, seq))
        return out

    def present(self, toks) -> set[str]:
        """The concepts whose words occur in ``toks`` (kokoro.morph tokens)."""
        forms = [{t.lemma, t.surface, t.kana} - {""} for t in toks]
        found: set[str] = set()
        for i, f in enumerate(forms):
            for first in f:
                for name, seq in self._index.get(first, ()):
                    if name not in found and i + len(seq) <= len(forms):
                        if all(seq[k] in forms[i + k] for k in range(1, len(seq))):
                            found.add(name)
        return found

    def vector(self, found: set[str]) -> list[float]:
        """1/0 per feature, in ``names()`` order."""
        return [float(all(c in found for c in f)) for f in self.features]
