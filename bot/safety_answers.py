"""What a client's answer to the crisis protocol's safety questions says: ``danger`` (a means at
hand, a dangerous place, not safe, an act under way), ``safe`` (nothing near, safe, not alone, the
means put away) or ``unclear``. The words are data for clinical review (bot/safety_answers.yaml,
which says how a message is read); the labelled sets are bot/safety_sets/safety_answers*.tsv.

The question the bot asked decides what a bare はい or いいえ means: ``protocol`` (two questions: a
safe place, and a means within reach: a bare yes or no is unclear), ``means`` (the follow-up about
a means alone: yes is danger, no is safe), ``danger`` (the means-safety message, which asks to be
told once the means is away: 無理 or できない is danger; a yes, 「わかった」 or a putting away still to be
done — 「今から預けてきます」 — is ``agree``, and the bot waits), ``away`` (asked after that wait: read as
``danger``), ``still`` (the means could not be put away: someone now, 119; a later 「置いてきた」 is still
news the bot waits for; read as ``danger``) or ``risk`` (the counselor model itself asked about the
client's suicidal thoughts, self-harm or preparation, ``asks_about_risk``: a yes, 時々 or 思います is
danger, a no is safe)."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from pathlib import Path

import yaml

from kokoro.lexicon import normalize
from kokoro.morph import Token, to_hiragana, tokens

WORDS = Path(__file__).with_name("safety_answers.yaml")
ASKED = ("protocol", "means", "danger", "away", "still", "risk")
AFTER_MEANS_SAFETY = ("danger", "away", "still")  # asked to put a means away and say so
CLAUSE_ENDS = {"。", "、", "けれど", "けど", "けれども", "が", "のに", "し", "ので", "から"}
NEGATIONS = {"ない", "無い", "ず", "ぬ", "へん", "ん"}
FILLERS = {
    "物",
    "奴",
    "分",
    "訳",
    "実",
    "全部",
    "所",
    "方",
    "本当",
    "今",
    "特",
    "何",
    "色々",
    "沢山",
    "一杯",
    "まだ",
    "もう",
}
LIGHT_VERBS = {"居る", "為る", "来る", "思う", "成る", "御座る", "てる", "おる"}
PROGRESS = {"た", "てる", "ちゃう", "居る", "しまう", "ちまう"}  # after an act: done or under way
SAFE_MAX_CHARS = 40  # a longer message is the client going on with their story, not an all-clear
HESITATIONS = ("うーん", "う〜ん", "うーむ", "ううーん", "ウーン")
PAST = {"前", "昔", "以前", "かつて", "前回"}  # before は or に: a time before (前は集めてた)
NOW = {"今", "いま", "もう", "さっき", "既に", "すでに"}
DONE = {"た", "てる", "済み", "済む"}  # after a putting-away verb: done (預けた, 預けてる, 処分済み)
STATES = {"有る", "居る"}  # after て: done (預けてある, 置いている)
PUT = {"置く", "出す", "入れる", "移す", "遣る"}  # with an `away_places` word: put away (ゴミに出した)
PUT_AWAY = {"置く", "入れる", "仕舞う", "移す"}  # after the means-safety message: put away unless `at_hand`
# after て/で these say how the verb before them stands (預けてある, 捨ててもらった), not a verb of their own;
# any other verb there is one (もらって貯めてある: 貯める is said of the means)
AUXILIARIES = {
    "有る",
    "在る",
    "居る",
    "置く",
    "仕舞う",
    "貰う",
    "来る",
    "行く",
    "見る",
    "呉れる",
    "上げる",
    "遣る",
    "頂く",
}
WH = {
    "いつ",
    "どう",
    "どんな",
    "何",
    "なに",
    "なん",
    "なぜ",
    "どうして",
    "どれ",
    "どの",
    "どこ",
    "誰",
    "いかが",
    "如何",
    "頻度",
    "きっかけ",
    "理由",
}


class AnswerError(ValueError):
    """An ``asked`` the reader does not know (names it and the ones it knows)."""


@lru_cache(maxsize=1)
def words() -> dict[str, frozenset[str]]:
    lists = yaml.safe_load(WORDS.read_text(encoding="utf-8"))["lists"]
    return {k: frozenset(str(w) for w in v) | frozenset(to_hiragana(str(w)) for w in v) for k, v in lists.items()}


def _forms(t: Token) -> set[str]:
    return {t.lemma, t.surface, to_hiragana(t.surface), t.kana}


def _is(t: Token, name: str) -> bool:
    return bool(_forms(t) & words()[name])


def _negation(c: list[Token], j: int) -> bool:
    """A negation at ``j`` (not the ない of かもしれない, which hedges)."""
    t = c[j]
    return t.pos1 in ("助動詞", "形容詞") and t.lemma in NEGATIONS and not (j and c[j - 1].lemma == "知れる")


def clauses(text: str) -> list[list[Token]]:
    for sound in HESITATIONS:  # before normalize, which would make うーん an うん
        text = text.replace(sound, "、")
    out: list[list[Token]] = [[]]
    for t in tokens(normalize(text)):
        if t.surface in CLAUSE_ENDS and (t.pos1 == "補助記号" or t.pos2 == "接続助詞"):
            out.append([])
        else:
            out[-1].append(t)
    return [c for c in out if c]


def negated(c: list[Token], i: int) -> bool:
    """Whether the word at ``i`` is negated in its clause: the negations after it (an existence
    無い counts itself), English not before it, しか…ない turning a negation back (包丁しかない)."""
    if c[i].surface.isascii():
        return i > 0 and c[i - 1].surface.lower() in ("not", "dont", "don't", "no")
    n = sum(_negation(c, j) for j in range(i + 1, len(c))) + (c[i].lemma == "無い")
    n += any(t.surface == "しか" for t in c[:i])
    return n % 2 == 1


def _existence(c: list[Token], i: int) -> bool:
    """無い at ``i`` says that something is not there (何もない, 薬はない), rather than negating the
    word before it (大丈夫じゃない, 安全ではない, 危なくない)."""
    prev = c[i - 1] if i else None
    if prev is None or prev.pos1 == "補助記号" or prev.pos1 == "副詞":
        return True
    if prev.lemma == "だ" or prev.pos1 in ("形容詞", "動詞", "助動詞"):
        return False
    if prev.surface == "は" and i >= 2 and c[i - 2].lemma == "だ":
        return False
    return prev.pos1 == "助詞" or prev.pos2 == "代名詞"


def _bare(c: list[Token]) -> bool:
    """Nothing in the clause but the answer's own words: ある, 持ってる, 実はあります, ない…"""
    for i, t in enumerate(c):
        if t.pos1 not in ("名詞", "動詞", "形容詞", "形状詞") or t.pos2 in ("代名詞", "数詞"):
            continue
        if t.lemma in FILLERS or t.lemma in LIGHT_VERBS or t.lemma == "無い":
            continue
        if _is(t, "near") and _object(c, i):  # 部屋を片付けた: the room tidied, not a means near
            return False
        if any(
            _is(t, k)
            for k in (
                "means",
                "near",
                "have",
                "kept",
                "affirm",
                "deny",
                "none",
                "away",
                "away_places",
                "prepared",
                "company",
            )
        ):
            continue
        return False
    return True


