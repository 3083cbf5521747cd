"""Issue 30's sixth-round study of the learned crisis layer; prints figures measured in one run.

  .venv/bin/python scripts/crisis_study.py [--data DIR] [--with-looked-at] [--lex-weight 3] [--ask-band]

1. leave-one-split-out on the looked-at held-out splits (2, 3, 4): train on the training sets
   (``--with-looked-at``: plus the other two splits), test on the third; recall / false alarms of
   lexicon-or-model at several thresholds
2. the share of real KokoroChat client turns (dialogues 300-400, merged turns) the lexicon or the
   model fires on at those thresholds, for the model trained as the figures in 1 are
3. ``--ask-band``: what a question below the threshold would reach: client turns of dialogues 0-300
   and 600-700 with no lexicon hit and the shipped model between 0.5-0.7 and THRESHOLD, and the
   dialogues they fall in

Never reads the newest held-out split (bot/safety_eval.HELD_OUT). No text is printed.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import bot.crisis_model as cm  # noqa: E402
from bot.safety import detect  # noqa: E402
from bot.safety_eval import EARLIER_HELD_OUT, HELD_OUT, labelled_lines  # noqa: E402

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
LOOKED_AT = ("cssrs_holdout2", "cssrs_holdout3", "cssrs_holdout4")


_models: dict[tuple[str, ...], cm.CrisisModel] = {}


def trained(base: list, splits: tuple[str, ...]) -> cm.CrisisModel:
    """The model trained on ``base`` and the labelled ``splits``, once per set of splits."""
    if splits not in _models:
        _models[splits] = cm.CrisisModel(base + [r for s in splits for r in labelled_lines(s)])
    return _models[splits]


def fires(model: cm.CrisisModel, texts: list[str]) -> tuple[list[bool], list[float]]:
    lex = [detect(t) for t in texts]
    return [bool(x) for x in lex], [model.probability(t, x) for t, x in zip(texts, lex)]


def share(flags: list[bool]) -> float:
    return 100 * sum(flags) / max(1, len(flags))


def leave_one_out(base: list, with_looked_at: bool) -> None:
    totals = {t: [0, 0, 0, 0] for t in THRESHOLDS}
    for held in LOOKED_AT:
        extra = tuple(s for s in LOOKED_AT if s != held) if with_looked_at else ()
        rows = labelled_lines(held)
        lex, p = fires(trained(base, extra), [r[2] for r in rows])
        crisis = [r[0] == "crisis" for r in rows]
        cells = []
        for t in THRESHOLDS:
            hit = [a or b >= t for a, b in zip(lex, p)]
            caught = sum(h for h, c in zip(hit, crisis) if c)
            alarms = sum(h for h, c in zip(hit, crisis) if not c)
            n_c, n_o = sum(crisis), len(crisis) - sum(crisis)
            totals[t] = [x + y for x, y in zip(totals[t], (caught, n_c, alarms, n_o))]
            cells.append(f"{t}: {100 * caught / n_c:.1f} / {100 * alarms / n_o:.1f} %")
        print(held, " | ".join(cells), flush=True)
    print(
        "all three", " | ".join(f"{t}: {100 * a / b:.1f} / {100 * c / d:.1f} %" for t, (a, b, c, d) in totals.items())
    )


def client_turns(dialogues) -> list[str]:
    return [t.text for d in dialogues for t in d.merged() if t.role == "client"]


def real_share(model: cm.CrisisModel, dialogues) -> None:
    lex, p = fires(model, client_turns(dialogues))
    cells = " | ".join(f"{t}: {share([a or b >= t for a, b in zip(lex, p)]):.2f} %" for t in THRESHOLDS)
    print(f"real client turns (dialogues 300-400, {len(lex)} merged): lexicon {share(lex):.2f} % | {cells}")


def ask_band(model: cm.CrisisModel, dialogues, name: str) -> None:
    per = [fires(model, client_turns([d])) for d in dialogues]
    n = sum(len(lex) for lex, _ in per)
    fired = [any(a or b >= cm.THRESHOLD for a, b in zip(lex, p)) for lex, p in per]
    for low in (0.5, 0.6, 0.7):
        band = [[not a and low <= b < cm.THRESHOLD for a, b in zip(lex, p)] for lex, p in per]
        turns = sum(sum(x) for x in band)
        asked = [any(x) for x in band]
        print(
            f"{name} ({n} merged client turns): band {low}-{cm.THRESHOLD}: {100 * turns / n:.2f} % of turns, "
            f"{sum(asked)} of {len(per)} dialogues, {sum(a and not f for a, f in zip(asked, fired))} of them "
            f"with no protocol (protocol in {sum(fired)})"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="KokoroChat folder (else KOKOROCHAT_DIR / the default)")
    ap.add_argument("--with-looked-at", action="store_true", help="train on the other looked-at splits too")
    ap.add_argument("--lex-weight", type=float, default=cm.LEX_WEIGHT, help="the lexicon's inputs' weight")
    ap.add_argument("--ask-band", action="store_true", help="measure the band below the threshold")
    args = ap.parse_args()
    assert HELD_OUT not in LOOKED_AT and set(LOOKED_AT) <= set(EARLIER_HELD_OUT)
    cm.LEX_WEIGHT = args.lex_weight
    base = cm.training_rows()
    leave_one_out(base, args.with_looked_at)
    from kokoro.dataset import load, resolve_data_dir

    dialogues = load(resolve_data_dir(args.data))
    real_share(trained(base, LOOKED_AT if args.with_looked_at else ()), dialogues[300:400])
    if args.ask_band:
        shipped = trained(base, ())
        ask_band(shipped, dialogues[:300], "dialogues 0-300")
        ask_band(shipped, dialogues[600:700], "dialogues 600-700")


if __name__ == "__main__":
    main()
