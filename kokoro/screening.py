"""Screening of the bot's own draft replies for the platform's screening items (paper App. A.3):
diagnosis or medication advice, harmful remarks from ignorance, occult claims, sexual remarks.
Rules live in kokoro/screening_lexicon.yaml, matched on MeCab lemmas anywhere in the text, so
「それはうつ病ですね。」 fails while 「そうですね」 and 「うつ病と診断されたのですね」 pass."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from .lexicon import Lexicon, normalize, variants

LEXICON = Path(__file__).with_name("screening_lexicon.yaml")
SAFE_REPLY = (
    "お話ししてくださってありがとうございます。よろしければ、そのときのお気持ちをもう少し聞かせていただけますか？"
)


@lru_cache(maxsize=1)
def lexicon() -> Lexicon:
    return Lexicon(LEXICON)


def screen_draft(text: str) -> list[str]:
    """The screening items a draft reply would fail (empty = fine)."""
    t = normalize(text)
    if not t:
        return []
    found: list[str] = []
    for e in lexicon().hits(t, variants(t)[:1]):  # the model writes kanji: no kana re-reading
        if e.category not in found:
            found.append(e.category)
    return found