def _done(c: list[Token], i: int) -> bool:
    """The putting away at ``i`` is done or in place (預けた, 預けてる, 預けてある, 処分済み), not to
    come (預けます, 捨ててくる, 離しておきます)."""
    for j in range(i + 1, len(c)):
        u = c[j]
        if u.lemma in DONE or u.lemma in STATES and c[j - 1].surface in ("て", "で"):
            return True
    return False


def _with(c: list[Token], i: int) -> bool:
    """The person at ``i`` is with the client: 一緒, or いる as the next verb (母が隣の部屋にいる),
    not negated, not an auxiliary (外されている)."""
    for j in range(i + 1, len(c)):
        u = c[j]
        if u.lemma == "一緒":
            return True
        if u.pos1 in ("動詞", "形容詞"):
            return u.lemma in ("居る", "おる") and c[j - 1].surface not in ("て", "で") and not negated(c, j)
    return False


def names_means(c: list[Token]) -> bool:
    joined = to_hiragana("".join(t.surface for t in c))
    return any(_is(t, "means") for t in c) or any(w in joined for w in words()["means"] if len(w) >= 3)


def _object(c: list[Token], i: int) -> bool:
    """The word at ``i`` is the object of what follows (部屋を片付けた: the room is what was tidied)."""
    return i + 1 < len(c) and c[i + 1].surface == "を"


