"""Japanese morphology (MeCab through fugashi + unidic-lite), shared by the bot's safety layer
and evaluation's tokenizer. One tagger per thread: MeCab taggers are not thread-safe."""

from __future__ import annotations

import threading
from dataclasses import dataclass

_local = threading.local()


def tagger():
    t = getattr(_local, "tagger", None)
    if t is None:
        import fugashi
        import unidic_lite

        t = _local.tagger = fugashi.Tagger(f"-d {unidic_lite.DICDIR}")
    return t


def to_hiragana(text: str) -> str:
    return "".join(chr(ord(c) - 0x60) if "ァ" <= c <= "ヶ" else c for c in text)


@dataclass(frozen=True)
class Token:
    surface: str
    lemma: str  # UniDic lemma without its "-gloss" suffix (打ち殺す, 私), or the surface if unknown
    kana: str  # reading in hiragana ("" when unknown)
    pos1: str
    pos2: str
    cform: str = ""  # conjugation form (意志推量形, 連用形-一般 …)

    @property
    def is_punct(self) -> bool:
        return self.pos1 == "補助記号"


def tokens(text: str) -> list[Token]:
    out = []
    for w in tagger()(text):
        f = w.feature
        lemma = (getattr(f, "lemma", None) or w.surface).split("-")[0] or w.surface
        kana = to_hiragana(getattr(f, "kana", None) or "")
        out.append(
            Token(
                w.surface,
                lemma,
                kana,
                getattr(f, "pos1", "") or "",
                getattr(f, "pos2", "") or "",
                getattr(f, "cForm", "") or "",
            )
        )
    return out


def words(text: str) -> list[str]:
    """Surface words, as evaluation's reply metrics count them."""
    return [w.surface for w in tagger()(text)]
