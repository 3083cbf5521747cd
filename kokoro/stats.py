"""Dataset statistics (the paper's Table 3 and the split/flag counts)."""

from __future__ import annotations

import statistics
from typing import Sequence

from .dataset import Dialogue
from .splits import HIGH_MAX, LOW_MAX_EXCL, TEST_MIN_SCORE

STATS_KEYS = (
    "dialogues",
    "utterances",
    "counselor_utterances",
    "client_utterances",
    "avg_utterances_per_dialogue",
    "avg_chars_per_utterance",
    "avg_chars_counselor",
    "avg_chars_client",
    "speakers",
    "counselor_speakers",
    "client_speakers",
    "score_mean",
    "score_median",
    "test_dialogues",
    "low",
    "high",
    "full",
    "flag_harmful",
    "flag_unethical",
    "flag_unwilling",
    "merged_turns",
    "test_merged_counselor_turns",
)


def lexical_diversity(dialogue_texts: Sequence[Sequence[str]], words=None) -> dict:
    """PsyDial's lexical diversity of dialogue for one role: LDD = PUW × UWPD, where PUW is the
    share of unique words among all words (%) and UWPD the unique words per dialogue, over
    ``dialogue_texts`` (one list of that role's utterances per dialogue). Words come from
    kokoro.morph.words, the tokenizer evaluation's reply metrics state."""
    if words is None:
        from .morph import words
    vocab: set[str] = set()
    n_words = 0
    for texts in dialogue_texts:
        for t in texts:
            w = words(t)
            vocab.update(w)
            n_words += len(w)
    n_dialogues = len(dialogue_texts)
    puw = 100 * len(vocab) / n_words if n_words else 0.0
    uwpd = len(vocab) / n_dialogues if n_dialogues else 0.0
    return {
        "ldd": round(puw * uwpd, 4),
        "puw": round(puw, 4),
        "uwpd": round(uwpd, 4),
        "unique_words": len(vocab),
        "words": n_words,
        "dialogues": n_dialogues,
    }


def ldd_by_role(dialogues: Sequence[Dialogue]) -> dict:
    """``ldd_client`` and ``ldd_counselor`` for KokoroChat dialogues (their PUW/UWPD beside)."""
    out = {}
    for role in ("client", "counselor"):
        r = lexical_diversity([[t.text for t in d.turns if t.role == role] for d in dialogues])
        out[f"ldd_{role}"] = r["ldd"]
        out[f"ldd_{role}_parts"] = {k: r[k] for k in ("puw", "uwpd", "unique_words", "words")}
    return out


def _avg(total: float, n: int) -> float:
    return round(total / n, 2) if n else 0.0


def compute_stats(dialogues: Sequence[Dialogue]) -> dict:
    n_utt = {"counselor": 0, "client": 0}
    n_chr = {"counselor": 0, "client": 0}
    merged = test_counselor = 0
    for d in dialogues:
        for t in d.turns:
            n_utt[t.role] += 1
            n_chr[t.role] += len(t.text)
        m = d.merged()
        merged += len(m)
        if d.score >= TEST_MIN_SCORE:
            test_counselor += sum(1 for t in m if t.role == "counselor")
    scores = [d.score for d in dialogues]
    counselors = {d.counselor_id for d in dialogues if d.counselor_id is not None}
    clients = {d.client_id for d in dialogues if d.client_id is not None}
    utt = n_utt["counselor"] + n_utt["client"]
    out = {
        "dialogues": len(dialogues),
        "utterances": utt,
        "counselor_utterances": n_utt["counselor"],
        "client_utterances": n_utt["client"],
        "avg_utterances_per_dialogue": _avg(utt, len(dialogues)),
        "avg_chars_per_utterance": _avg(n_chr["counselor"] + n_chr["client"], utt),
        "avg_chars_counselor": _avg(n_chr["counselor"], n_utt["counselor"]),
        "avg_chars_client": _avg(n_chr["client"], n_utt["client"]),
        "speakers": len(counselors | clients),
        "counselor_speakers": len(counselors),
        "client_speakers": len(clients),
        "score_mean": round(statistics.fmean(scores), 2) if scores else 0.0,
        "score_median": round(float(statistics.median(scores)), 2) if scores else 0.0,
        "test_dialogues": sum(s >= TEST_MIN_SCORE for s in scores),
        "low": sum(s < LOW_MAX_EXCL for s in scores),
        "high": sum(LOW_MAX_EXCL <= s <= HIGH_MAX for s in scores),
        "full": sum(s <= HIGH_MAX for s in scores),
        "flag_harmful": sum(d.flags["harmful_due_to_ignorance"] for d in dialogues),
        "flag_unethical": sum(d.flags["other_potentially_unethical"] for d in dialogues),
        "flag_unwilling": sum(d.flags["unwilling_to_continue"] for d in dialogues),
        "merged_turns": merged,
        "test_merged_counselor_turns": test_counselor,
    }
    assert tuple(out) == STATS_KEYS
    return out
