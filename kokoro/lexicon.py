"""A small pattern language over MeCab tokens, so safety rules are data a reviewer can read
(bot/crisis_lexicon.yaml, kokoro/screening_lexicon.yaml) rather than code.

``match`` patterns are space-separated slots: ``a|b`` (lemma, surface or kana of one word),
``…`` (up to three other words; ``……`` six), ``^``/``$`` (sentence start/end), ``*病`` / ``病*`` (ends/starts
with), ``@名詞`` (part of speech), ``x:意志`` (x in that conjugation form), a leading ``!`` (any
word but these), a trailing ``?`` (optional), ``{name}`` (the words of the file's list ``name``, written once under
``lists`` and used in any slot: ``{others}|人 が``). An entry's ``unless`` patterns cancel the matches they
overlap, so one idiom does not hide a real phrase elsewhere in the same message. A file's ``sentence_unless``
patterns cancel every ``match`` entry's matches in the sentence they occur in (frames written once: a
counselor reflecting what the client was told, 「甘えだと言われたのですね」). ``kana`` entries match a
hiragana string on word boundaries; ``regex`` entries a regular expression on the text.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from kokoro.morph import Token, to_hiragana, tokens

GAP = 3


class LexiconError(ValueError):
    """A lexicon file that cannot be read (names the file and the entry)."""


@dataclass(frozen=True)
class Entry:
    category: str
    kind: str  # match | kana | regex
    source: str
    compiled: object
    unless: tuple = ()  # match patterns that cancel an overlapping match (idioms, third persons)
    needs: frozenset = frozenset()  # words one of which must occur for a match (a fast pre-check)

    def describe(self) -> str:
        return f"{self.category}: {self.kind} {self.source}"


class UnknownList(KeyError):
    """A ``{name}`` in a pattern that the file's ``lists`` does not define."""


def _slot(text: str, lists: dict[str, list[str]]):
    optional = text.endswith("?") and len(text) > 1
    negated = text.startswith("!") and len(text) > 1
    body = text[1 if negated else 0 : len(text) - 1 if optional else len(text)]
    alts: list[str] = []
    for a in body.split("|"):
        if len(a) > 2 and a[0] == "{" and a[-1] == "}":
            if a[1:-1] not in lists:
                raise UnknownList(a[1:-1])
            alts.extend(lists[a[1:-1]])
        else:
            alts.append(a)
    return ("slot", tuple(alts), optional, negated)


def compile_match(pattern: str, lists: dict[str, list[str]] | None = None) -> list:
    out = []
    for part in pattern.split():
        if part in ("…", "..."):
            out.append(("gap", GAP))
        elif part in ("……", "......"):
            out.append(("gap", 2 * GAP))
        elif part in ("^", "$"):
            out.append((part,))
        else:
            out.append(_slot(part, lists or {}))
    return out


def required_words(pat: list) -> frozenset:
    """The alternatives of the first slot that must match and holds only plain words."""
    for el in pat:
        if el[0] == "slot" and not el[2] and not el[3]:
            if all(a and a[0] not in "*@!" and not a.endswith("*") and ":" not in a for a in el[1]):
                return frozenset(el[1])
    return frozenset()


def _fields(toks: list[Token]) -> set[str]:
    out: set[str] = set()
    for t in toks:
        out.update((t.lemma, t.surface, to_hiragana(t.surface), t.kana))
    return out


def _alt_ok(alt: str, t: Token) -> bool:
    if ":" in alt:
        word, form = alt.split(":", 1)
        return t.cform.startswith(form) and _alt_ok(word, t)
    if alt.startswith("@"):
        return t.pos1 == alt[1:] or t.pos2 == alt[1:]
    fields = (t.lemma, t.surface, _hiragana(t.surface), t.kana if _is_kana(alt) else None)
    if alt.startswith("*") and len(alt) > 1:
        return any(f and f.endswith(alt[1:]) for f in fields)
    if alt.endswith("*") and len(alt) > 1:
        return any(f and f.startswith(alt[:-1]) for f in fields)
    return alt in fields


