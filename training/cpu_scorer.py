"""Fit the CPU scorer (kokoro.cpu_scorer) on the paper's scorer split.

Kernel (dual) ridge on the centred linear kernel of four char-n-gram TF-IDF blocks plus
session-shape features: one eigendecomposition per feature weighting makes the ridge search
nearly free. Hyper-parameters are chosen on the seed's validation split, per-item rounding
offsets are tuned there, and the final model is refitted on train + validation; the fixed test
split is touched once, at the end.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kokoro.cpu_scorer import NUMERIC, CpuScorer, numeric_features, text_blocks
from kokoro.dataset import load
from kokoro.items import ITEMS
from kokoro.scoring import score_metrics
from kokoro.splits import scorer_split

from .report import library_versions, write_json


@dataclass
class CpuScorerConfig:
    data: str | None = None
    out: str = "runs/cpu-scorer"
    seed: int = 1
    ngram_max: int = 3
    max_features: int = 60000
    min_df: int = 3
    alphas: tuple = (0.3, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
    numeric_weights: tuple = (0.0, 0.05, 0.15)
    offset_grid: float = 0.3
    limit: int = 0  # use only this many dialogues (smoke tests); 0 = all
    settings_note: str = field(default="features never include rater ids")


def _kernels(blocks_a, blocks_b):
    return [(a @ b.T).toarray() for a, b in zip(blocks_a, blocks_b)]


def _center_train(K):

    row = K.mean(0)
    return K - row[None, :] - row[:, None] + row.mean(), row


def _round(raw):
    import numpy as np

    return np.clip(np.rint(raw), 0, 5)


def _tune_offsets(raw, gold, span: float):
    """Per item, the shift of the rounding boundary that maximizes validation accuracy
    (ties: the smallest shift)."""
    import numpy as np

    grid = np.round(np.arange(-span, span + 1e-9, 0.05), 3)
    offsets = np.zeros(raw.shape[1])
    for j in range(raw.shape[1]):
        accs = [((_round(raw[:, j] + b) == gold[:, j]).mean(), -abs(b), b) for b in grid]
        offsets[j] = max(accs)[2]
    return offsets


def train_cpu_scorer(cfg: CpuScorerConfig) -> dict:
    import numpy as np
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import TfidfVectorizer

    t0 = time.time()
    dialogues = load(cfg.data)
    split = scorer_split(dialogues, cfg.seed)
    by = {d.id: d for d in dialogues}
    ids = {k: list(getattr(split, k)) for k in ("train", "validation", "test")}
    if cfg.limit:
        ids = {k: v[: max(5, cfg.limit * len(v) // len(dialogues))] for k, v in ids.items()}
    sess = {k: [by[i].turns for i in v] for k, v in ids.items()}
    gold = {k: np.array([by[i].items for i in v], dtype=float) for k, v in ids.items()}

    def fit_features(train_sessions):
        vecs = [
            TfidfVectorizer(
                analyzer="char",
                ngram_range=(1, cfg.ngram_max),
                min_df=cfg.min_df,
                max_features=cfg.max_features,
                sublinear_tf=True,
                dtype=np.float32,
            )
            for _ in range(4)
        ]
        blocks = list(zip(*[text_blocks(t) for t in train_sessions]))
        for v, b in zip(vecs, blocks):
            v.fit(b)
        num = np.array([numeric_features(t) for t in train_sessions])
        return vecs, num.mean(0), num.std(0) + 1e-6

    def transform(vecs, mean, scale, sessions):
        blocks = list(zip(*[text_blocks(t) for t in sessions]))
        X = [v.transform(b) for v, b in zip(vecs, blocks)]
        F = (np.array([numeric_features(t) for t in sessions]) - mean) / scale
        return X, F

    # 1. choose the numeric weight and ridge alpha on validation
    vecs, mean, scale = fit_features(sess["train"])
    Xtr, Ftr = transform(vecs, mean, scale, sess["train"])
    Xva, Fva = transform(vecs, mean, scale, sess["validation"])
    Ktext = sum(_kernels(Xtr, Xtr))
    Kva_text = sum(_kernels(Xva, Xtr))
    ymean = gold["train"].mean(0)
    Yc = gold["train"] - ymean
    best = None
    for w in cfg.numeric_weights:
        K = Ktext + (w**2) * Ftr @ Ftr.T
        Kv = Kva_text + (w**2) * Fva @ Ftr.T
        Kc, row = _center_train(K)
        Kvc = Kv - Kv.mean(1, keepdims=True) - row[None, :] + row.mean()
        evals, U = np.linalg.eigh(Kc)
        UtY = U.T @ Yc
        for a in cfg.alphas:
            c = U @ (UtY / (evals + a)[:, None])
            raw = Kvc @ c + ymean
            mae = np.abs(raw - gold["validation"]).mean()
            if best is None or mae < best[0]:
                best = (mae, w, a, raw)
    _, w_num, alpha, raw_va = best
    offsets = _tune_offsets(raw_va, gold["validation"], cfg.offset_grid)
    val_metrics = score_metrics(_round(raw_va + offsets).tolist(), gold["validation"].astype(int).tolist())

    # 2. refit on train + validation with the chosen settings; primal weights for fast scoring
    fit_sessions = sess["train"] + sess["validation"]
    Y = np.vstack([gold["train"], gold["validation"]])
    vecs, mean, scale = fit_features(fit_sessions)
    X, F = transform(vecs, mean, scale, fit_sessions)
    Xall = sp.hstack(X + [sp.csr_matrix(F * w_num)]).tocsr()
    K = (Xall @ Xall.T).toarray()
    Kc, _ = _center_train(K)
    ymean = Y.mean(0)
    c = np.linalg.solve(Kc + alpha * np.eye(len(Kc)), Y - ymean)
    coef = np.asarray(Xall.T @ c, dtype=np.float32)
    xmean = np.asarray(Xall.mean(0)).ravel()
    intercept = (ymean - xmean @ coef).astype(np.float32)
    identity = {
        "kind": "kokoro-cpu-scorer",
        "items": [it.key for it in ITEMS],
        "numeric_features": list(NUMERIC),
        "settings": asdict(cfg) | {"chosen_alpha": alpha, "chosen_numeric_weight": w_num},
        "offsets": [round(float(x), 3) for x in offsets],
        "split": {
            "name": split.name,
            "hash": split.as_dict()["hash"],
            "fit_on": "train+validation",
            "sizes": {k: len(v) for k, v in ids.items()},
        },
        "versions": library_versions(),
    }
    # the numeric block was fitted as F * w_num == (num - mean) / (scale / w_num)
    scorer = CpuScorer(
        [(v, 1.0) for v in vecs], mean, scale / w_num if w_num else scale, coef, intercept, offsets, identity
    )
    pred_te = scorer.predict_many(sess["test"])
    test_metrics = score_metrics(pred_te, gold["test"].astype(int).tolist())
    raw_te = scorer.predict_raw(sess["test"])
    test_metrics["mae_raw"] = float(np.abs(raw_te - gold["test"]).mean())
    identity["validation"] = {k: val_metrics[k] for k in ("acc", "acc_soft", "mae")}
    identity["test"] = {k: test_metrics[k] for k in ("acc", "acc_soft", "mae", "mae_raw")}
    identity["seconds"] = round(time.time() - t0, 1)
    out = Path(cfg.out)
    scorer.save(out)
    write_json(out / "metrics.json", {"test": test_metrics, "validation": val_metrics})
    return {
        "acc": round(test_metrics["acc"], 2),
        "acc_soft": round(test_metrics["acc_soft"], 2),
        "mae": round(test_metrics["mae"], 4),
        "mae_raw": round(test_metrics["mae_raw"], 4),
        "n_test": test_metrics["n"],
        "split": split.name,
        "seconds": identity["seconds"],
        "out": str(out),
    }