def _in_the_past(c: list[Token]) -> bool:
    """The clause tells of a time before (前はため込んでた, 昔に集めてた), not of now: a `PAST` word
    before は or に, not 目の前に."""
    return any(
        t.lemma in PAST and i + 1 < len(c) and c[i + 1].surface in ("は", "に") and not (i and c[i - 1].surface == "の")
        for i, t in enumerate(c)
    )


def _whether(c: list[Token], i: int) -> bool:
    """The word at ``i`` is asked about, not said (安全か, 大丈夫なのか, 安全なのかどうか): か after it,
    with only だ or の between."""
    j = i + 1
    while j < len(c) and (c[j].lemma == "だ" or c[j].surface == "の"):
        j += 1
    return j < len(c) and c[j].surface == "か"


def _attributive(c: list[Token], i: int) -> bool:
    """The verb at ``i`` describes the noun after it (集めてた薬は捨てた: the pills, not a having)."""
    j = i + 1
    while j < len(c) and (c[j].pos1 == "助動詞" or c[j].surface in ("て", "で") or c[j].lemma in AUXILIARIES):
        j += 1
    return j > i + 1 and j < len(c) and c[j].pos1 == "名詞" and c[i].pos1 == "動詞"


def clause_signals(c: list[Token], asked: str, has_means: bool) -> set[str]:
    """``danger`` / ``safe`` / ``yes`` / ``no`` found in one clause (bot/safety_answers.yaml).
    ``has_means``: the clause names a means, or the clause before named one and said nothing of it
    (「処方された薬、一か月分まとめてある」)."""
    out: set[str] = set()
    bare = _bare(c)
    kept = asked not in AFTER_MEANS_SAFETY  # after it, a means put in a drawer is put away
    past = _in_the_past(c)

    def about(i: int) -> bool:  # the word at i is said of a means or of what is near (not 意味がない)
        near = (k for k in range(max(0, i - 3), i) if not _object(c, k))
        return has_means or bare or any(_is(c[k], "near") or _is(c[k], "prepared") for k in near)

    away_place = any(_is(t, "away_places") for t in c)
    predicates = 0
    for i, t in enumerate(c):
        prev = c[i - 1] if i else None
        if _is(t, "prepared") and not negated(c, i):
            out.add("danger")
        hypothetical = i + 1 < len(c) and c[i + 1].surface in ("たら", "ば", "だら")  # 何かあったら
        # 預けてある: the ある of 預ける
        auxiliary = prev is not None and prev.surface in ("て", "で") and t.lemma in AUXILIARIES
        holds = (_is(t, "have") or kept and _is(t, "kept")) and not _attributive(c, i) and not past
        if not hypothetical and (t.lemma == "無い" and _existence(c, i) or holds and not auxiliary):
            predicates += 1
            if about(i):
                out.add("safe" if negated(c, i) else "danger")
        elif not hypothetical and _is(t, "none"):
            out.add("safe")
        # put somewhere: away from them (別の部屋に置いてきた), or anywhere when asked to put it away
        # (戸棚にしまった) unless at hand (手元に置いてる); not an auxiliary (飲んでしまった, 入れておいた's おく)
        placed = not auxiliary and (
            t.lemma in PUT and away_place or t.lemma in PUT_AWAY and asked in AFTER_MEANS_SAFETY
        )
        if _is(t, "away") and (about(i) or away_place) or placed:
            at_hand = placed and not away_place and any(_is(u, "at_hand") for u in c[:i])
            if negated(c, i) != at_hand:
                out.add("danger")
            elif at_hand:
                out.add("safe")  # 手元に置いてない
            else:  # asked to put it away: 今から預けてきます is a promise, 預けた or 預けてある is done
                out.add("going" if asked in AFTER_MEANS_SAFETY and not _done(c, i) else "safe")
        if _is(t, "places") or (_is(t, "high") and any(u.lemma in ("所", "階", "場所") for u in c[i + 1 :])):
            if not negated(c, i):
                out.add("danger")
        if _is(t, "safe") and not _whether(c, i):  # 安全かどうか, 大丈夫なのかな: a doubt, not an all-clear
            # after the means-safety message, 大丈夫 or ok says "all right", not "it is away"
            out.add("danger" if negated(c, i) else "fine" if asked in AFTER_MEANS_SAFETY else "safe")
        if asked in AFTER_MEANS_SAFETY and not negated(c, i):
            if _is(t, "agree") or t.lemma == "為る" and prev is not None and prev.surface == "そう":
                out.add("yes")  # わかりました, やってみる, そうします
        if _is(t, "alarm") and not (i + 1 < len(c) and c[i + 1].lemma == "物"):
            out.add("safe" if negated(c, i) else "danger")
        if _is(t, "alone") and [u.lemma for u in c[i + 1 : i + 3]] in (["だ", "無い"], ["だ", "は"]) and negated(c, i):
            out.add("safe")  # 一人じゃない (not 一人もいない)
        if _is(t, "company") and _with(c, i):
            out.add("safe")
        if (
            t.pos1 == "動詞"
            and t.cform.startswith("意志推量形")
            and [u.lemma for u in c[i + 1 : i + 3]] == ["と", "為る"]
        ):
            out.add("danger")  # 飲もうとしてた: an act begun
        if _is(t, "acts") and t.pos1 in ("動詞", "名詞") and not negated(c, i):
            after = {u.lemma for u in c[i + 1 : i + 4]}
            if after & PROGRESS or any(u.lemma in NOW or u.surface in NOW for u in c[:i]):
                out.add("danger")
        if asked in AFTER_MEANS_SAFETY and _is(t, "refuse"):
            if t.lemma in ("できる", "出来る", "離す", "手放す"):
                if negated(c, i):
                    out.add("danger")
            elif not negated(c, i):
                out.add("danger")
        if _is(t, "affirm") and not predicates and t.pos1 in ("感動詞", "名詞", "副詞", "動詞"):
            out.add("yes")
        if _is(t, "deny") and t.pos1 in ("感動詞", "名詞") or t.surface in ("いや", "ううん"):
            out.add("no")
    if has_means and not predicates and not any(u.pos1 in ("動詞", "形容詞") for u in c) and not out:
        out.add("danger")  # a means named and nothing said of it: the answer to "is one within reach?"
    return out


