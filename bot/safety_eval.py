"""`python -m bot safety-eval`: recall per category and false alarms of the crisis detector on the
labelled sets in bot/safety_sets/, and the draft screening's recall and its flag rate on gold
KokoroChat counselor turns. Prints one JSON object."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

from kokoro.labelled import LabelledSetError, read_tsv

SETS = Path(__file__).with_name("safety_sets")
HELD_OUT = "cssrs_holdout5"  # the newest split nobody tunes on (docs/safety.md: its first run and later runs)
# never trained on either; measured after rounds, so reported beside it
EARLIER_HELD_OUT = ("cssrs_holdout4", "cssrs_holdout3", "cssrs_holdout2")
REAL_HELD_OUT = "kokorochat_refs_holdout"  # real client utterances by reference, never tuned on (docs/safety.md)


class SafetySetError(LabelledSetError):
    """A labelled set that cannot be read or does not match the data it refers to."""


def labelled_lines(name: str) -> list[tuple[str, str, str]]:
    return [tuple(r) for r in read_tsv(SETS / f"{name}.tsv", 3)]


def kokorochat_lines(data_dir, name: str = "kokorochat_refs") -> list[tuple[str, str, str]]:
    """The referenced KokoroChat turns, read from the user's copy (their text is not committed)."""
    return [(label, cat, earlier_and_text[-1]) for label, cat, earlier_and_text in kokorochat_reading(data_dir, name)]


def kokorochat_reading(data_dir, name: str, earlier: bool = False) -> list[tuple[str, str, list[str]]]:
    """(label, category, [the client's utterances before the referenced one (``earlier``) ..., its
    text]) for each reference of ``name``.tsv, read from the user's copy and checked against its digest."""
    from kokoro.dataset import DataError, load_dialogue, resolve_data_dir

    refs = read_tsv(SETS / f"{name}.tsv", 5)
    folder = resolve_data_dir(data_dir)
    out = []
    for label, cat, did, idx, digest in refs:
        try:
            d = load_dialogue(folder / f"{did}.json")
        except (OSError, DataError):
            d = None
        if d is None or int(idx) >= len(d.turns):
            raise SafetySetError(f"{name}.tsv: dialogue {did} utterance {idx} is not in {data_dir}")
        text = d.turns[int(idx)].text
        if hashlib.sha256(text.encode()).hexdigest()[:12] != digest:
            raise SafetySetError(
                f"{name}.tsv: dialogue {did} utterance {idx} differs from the labelled "
                "text; is this an unmodified KokoroChat?"
            )
        before = [t.text for t in d.turns[: int(idx)] if t.role == "client"] if earlier else []
        out.append((label, cat, before + [text]))
    return out


def real_figures(data_dir, name: str = REAL_HELD_OUT) -> dict:
    """Real client utterances as the bot reads them: each alone (both layers), and in its session
    (``replay`` of the client's utterances up to it: alone, or else with the recent ones since the
    last fire; a line after a fire is read afresh, as the bot does once it has answered)."""
    rows = kokorochat_reading(data_dir, name, earlier=True)
    alone = [(label, cat, texts[-1]) for label, cat, texts in rows]
    read = [bool(replay(texts)[-1][0]) for _, _, texts in rows]
    return {**layers(alone), "in_session": _figures(alone, read, "both, in the session")}


LAYERS = ("lexicon", "learned", "both")


def decide(text: str) -> dict[str, bool]:
    """Each layer's decision on one message: "lexicon", "learned" (the model over its threshold) and
    "both" (what the bot acts on)."""
    from .crisis_model import THRESHOLD
    from .safety import assess

    lex, p = assess(text)
    return {"lexicon": bool(lex), "learned": p >= THRESHOLD, "both": bool(lex) or p >= THRESHOLD}


def layers(rows: list[tuple[str, str, str]], only: tuple[str, ...] = LAYERS, decided: list | None = None) -> dict:
    """Recall per category and false alarms of each layer; each row assessed once for all of them
    (``decided``: the rows' ``decide`` results, when the caller has them already)."""
    decided = decided if decided is not None else [decide(text) for _, _, text in rows]
    return {layer: _figures(rows, [d[layer] for d in decided], layer) for layer in only}


def crisis_figures(rows: list[tuple[str, str, str]], layer: str = "both") -> dict:
    return layers(rows, (layer,))[layer]


def _figures(rows: list[tuple[str, str, str]], found: list[bool], layer: str) -> dict:
    hit, total, fa, neg, fa_by, neg_by = Counter(), Counter(), 0, 0, Counter(), Counter()
    for (label, cat, _), f in zip(rows, found):
        if label == "crisis":
            total[cat] += 1
            hit[cat] += f
        else:
            neg += 1
            fa += f
            neg_by[cat] += 1
            fa_by[cat] += f
    n = sum(total.values())
    return {
        "layer": layer,
        "crisis_lines": n,
        "non_crisis_lines": neg,
        "recall": round(sum(hit.values()) / n, 4) if n else None,
        "recall_by_category": {c: round(hit[c] / total[c], 4) for c in sorted(total)},
        "false_alarm_rate": round(fa / neg, 4) if neg else None,
        "false_alarms": fa,
        "false_alarms_by_category": {c: f"{fa_by[c]}/{neg_by[c]}" for c in sorted(neg_by)},
        "missed": n - sum(hit.values()),
    }