@lru_cache(maxsize=4096)  # a pattern's alternatives: asked for every token a pattern is tried on
def _is_kana(s: str) -> bool:
    return all("ぁ" <= c <= "ゖ" or c == "ー" for c in s)


_hiragana = lru_cache(maxsize=65536)(to_hiragana)  # one word's reading, asked for once per alternative tried


def _at_start(toks: list[Token], i: int) -> bool:
    return i == 0 or toks[i - 1].is_punct


def _at_end(toks: list[Token], i: int) -> bool:
    while i < len(toks) and toks[i].pos2 == "終助詞":
        i += 1
    return i == len(toks) or toks[i].is_punct


def _ends(pat: list, toks: list[Token], p: int, i: int):
    """Every token index where ``pat[p:]`` matched from ``i`` ends."""
    if p == len(pat):
        yield i
        return
    el = pat[p]
    if el[0] == "^":
        if _at_start(toks, i):
            yield from _ends(pat, toks, p + 1, i)
        return
    if el[0] == "$":
        if _at_end(toks, i):
            yield from _ends(pat, toks, p + 1, i)
        return
    if el[0] == "gap":
        for j in range(i, min(len(toks), i + el[1]) + 1):
            yield from _ends(pat, toks, p + 1, j)
        return
    _, alts, optional, negated = el
    if i < len(toks) and any(_alt_ok(a, toks[i]) for a in alts) != negated:
        yield from _ends(pat, toks, p + 1, i + 1)
    if optional:
        yield from _ends(pat, toks, p + 1, i)


def spans(pat: list, toks: list[Token]) -> list[tuple[int, int]]:
    """(start, end) of each match, one per start: the shortest."""
    out = []
    for i in range(len(toks)):
        end = min(_ends(pat, toks, 0, i), default=None)
        if end is not None:
            out.append((i, max(end, i + 1)))
    return out


def char_spans(pat: list, toks: list[Token]) -> list[tuple[int, int]]:
    """``spans`` in character offsets of the text, which every variant of it shares (folding
    katakana to hiragana keeps each character's place while it changes the words MeCab finds)."""
    at = [0]
    for t in toks:
        at.append(at[-1] + len(t.surface))
    return [(at[a], at[b]) for a, b in spans(pat, toks)]


def sentences(toks: list[Token]) -> list[tuple[int, int]]:
    """(start, end) character offsets of each sentence: runs between sentence marks (。)."""
    out, start, at = [], 0, 0
    for t in toks:
        at += len(t.surface)
        if t.surface == "。":
            out.append((start, at))
            start = at
    return out + [(start, at)] if at > start else out


def match_tokens(pat: list, variants: list[list[Token]], unless: tuple = (), frames: tuple = ()) -> bool:
    """Any match of ``pat`` in any variant that no ``unless`` match overlaps (猫が死んだ cancels 死ぬ
    there only) and whose sentence holds no ``frames`` match; an exception found in one variant
    cancels the matches it overlaps in all of them."""
    found = [sp for toks in variants for sp in char_spans(pat, toks)]
    if not found or not (unless or frames):
        return bool(found)
    masks = [sp for u in unless for toks in variants for sp in char_spans(u, toks)]
    framed = []
    for toks in variants:  # each frame is matched once per variant, not once per sentence
        at = [sp for f in frames for sp in char_spans(f, toks)]
        framed += [(s, e) for s, e in sentences(toks) if any(s <= a and b <= e for a, b in at)] if at else []
    return any(
        not any(a < e and s < b for s, e in masks) and not any(s <= a and b <= e for s, e in framed) for a, b in found
    )


def match_kana(kana: str, toks: list[Token]) -> bool:
    """``kana`` inside the hiragana surface, starting and ending on word boundaries."""
    text = "".join(to_hiragana(t.surface) for t in toks)
    bounds, n = {0}, 0
    for t in toks:
        n += len(t.surface)
        bounds.add(n)
    start = text.find(kana)
    while start >= 0:
        if start in bounds and start + len(kana) in bounds:
            return True
        start = text.find(kana, start + 1)
    return False