def asks_about_risk(reply: str) -> bool:
    """Whether a counselor's reply asks the client a yes-or-no question about their own suicidal
    thoughts, self-harm or preparation: a sentence with a `risk_topics` word that ends as a question,
    with no `third_party` word before the topic, no question word (``_asks_which``: いつから, どんなとき — their
    answers are not a yes) and no `risk_not_asked` word (a request to talk, 「お話を聞かせてもらえますか」)."""
    w = words()
    for sentence in re.split(r"(?<=[。!?\n])", unicodedata.normalize("NFKC", reply)):
        at = [sentence.find(t) for t in w["risk_topics"] if t in sentence]
        if not at:
            continue
        end = sentence.strip().rstrip("。…・ ")
        if not end.endswith(("?", "か", "かな", "かね")) or any(p in sentence[: min(at)] for p in w["third_party"]):
            continue
        if not (_asks_which(sentence) or any(r in sentence for r in w["risk_not_asked"])):
            return True
    return False


def _asks_which(sentence: str) -> bool:
    """A question word (``WH``) in the sentence: its answer is not a yes (何か of 何か準備を is none)."""
    toks = tokens(sentence)
    return any(
        (t.surface in WH or t.lemma in WH) and not (i + 1 < len(toks) and toks[i + 1].surface == "か")
        for i, t in enumerate(toks)
    )


