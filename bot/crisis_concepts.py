"""Concepts for the learned crisis layer: classes of words by meaning (bot/crisis_concepts.yaml),
read by kokoro.concepts — each concept present, and each pair of concepts present together (a
dangerous place with being there, a means with storing it up)."""

from __future__ import annotations

from pathlib import Path

from kokoro.concepts import Concepts, ConceptsError

FILE = Path(__file__).with_name("crisis_concepts.yaml")
CONCEPTS = Concepts(FILE)
__all__ = ["CONCEPTS", "ConceptsError", "names", "present", "vector"]


def names() -> list[str]:
    return CONCEPTS.names()


def present(toks) -> set[str]:
    return CONCEPTS.present(toks)


def vector(found: set[str]) -> list[float]:
    return CONCEPTS.vector(found)
