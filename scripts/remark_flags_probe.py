"""Issue 33 item 1, a probe before a flag model ships: can a learned layer over counselor
utterances tell a harmful (or potentially unethical) remark from what real counselors write?

Positives: kokoro/rule_sets/remarks_train.tsv and the screening drafts' harmful lines; negatives:
its ok look-alikes and N real counselor utterances of the scorer split's train sessions (flagged
sessions left out). Recall is 5-fold cross-validated over the written lines; the threshold is the
one that flags 1 % (then 0.5 %) of 300 real validation sessions (an utterance over it flags its
session). "Beats its session": how often a cross-validated harmful line scores above every real
counselor utterance of a validation session (its fold's model; the mean over lines and sessions) —
what the perturbation AUC of a penalty growing with a session's highest score, gated by nothing,
could reach. The held-out lists are not read. Prints figures; writes nothing.

    python scripts/remark_flags_probe.py --data DIR [--negatives 40000] [--c 4]
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from kokoro.concepts import Concepts
from kokoro.dataset import load
from kokoro.labelled import read_tsv
from kokoro.lexicon import normalize
from kokoro.morph import tokens
from kokoro.splits import scorer_split

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "kokoro" / "rule_sets"
OK_WEIGHT = 20.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--negatives", type=int, default=40000)
    ap.add_argument("--c", type=float, default=4.0)
    a = ap.parse_args()
    t0 = time.time()
    concepts = Concepts(REPO / "kokoro" / "remark_concepts.yaml")
    dialogues = load(a.data)
    by, split = {d.id: d for d in dialogues}, scorer_split(dialogues, 1)
    flagged = {d.id for d in dialogues if d.flags["harmful_due_to_ignorance"] or d.flags["other_potentially_unethical"]}
    utts = lambda ids: [(i, t.text) for i in ids if i not in flagged for t in by[i].turns if t.role == "counselor"]
    neg = [x for _, x in random.Random(0).sample(utts(split.train), a.negatives)]
    val = utts(split.validation[:300])
    drafts = [r for r in read_tsv(REPO / "bot" / "safety_sets" / "drafts.tsv", 2) if r[0] == "harmful"]
    written = read_tsv(RULES / "remarks_train.tsv", 2) + drafts
    texts = neg + [t for _, t in written]
    label = np.array(["real"] * len(neg) + [lab for lab, _ in written])
    weight = np.where(label == "ok", OK_WEIGHT, 1.0)

    def analyse(ts):
        toks = [tokens(normalize(t)) for t in ts]
        return [" ".join(x.lemma or x.surface for x in tk) for tk in toks], sp.csr_matrix(
            [concepts.vector(concepts.present(tk)) for tk in toks]
        )

    (lem, K), (lem_v, K_v) = analyse(texts), analyse([t for _, t in val])
    words = TfidfVectorizer(analyzer="word", token_pattern=r"\S+", ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    chars = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=2, sublinear_tf=True, preprocessor=normalize)
    W, C = words.fit_transform(lem), chars.fit_transform(texts)
    W_v, C_v = words.transform(lem_v), chars.transform([t for _, t in val])
    inputs = {
        "concepts": (K, K_v),
        "concepts + lemma n-grams": (sp.hstack([K, W]).tocsr(), sp.hstack([K_v, W_v]).tocsr()),
        "concepts + lemmas + chars": (sp.hstack([K, W, C * 0.5]).tocsr(), sp.hstack([K_v, W_v, C_v * 0.5]).tocsr()),
    }
    sessions = np.array([i for i, _ in val])

    def session_max(p):  # the highest utterance probability of each validation session
        return np.array([p[sessions == i].max() for i in dict.fromkeys(sessions)])

    mine = np.arange(len(neg), len(texts))
    fold = np.random.RandomState(0).randint(0, 5, len(mine))
    print(f"{len(neg)} real utterances, {len(written)} written lines, {len(val)} validation utterances")
    print("| inputs | flag | sessions flagged | threshold | CV recall | ok look-alikes flagged | beats its session |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, (X, X_v) in inputs.items():
        for flag in ("harmful", "unethical"):
            y = (label == flag).astype(int)
            fit = lambda m: LogisticRegression(C=a.c, max_iter=3000, class_weight="balanced").fit(
                X[m], y[m], sample_weight=weight[m]
            )
            cv, beats = np.zeros(len(texts)), []
            for f in range(5):
                keep = np.ones(len(texts), bool)
                keep[mine[fold == f]] = False
                model = fit(keep)
                cv[mine[fold == f]] = model.predict_proba(X[mine[fold == f]])[:, 1]
                most = session_max(model.predict_proba(X_v)[:, 1])
                beats += [(cv[k] > most).mean() for k in mine[fold == f] if label[k] == flag]
            p_v = fit(np.ones(len(texts), bool)).predict_proba(X_v)[:, 1]
            for share in (0.01, 0.005):
                th = float(np.quantile(session_max(p_v), 1 - share))
                rec = (cv[mine][label[mine] == flag] >= th).mean()
                fa = (cv[mine][label[mine] == "ok"] >= th).mean()
                print(f"| {name} | {flag} | {share:.1%} | {th:.3f} | {rec:.0%} | {fa:.0%} | {np.mean(beats):.0%} |")
    print(f"{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