def latency(texts: list[str]) -> dict:
    """Per-message time of both layers (they run before the webhook's work goes on)."""
    import time

    from .safety import assess

    assess("warm-up")
    ts = []
    for t in texts:
        t0 = time.perf_counter()
        assess(t)
        ts.append(time.perf_counter() - t0)
    ts.sort()
    q = lambda x: round(1000 * ts[min(len(ts) - 1, int(x * len(ts)))], 2)
    return {"messages": len(ts), "p50_ms": q(0.5), "p99_ms": q(0.99), "max_ms": round(1000 * ts[-1], 2)}


def replay(texts: list[str]) -> list[tuple[list[str], int]]:
    """What the bot acts on for each of a client's messages in a session, in order: (categories,
    how many messages were read), as bot/safety.read_message reads them, with the recent messages
    since the last fire (the 600 s window is not applied: KokoroChat's turns come minutes apart)."""
    from .safety import read_message

    out, recent = [], []
    for text in texts:
        cats, read = read_message(text, lambda: recent)
        out.append((cats, read))
        recent = [] if cats else recent + [text]  # answered: the next messages are read afresh
    return out


def session_reading(dialogues) -> dict:
    """How often real clients would get the crisis protocol as the bot reads them: each client turn
    of ``dialogues`` alone, and when it does not fire, with the client's recent earlier turns
    (``replay``)."""
    turns, alone, together = 0, set(), set()
    fires = {"alone": 0, "together": 0}
    for d in dialogues:
        read = replay([t.text for t in d.turns if t.role == "client"])
        turns += len(read)
        for cats, n in read:
            if cats:
                fires["together" if n > 1 else "alone"] += 1
                (together if n > 1 else alone).add(d.id)
    return {
        "dialogues": len(dialogues),
        "client_turns": turns,
        "fire_alone": fires["alone"] / max(turns, 1),
        "fire_together_only": fires["together"] / max(turns, 1),
        "dialogues_with_a_fire": len(alone | together),
        "dialogues_only_read_together": len(together - alone),
    }


def screening_figures(data_dir) -> dict:
    from kokoro.screening import screen_draft

    rows = [tuple(r) for r in read_tsv(SETS / "drafts.tsv", 2)]
    bad = [(item, t) for item, t in rows if item != "ok"]
    ok = [t for item, t in rows if item == "ok"]
    caught = Counter(item for item, t in bad if item in screen_draft(t))
    per = Counter(item for item, _ in bad)
    out = {
        "bad_drafts": len(bad),
        "recall": round(sum(caught.values()) / len(bad), 4),
        "recall_by_item": {k: round(caught[k] / per[k], 4) for k in sorted(per)},
        "ordinary_drafts": len(ok),
        "ordinary_flagged": sum(bool(screen_draft(t)) for t in ok),
    }
    if data_dir is not None:
        from kokoro.dataset import load

        turns = [t.text for d in load(data_dir) for t in d.merged() if t.role == "counselor"]
        flagged = sum(bool(screen_draft(t)) for t in turns)
        out.update(gold_counselor_turns=len(turns), gold_flagged=flagged, gold_flag_rate=round(flagged / len(turns), 5))
    return out


def run(data_dir=None, gold: bool = True) -> dict:
    from .crisis_model import THRESHOLD, TRAIN_SETS
    from .safety import lexicon

    written = labelled_lines("crisis")
    holdout = labelled_lines("crisis_holdout")
    cssrs = labelled_lines(HELD_OUT)
    report = {
        "lexicon": {
            "file": "bot/crisis_lexicon.yaml",
            "entries": len(lexicon().entries),
            "reviewed": lexicon().meta.get("reviewed"),
        },
        "learned": {"file": "bot/crisis_model.py", "trained_on": list(TRAIN_SETS), "threshold": THRESHOLD},
        HELD_OUT: layers(cssrs),  # never trained or tuned on (docs/safety.md has its first run)
        **{name: layers(labelled_lines(name)) for name in EARLIER_HELD_OUT},
        "cssrs_holdout": crisis_figures(labelled_lines("cssrs_holdout")),  # looked at: no longer held out
        "cssrs_train": crisis_figures(labelled_lines("cssrs_train")),
        "written": crisis_figures(written),
        "holdout": crisis_figures(holdout),
        "latency": latency([t for _, _, t in cssrs]),
    }
    if data_dir is not None:
        kc = kokorochat_lines(data_dir)
        report["kokorochat"] = crisis_figures(kc)
        report[REAL_HELD_OUT] = real_figures(data_dir)
        from kokoro.dataset import load

        report["kokorochat_sessions"] = session_reading(load(data_dir)[:300])  # the first 300 dialogues
        report["all"] = crisis_figures(written + holdout + kc)
    else:
        report["all"] = crisis_figures(written + holdout)
        report["kokorochat"] = "skipped: KokoroChat not found (--data DIR or KOKOROCHAT_DIR)"
    from .safety_answers import figures, question_figures

    report["risk_question"] = {  # the counselor's own question about risk, and the answers to it (held out)
        "questions": question_figures(SETS / "risk_questions_holdout.tsv"),
        "answers": {k: v for k, v in figures(SETS / "safety_answers_risk_holdout.tsv").items() if k != "wrong"},
    }
    from .denial import figures as denial_figures

    report["denials"] = {  # a denial of the crisis words in a session at risk (bot/denial.py): held-out sets
        name: {k: v for k, v in denial_figures(SETS / f"{name}.tsv").items() if k != "wrong"}
        for name in ("denials_holdout", "denials_holdout2", "denials_holdout3")
    }
    report["screening"] = screening_figures(data_dir if gold else None)
    return report
