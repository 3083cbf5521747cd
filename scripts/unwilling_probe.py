"""Issue 33 item 1, the third flag: can ``unwilling_to_continue`` (the client would not go on with this
counselor; the paper halves the total) be predicted for a client the scorer has never seen?

The bot's every LINE user is a new client, so predictions are cross-validated with folds grouped by
client (``GroupKFold``), beside the random folds a dialogue-level split would give. Inputs: character
2-3-grams of the client's turns (what a scorer sees). Halving a predicted total helps only where the
flag is right more often than wrong (a wrong halving costs what a right one saves), so the figure that
decides is the precision among the sessions ranked most likely. Also printed: how concentrated the flag
is by client, and the same precision ranking by the client's real item sum (a bound no scorer reaches).
Prints figures; writes nothing; no dialogue text is printed.

    python scripts/unwilling_probe.py --data DIR
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold, StratifiedKFold, cross_val_predict

from kokoro.dataset import load
from kokoro.splits import scorer_split

FLAG = "unwilling_to_continue"
TOPS = (25, 50, 100)


def precision_at(score, y, tops=TOPS) -> str:
    order = np.argsort(-score, kind="stable")
    return " / ".join(f"{100 * y[order[:k]].mean():.0f} %" for k in tops)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=None)
    a = ap.parse_args()
    t0 = time.time()
    ds = load(a.data)
    y = np.array([d.flags[FLAG] for d in ds], int)
    client = np.array([d.client_id for d in ds])
    by_client = Counter(client[y == 1])
    top_client, top_n = by_client.most_common(1)[0]
    test = set(scorer_split(ds, 1).test)
    in_test = Counter(client[i] for i, d in enumerate(ds) if y[i] and d.id in test)
    print(
        f"{y.sum()} of {len(ds)} sessions flagged, by {len(by_client)} clients; one client holds {top_n} "
        f"({sum(client == top_client)} sessions of theirs); scorer test split: {sum(in_test.values())} flagged, "
        f"{in_test[top_client]} of them that client's"
    )
    text = ["\n".join(t.text for t in d.turns if t.role == "client") for d in ds]
    X = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 3), min_df=3, max_features=60000, sublinear_tf=True)
    X = X.fit_transform(text)
    clf = LogisticRegression(C=4, max_iter=2000, class_weight="balanced")
    item_sum = np.array([sum(d.items) for d in ds], float)
    print(f"| sessions | folds | AUC | flagged among the top {' / '.join(map(str, TOPS))} |")
    print("| --- | --- | --- | --- |")
    for name, mask in (("all", np.ones(len(ds), bool)), ("without that client", client != top_client)):
        Xm, ym, gm = X[mask], y[mask], client[mask]
        folds = {
            "random (a dialogue-level split)": StratifiedKFold(5, shuffle=True, random_state=0).split(Xm, ym),
            "grouped by client (a new client)": GroupKFold(5).split(Xm, ym, gm),
        }
        for fname, cv in folds.items():
            p = cross_val_predict(clf, Xm, ym, cv=list(cv), method="predict_proba")[:, 1]
            print(f"| {name} ({ym.sum()} flagged) | {fname} | {roc_auc_score(ym, p):.3f} | {precision_at(p, ym)} |")
        s = -item_sum[mask]
        bound = f"{roc_auc_score(ym, s):.3f} | {precision_at(s, ym)}"
        print(f"| {name} | the real item sum, lowest first (a bound) | {bound} |")
    print(f"{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