class Lexicon:
    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            data = yaml.safe_load(self.path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as e:
            raise LexiconError(f"{self.path}: cannot read the lexicon ({e})") from None
        self.meta = {k: v for k, v in data.items() if k not in ("entries", "substitutions", "lists", "sentence_unless")}
        lists = data.get("lists") or {}
        if not isinstance(lists, dict) or not all(isinstance(v, list) and v for v in lists.values()):
            raise LexiconError(f"{self.path}: 'lists' must map each name to a non-empty list of words")
        lists = {str(k): [str(w) for w in v] for k, v in lists.items()}
        self.substitutions = [(re.compile(k), v) for k, v in (data.get("substitutions") or {}).items()]
        self.entries: list[Entry] = []
        for n, e in enumerate(data.get("entries") or [], 1):
            kinds = [k for k in ("match", "kana", "regex") if k in e]
            if len(kinds) != 1 or not e.get("category"):
                raise LexiconError(f"{self.path}: entry {n} needs a category and exactly one of match/kana/regex")
            kind = kinds[0]
            src = str(e[kind])
            try:
                comp = compile_match(src, lists) if kind == "match" else re.compile(src) if kind == "regex" else src
                unless = tuple(compile_match(str(u), lists) for u in e.get("unless") or ())
            except re.error as err:
                raise LexiconError(f"{self.path}: entry {n}: bad regex ({err})") from None
            except UnknownList as err:
                known = ", ".join(lists) or "none"
                raise LexiconError(
                    f"{self.path}: entry {n}: no list {{{err.args[0]}}} under 'lists' (defined: {known})"
                ) from None
            needs = required_words(comp) if kind == "match" else frozenset()
            self.entries.append(Entry(e["category"], kind, src, comp, unless, needs))
        try:
            self.frames = tuple(compile_match(str(u), lists) for u in data.get("sentence_unless") or ())
        except UnknownList as err:
            raise LexiconError(f"{self.path}: sentence_unless: no list {{{err.args[0]}}} under 'lists'") from None
        self.categories = sorted({e.category for e in self.entries})

    def substitute(self, text: str) -> str:
        for rx, v in self.substitutions:
            text = rx.sub(v, text)
        return text

    def hits(self, text: str, variants: list[list[Token]]) -> list[Entry]:
        """Entries matched by ``text`` (normalized) or by any of its token ``variants``."""
        out = []
        fields = [_fields(v) for v in variants]
        for e in self.entries:
            if e.needs and not any(e.needs & f for f in fields):
                continue
            if e.kind == "regex":
                ok = bool(e.compiled.search(text))
            elif e.kind == "kana":
                ok = any(match_kana(e.compiled, v) for v in variants)
            else:
                ok = match_tokens(e.compiled, variants, e.unless, self.frames)
            if ok:
                out.append(e)
        return out


def normalize(text: str) -> str:
    """NFKC, lower case; emoji and symbols dropped; punctuation kept as sentence marks; spaces kept
    only between Latin letters/digits; a stretching ー after hiragana dropped (しにたーい)."""
    t = unicodedata.normalize("NFKC", text).lower()
    out: list[str] = []
    for c in t:
        cat = unicodedata.category(c)
        if c == "ー" and out and "ぁ" <= out[-1] <= "ゖ":
            continue
        if cat[0] in "LN":
            out.append(c)
        elif cat[0] == "P":
            out.append("。" if c in "。.!！?？…" else "、" if c in "、,，" else (c if c == "'" else " "))
        elif c.isspace() or cat[0] == "Z":
            out.append(" ")
    s = "".join(out)
    s = re.sub(r"(?<![a-z0-9'])\s+|\s+(?![a-z0-9'])", "", s)  # spaces only between Latin words
    s = re.sub(r"\s+", " ", s)
    return re.sub(r"([。、])[。、]+", r"\1", s).strip()


def variants(text: str) -> list[list[Token]]:
    """Token lists for the text as written and with katakana read as hiragana (シニタイ)."""
    a = tokens(text)
    folded = to_hiragana(text)
    return [a] if folded == text else [a, tokens(folded)]