def _risk_clause(c: list[Token]) -> str | None:
    """``yes`` / ``no`` / None: what one clause answers to a question about the client's risk."""
    if any(_is(t, "deny") and t.pos1 in ("感動詞", "名詞") for t in c):
        return "no"
    if any(_is(t, "affirm") for t in c):
        return "yes"
    for i, t in enumerate(c):
        if _is(t, "risk_verbs") or _is(t, "risk_yes") or t.lemma == "無い" and _existence(c, i) and _bare(c):
            return "no" if negated(c, i) else "yes"
    return "yes" if any(_is(t, "often") for t in c) else None


def read_answer(text: str, asked: str) -> str:
    """``danger``, ``safe``, ``agree`` (after the means-safety message only) or ``unclear``: the
    client's answer to what the bot ``asked``."""
    if asked not in ASKED:
        raise AnswerError(f"asked={asked!r}: expected one of {', '.join(ASKED)}")
    found: set[str] = set()
    parts = clauses(text)
    topic = False
    for c in parts:
        named = names_means(c)
        signals = clause_signals(c, asked, named or topic)
        found |= signals
        topic = named and not signals  # a means named, nothing said of it yet
    norm = normalize(text)
    if "danger" in found:
        return "danger"
    if "safe" in found and len(norm) <= SAFE_MAX_CHARS:
        return "safe"
    if asked == "risk":
        said = [r for r in map(_risk_clause, parts) if r]
        if said and said[-1] == "yes":
            return "danger"
        return "safe" if said and len(norm) <= SAFE_MAX_CHARS else "unclear"
    if asked == "means" and found & {"yes", "no"} and len(found & {"yes", "no"}) == 1:
        return "danger" if "yes" in found else "safe"
    if asked in AFTER_MEANS_SAFETY and len(norm) <= SAFE_MAX_CHARS:
        bare = norm.strip(" 。、！!？?…・〜ー").lower()
        if found & {"yes", "going", "fine"} and "no" not in found or bare in words()["agree"]:
            return "agree"
    return "unclear"


LABELS = ("danger", "safe", "agree", "unclear")


def question_figures(path) -> dict:
    """How ``asks_about_risk`` reads a labelled set of counselor replies (asks | none <TAB> reply)."""
    from kokoro.labelled import read_tsv

    rows = read_tsv(Path(path), 2)
    asks = [asks_about_risk(t) for label, t in rows if label == "asks"]
    others = [asks_about_risk(t) for label, t in rows if label != "asks"]
    return {
        "file": Path(path).name,
        "asking": len(asks),
        "read_as_asking": sum(asks),
        "other": len(others),
        "other_read_as_asking": sum(others),
    }


def figures(path, misses: bool = False) -> dict:
    """``python -m bot safety-eval --answers FILE``: how each label was read (danger / safe /
    unclear), by what was asked; with ``misses`` the lines read wrong (their text)."""
    from kokoro.labelled import LabelledSetError, numbered_rows

    try:
        rows = numbered_rows(Path(path), 3)
    except LabelledSetError as e:
        raise AnswerError(f"{e} (label, asked, text)") from None
    table = {lab: dict.fromkeys(LABELS, 0) for lab in LABELS}
    by_asked = {a: [0, 0] for a in ASKED}
    wrong = []
    for n, (label, asked, text) in rows:
        if label not in LABELS or asked not in ASKED:
            raise AnswerError(
                f"{path}:{n}: label {label!r} / asked {asked!r}: write one of {', '.join(LABELS)} "
                f"<TAB> one of {', '.join(ASKED)} <TAB> the client's message"
            )
        got = read_answer(text, asked)
        table[label][got] += 1
        by_asked[asked][0] += got == label
        by_asked[asked][1] += 1
        if got != label:
            wrong.append({"line": n, "label": label, "asked": asked, "read": got, **({"text": text} if misses else {})})
    out = {
        "file": str(path),
        "lines": len(rows),
        "read_right": sum(table[lab][lab] for lab in LABELS),
        "read_as": table,  # label → how its lines were read
        "by_asked": {a: {"right": r, "lines": n} for a, (r, n) in by_asked.items() if n},
        "danger_missed": table["danger"]["safe"] + table["danger"]["agree"] + table["danger"]["unclear"],
        "read_safe_wrongly": table["danger"]["safe"] + table["agree"]["safe"] + table["unclear"]["safe"],
        "wrong": wrong,
    }
    return out
