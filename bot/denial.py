"""A client's denial of the crisis words they use — 「別に死ぬとかじゃないです」, 「死ぬつもりはないです」,
「自殺は考えていません」, 「死なへんから大丈夫」 — read in a session at risk (the protocol fired, or one of its
questions is open), so that the denial is answered as an answer (the question about a means, or the
counselor), not as a new crisis line (bot.sessions.Engine.crisis_first), and is no part of a crisis read
over messages (recent_client_texts).

A clause denies when the crisis words in it (what bot.safety reads as a crisis) stand under one
negation, and what it negates is a denial frame (わけじゃない, とかじゃない, つもりはない, ほどじゃない, 気は
ない), a verb of thinking or saying (思ってない, 考えていません), する (自殺しない, 切ったりはしてない) or 死ぬ
itself (死なない) — not any other word (死にたい気持ちが止まらない, 死にたくて眠れない, この世にいない,
頭から離れない are crises) — and nothing in it takes the denial back: a second negation (死にたくないわけじゃない,
死なないとは言えない), a past (つもりはなかった), a condition (切らないと), a degree or a noun after it
(思わないくらい, 死なないために), a fear (死ぬんじゃないか), a story (思わなくて), a potential (死ねない, 言えない),
a life word negated (生きていたくない), or `denial_blocks` (嘘, 約束, しか, 以外, 方法, 理由, 勇気, まだ…). The
message denies when at least one clause does, no urge is held back in it (我慢), and what is left — its
other clauses, and what follows じゃなくて — is no crisis to either layer (「死ぬつもりはないけど、消えたい」,
「ODした、でも死ぬつもりはない」 are crises). The words are data (bot/safety_answers.yaml: `denial_frames`,
`denial_verbs`, `denial_blocks`, `lives`, `urges`, `intensifiers`); the labelled sets are
bot/safety_sets/denials_holdout*.tsv (docs/safety.md, "A denial of the crisis words")."""

from __future__ import annotations

from kokoro.morph import Token

from .safety_answers import _is, _negation, clauses

PAST_OR_IF = {"た", "と", "ば", "たら", "なら"}  # after the negation: つもりはなかった, 切らないと, 死ななければ
DEGREE = {"様", "くらい", "ぐらい", "位", "程", "ほど", "まで", "成る"}  # after it: 思わないくらい, 死にたくなくなる
CANNOT = {"死ね", "しね", "言え", "いえ", "思え", "おもえ"}  # a potential form before it: cannot, not will not
ELLIPTIC = {"全然", "全く", "ぜんぜん", "まったく", "別に"}  # 「死ぬとかは全然」: the negation left unsaid
QUOTES = {"と", "って", "とか", "なんて", "みたいな"}  # a clause opening with these quotes the one before
BACK = {"そんな", "そういう", "そう", "それ", "そいつ", "そんなん"}  # opening a clause: says it of the one before
KANSAI_NOT = ("と", "訳", "わけ")  # before 違う: 〜とちゃう, 〜わけちゃう
SKIP_PARTICLES = {"は", "も", "なんか", "なんて", "って", "まで", "や", "と", "が", "で", "では", "て"}
SKIP_LEMMAS = {"だ", "です", "ます", "たい", "てる", "有る"}  # じゃ, ません, 死にたくは, してない, ではありません


def _negations(c: list[Token]) -> list[int]:
    """The negations of a clause, Kansai 〜とちゃう, 〜わけちゃう (違う after と or わけ) among them."""
    return [
        j for j in range(len(c)) if _negation(c, j) or (j and c[j].lemma == "違う" and c[j - 1].surface in KANSAI_NOT)
    ]


def _joined(text: str) -> list[list[Token]]:
    """The message's clauses, one that goes on from the clause before (「死にたい、とまでは思わない」,
    「飛び降りようとか、そんなんじゃない」: it opens with a quoting particle or a word pointing back) joined to it."""
    out: list[list[Token]] = []
    for c in clauses(text):
        if out and (c[0].surface in QUOTES or c[0].surface in BACK):
            out[-1] = out[-1] + c
        else:
            out.append(c)
    return out


def _frame(c: list[Token], i: int) -> bool:
    """A denial frame at ``i``: か only in とか, 事 only after a verb of thinking (考えたこともない; not
    いいことなんてない)."""
    t = c[i]
    if not _is(t, "denial_frames"):
        return False
    if t.surface == "か":
        return i > 0 and c[i - 1].surface == "と"
    if t.lemma == "事":
        k = i - 1 - (i > 1 and c[i - 1].lemma == "た")
        return k >= 0 and _is(c[k], "denial_verbs")
    return True


