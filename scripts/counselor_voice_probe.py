"""Issue 33, a probe of an idea no written line teaches: does a harmful remark sound like a
counselor? A model of *whose voice* an utterance is in — real counselor utterances against real
client utterances of the scorer split's train sessions, character 1–3-grams (and lemma 1–2-grams),
logistic regression — is trained on KokoroChat alone, so every written list is held out from it.
A remark that judges, blames or dismisses the client is said the way clients speak of others, not
the way counselors speak to clients; its "client voice" probability is the flag's score.

Threshold: the one at which 1 % (then 0.5 %) of 300 real validation sessions (flagged ones left out)
have an utterance over it. Recall at it on each written list's harmful and unethical lines, and its
ok look-alikes. "Beats its session": how often a harmful line scores above every real counselor
utterance of a validation session. Prints figures; writes nothing.

    python scripts/counselor_voice_probe.py --data DIR [--n 120000] [--lists remarks_train]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kokoro.dataset import load  # noqa: E402
from kokoro.labelled import read_tsv  # noqa: E402
from kokoro.lexicon import normalize  # noqa: E402
from kokoro.morph import tokens  # noqa: E402
from kokoro.splits import scorer_split  # noqa: E402

RULES = REPO / "kokoro" / "rule_sets"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--n", type=int, default=120000, help="utterances of each role to train on")
    ap.add_argument("--c", type=float, default=4.0)
    ap.add_argument("--lemmas", action="store_true", help="add lemma 1-2-grams (slower)")
    ap.add_argument("--lists", nargs="+", default=["remarks_train"])
    a = ap.parse_args()
    t0 = time.time()
    dialogues = load(a.data)
    by, split = {d.id: d for d in dialogues}, scorer_split(dialogues, 1)
    flagged = {d.id for d in dialogues if d.flags["harmful_due_to_ignorance"] or d.flags["other_potentially_unethical"]}
    rng = random.Random(0)

    def utts(ids, role):
        return [(i, t.text) for i in ids if i not in flagged for t in by[i].turns if t.role == role]

    co = [x for _, x in rng.sample(utts(split.train, "counselor"), a.n)]
    cl = [x for _, x in rng.sample(utts(split.train, "client"), a.n)]
    val = utts(split.validation[:300], "counselor")
    texts, y = co + cl, np.array([0] * len(co) + [1] * len(cl))
    chars = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=3, sublinear_tf=True, preprocessor=normalize)
    parts = [chars.fit_transform(texts)]
    lem = lambda ts: [" ".join(x.lemma or x.surface for x in tokens(normalize(t))) for t in ts]
    if a.lemmas:
        words = TfidfVectorizer(analyzer="word", token_pattern=r"\S+", ngram_range=(1, 2), min_df=3, sublinear_tf=True)
        parts.append(words.fit_transform(lem(texts)))

    def features(ts):
        out = [chars.transform(ts)]
        if a.lemmas:
            out.append(words.transform(lem(ts)))
        return sp.hstack(out).tocsr()

    model = LogisticRegression(C=a.c, max_iter=3000).fit(sp.hstack(parts).tocsr(), y)
    print(f"trained on {len(texts)} utterances in {time.time() - t0:.0f} s")
    p_v = model.predict_proba(features([t for _, t in val]))[:, 1]
    sessions = np.array([i for i, _ in val])
    most = np.array([p_v[sessions == i].max() for i in dict.fromkeys(sessions)])
    print("| list | label | lines | sessions flagged 1 % | 0.5 % | beats its session |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in a.lists:
        rows = read_tsv(RULES / f"{name}.tsv", 2)
        for label in ("harmful", "unethical", "ok"):
            ts = [t for lab, t in rows if lab == label]
            if not ts:
                continue
            p = model.predict_proba(features(ts))[:, 1]
            rec = [(p >= np.quantile(most, 1 - s)).mean() for s in (0.01, 0.005)]
            beats = np.mean([(x > most).mean() for x in p])
            print(f"| {name} | {label} | {len(ts)} | {rec[0]:.0%} | {rec[1]:.0%} | {beats:.0%} |")
    print(f"{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