def _head(c: list[Token], j: int) -> int | None:
    """Where the denial frame or verb the negation at ``j`` negates stands, past particles (は, なんて,
    まで…), the copula (じゃ, では, ありません), たい, ている and adverbs (全然, さらさら); None when the
    word it negates is any other."""
    i = j - 1
    while i >= 0:
        t = c[i]
        if _is(t, "denial_verbs") or _frame(c, i):
            return i
        if (
            t.surface in SKIP_PARTICLES
            or t.lemma in SKIP_LEMMAS
            or t.pos1 in ("副詞", "補助記号")
            or _is(t, "intensifiers")
        ):
            i -= 1
        elif t.lemma == "居る" and i and c[i - 1].surface in ("て", "で"):  # 考えていない
            i -= 1
        else:
            return None
    return None


def _denied_span(c: list[Token]) -> tuple[list[Token], list[Token]] | None:
    """(what the clause denies, the tokens after the denial, read on their own), or None when the clause
    does not deny: its one negation negates a frame (わけ, とか, つもり, ほど, 気, の), a verb of thinking
    or saying, する (自殺しない, 切ったりはしてない) or 死ぬ itself (`denial_frames`, `denial_verbs`)."""
    if any(_is(t, "denial_blocks") or _is(t, "lives") for t in c):
        return None
    negs = _negations(c)
    if not negs:  # 「死ぬとかは全然」
        last = len(c) - 1
        while last > 0 and c[last].pos1 in ("助詞", "助動詞", "補助記号"):
            last -= 1
        return (_bare(c[:last]), []) if c[last].surface in ELLIPTIC and last else None
    j = negs[0]
    after = c[j + 1 :]
    if after and (after[0].lemma in PAST_OR_IF or after[0].pos1 == "名詞" or after[0].lemma in DEGREE):
        return None  # what the negation describes comes after it (死なないために), or it is past or a condition
    h = _head(c, j)
    if h is None:
        return None
    if after and after[0].surface == "か" and (c[h].surface in ("ん", "の") or not _frame(c, h)):
        return None  # 死ぬんじゃないか: a fear said; 死んでもいいと思いませんか: a question that asserts
    no_way = c[h].lemma == "訳" and h == j - 1 and c[j].lemma != "違う"  # 言うわけない (not わけちゃう)
    if no_way or c[h].surface in CANNOT:  # 死ねない, 言えなくて, 思えない: cannot, not will not
        return None
    said = _bare(c[:j] if c[h].lemma == "死ぬ" else c[:h])  # what is denied: 死にたく (はない), 自殺 (は考えてない)
    if after and after[0].surface in ("て", "で"):  # じゃなくて: what follows is said anew, read on its own;
        return (said, after[1:]) if _frame(c, h) else None  # 思わなくて: a story (「…とは思わなくて」)
    return None if any(k > j for k in negs) else (said, after)


def _bare(ts: list[Token]) -> list[Token]:
    """``ts`` without the particles it ends with (自殺とかは → 自殺)."""
    while ts and (ts[-1].surface in SKIP_PARTICLES | {"か", "を", "に"} or ts[-1].pos1 == "補助記号"):
        ts = ts[:-1]
    return ts


def _text(ts: list[Token]) -> str:
    return "".join(t.surface for t in ts)


def denies(text: str) -> bool:
    """Whether the message denies the crisis its words would otherwise be read as (module doc)."""
    from .safety import crisis_categories

    cs = _joined(text)
    if any(_is(t, "urges") for c in cs for t in c):  # 自傷したくないから我慢してる: the urge, held back
        return False
    left, denied = [], False
    for c in cs:
        span = _denied_span(c)
        if span and crisis_categories(_text(span[0])):
            denied = True
            left.append(_text(span[1]))
        else:
            left.append(_text(c))
    rest = "、".join(x for x in left if x)
    return denied and not (rest and crisis_categories(rest))


def figures(path) -> dict:
    """On a labelled set — denials_holdout*.tsv (denial | crisis <TAB> text) or a crisis split
    (crisis | none <TAB> rung <TAB> text) — the lines the detector fires on (the ones a denial reading
    changes): denials fired on and read as denials, crisis lines fired on and read as denials (these
    would lose the protocol's question again), and the wrong ones with their text."""
    from pathlib import Path

    from kokoro.labelled import read_tsv

    from .safety import crisis_categories

    first = next(x for x in Path(path).read_text(encoding="utf-8").splitlines() if x.strip() and x[0] != "#")
    rows = [(r[0], r[-1]) for r in read_tsv(path, first.count("\t") + 1)]
    fired = [(label, t, denies(t)) for label, t in rows if crisis_categories(t)]
    out = {"lines": len(rows), "denials_fired": 0, "denials_read": 0, "crisis_fired": 0, "crisis_read_as_denial": 0}
    wrong = []
    for label, t, d in fired:
        key = "denials" if label == "denial" else "crisis"
        out[f"{key}_fired"] += 1
        out["denials_read" if key == "denials" else "crisis_read_as_denial"] += d
        if d != (key == "denials"):
            wrong.append(f"{label}\t{t}")
    return {**out, "wrong": wrong}
