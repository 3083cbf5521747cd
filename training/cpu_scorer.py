"""Fit the CPU scorer (kokoro.cpu_scorer) on the paper's scorer split.

Kernel (dual) ridge on the centred linear kernel of four char-n-gram TF-IDF blocks, two
MeCab word-n-gram blocks (client, counselor) and session-shape features: one eigendecomposition
per feature weighting makes the ridge search, and its exact leave-one-out predictions, nearly
free. Block weights and alpha are chosen by leave-one-out MAE over the seed's train +
validation sessions, a stretch about the mean and per-item rounding offsets are tuned on those
leave-one-out items, and the final model is fitted on train + validation (``selection =
"validation"``: the older way, all chosen on the validation split with a train-only fit); the
fixed test split is touched once, at the end.

A coherence model (training/coherence.py) then gates a calibrated penalty for sessions whose
counselor does not answer this client; its setting is chosen on validation too.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kokoro import interval
from kokoro.blocks import fork_map, workers
from kokoro.cpu_scorer import (
    COHERENCE,
    NUMERIC,
    BlockCache,
    CpuScorer,
    coherence_matrix,
    numeric_features,
    stretch,
    text_blocks,
    word_blocks,
)
from kokoro.dataset import load
from kokoro.items import ITEMS
from kokoro.scoring import score_metrics
from kokoro.splits import scorer_split

from . import coherence as coh
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
    word_weights: tuple = (0.0, 1.0, 1.5)  # MeCab word blocks (client, counselor); kernel weight = square
    word_ngram_max: int = 2
    offset_grid: float = 0.3
    stretches: tuple = (1.0, 1.05, 1.1, 1.15, 1.2, 1.25, 1.3, 1.4, 1.5)  # factors tried (kokoro.cpu_scorer.stretch)
    limit: int = 0  # use only this many dialogues (smoke tests); 0 = all
    coherence: int = 1  # 0 = no coherence model (the scorer before issue 16)
    coherence_prefixes: int = 1  # 0 = the coherence model sees whole sessions only (not their first 4-20 client blocks)
    selection: str = "loo"  # loo: choices by leave-one-out on train + validation; validation: on validation
    gates: tuple = ((0.9, 0.99), (0.97, 0.999), (0.99, 0.9999))
    strengths: tuple = (0.5, 0.7, 1.0)
    min_val_auc: float = 0.95
    gate_slack: float = 0.001  # validation MAE given up for the more sensitive penalty setting
    bad_fraction: float = 0.05
    workers: int = 0  # processes for the analysis of sessions and blocks; 0 = every core
    settings_note: str = field(default="features never include rater ids")


DENSE_COLUMNS = 5000  # the most frequent n-grams, multiplied as dense arrays


def _kernels(blocks_a, blocks_b):
    return [_cross(a, b) for a, b in zip(blocks_a, blocks_b)]


def _cross(a, b):
    """``(a @ b.T).toarray()`` for sparse TF-IDF blocks, faster: the ``DENSE_COLUMNS`` columns
    most frequent in ``b`` (the characters and particles nearly every session holds) by dense
    BLAS, the long tail sparse. A sparse product of 5,930 sessions' whole client text takes 31 s
    on 2 cores, this 4 s (the same sums in another order: float32 rounding apart)."""
    import numpy as np

    if b.shape[1] <= DENSE_COLUMNS:
        return (a @ b.T).toarray()
    top = np.argsort(-np.bincount(b.indices, minlength=b.shape[1]), kind="stable")[:DENSE_COLUMNS]
    rest = np.setdiff1d(np.arange(b.shape[1]), top)
    da = a[:, top].toarray()
    db = da if a is b else b[:, top].toarray()
    return da @ db.T + (a[:, rest] @ b[:, rest].T).toarray()


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


HIGH_TOTAL = 90  # "the ends": the share of totals at or above this, predicted against rated


def _choose_stretch(raw, gold, rated, span: float, factors) -> dict:
    """The stretch about the mean (kokoro.cpu_scorer.stretch) and the rounding offsets for it, from
    items predicted unseen (``raw``) and their clients' ratings (``gold`` items, ``rated`` totals
    with the paper's flags). Rule: from 1.0 (no stretch) up through ``factors``, offsets tuned for
    each, go on while accuracy, soft accuracy and MAE are each no worse than at the factor before
    and the share of totals at or above ``HIGH_TOTAL`` stays within the rated share; the choice is the
    last before the first that fails. Returns the choice, its offsets, rounded items and their
    ``score_metrics``, and the table of every factor in ``factors``."""
    import numpy as np

    center = float(np.mean(raw))
    rated_share = 100.0 * float(np.mean(np.asarray(rated) >= HIGH_TOTAL))
    rows, prev, best, stopped = [], None, None, False
    for f in sorted(set(factors) | {1.0}):
        r = stretch(raw, f, center)
        offsets = _tune_offsets(r, gold, span)
        calib = _round(r + offsets)
        m = score_metrics(calib.tolist(), gold.astype(int).tolist())
        m["share_high"] = 100.0 * float((calib.sum(1) >= HIGH_TOTAL).mean())
        keys = ("acc", "acc_soft", "mae", "share_high")
        rows.append({"factor": f} | {k: round(m[k], 4 if k == "mae" else 2) for k in keys})
        stopped = stopped or (
            prev is not None
            and not (
                m["acc"] >= prev["acc"]
                and m["acc_soft"] >= prev["acc_soft"]
                and m["mae"] <= prev["mae"]
                and m["share_high"] <= rated_share
            )
        )
        if not stopped:  # every factor is still tried: the table shows what lies beyond the stop
            prev, best = m, (f, offsets, calib)
    f, offsets, calib = best
    metrics = {k: v for k, v in prev.items() if k != "share_high"}
    choice = {
        "factor": f,
        "center": round(center, 6),
        "rule": f"from 1.0 up while acc, acc_soft and mae are no worse than at the factor before and the share "
        f"of totals >= {HIGH_TOTAL} is within the rated share",
        "rated_share_high": round(rated_share, 2),
        "tried": rows,
    }
    return {"stretch": choice, "offsets": offsets, "calib": calib, "metrics": metrics}


def _loo_search(kernels, Y, alphas, F=None, weights=(0.0,)):
    """Leave-one-out predictions of the centred kernel ridge for every candidate, nearly free:
    with Kc = U diag(l) U', the fit is H y with H = 11'/n + Kc (Kc + aI)^-1, and the exact
    leave-one-out prediction of session i is y_i - (y_i - (Hy)_i) / (1 - H_ii) (the intercept is
    unpenalized). ``kernels``: (setting, kernel) pairs, one eigendecomposition each. ``F``: a
    low-rank block (the numeric features) added as w² F F' for every w in ``weights``, through
    Woodbury's identity on the same eigendecomposition (an eigendecomposition of 5,930 sessions
    takes 8 s on 2 cores; the rank-9 update for every alpha, about one). Returns (loo MAE, setting, w,
    alpha, loo raw); ties keep the first candidate in (setting, w, alpha) order."""
    import numpy as np
    from scipy.linalg import eigh

    n = len(Y)
    ymean = Y.mean(0)
    Fc = np.zeros((n, 0)) if F is None else F - F.mean(0)
    best = None
    for setting, K in kernels:
        Kc, _ = _center_train(K)
        evals, U = eigh(Kc, driver="evd", overwrite_a=True, check_finite=False)  # 8 s for 5,930; numpy's: 19
        evals, U = evals.astype(np.float64), U.astype(np.float64)  # one copy, not one per product
        UtY, U2, UtF = U.T @ (Y - ymean), U**2, U.T @ Fc
        D = 1.0 / (evals[:, None] + np.asarray(alphas, dtype=np.float64)[None, :])  # one column per alpha
        diag = U2 @ D
        for w in weights if F is not None else (0.0,):
            Z = w * UtF if w else UtF[:, :0]
            p, q = Z.shape[1], UtY.shape[1]
            # every alpha's A0^-1 Y and A0^-1 G in one product: (A0 + GG')^-1 = A0^-1 - A0^-1 G S^-1 G' A0^-1
            R = np.hstack([np.hstack([D[:, [k]] * UtY, D[:, [k]] * Z]) for k in range(len(alphas))])
            UR = U @ R
            for k, a in enumerate(alphas):
                dY, dZ = D[:, [k]] * UtY, D[:, [k]] * Z
                block = UR[:, k * (p + q) : (k + 1) * (p + q)]
                S = np.eye(p) + Z.T @ dZ
                P = block[:, q:]
                ainv_y = block[:, :q] - P @ np.linalg.solve(S, Z.T @ dY)
                ainv_diag = diag[:, k] - np.einsum("ij,ij->i", P @ np.linalg.inv(S), P)
                fit = Y - a * ainv_y
                h = 1.0 + 1.0 / n - a * ainv_diag
                loo = Y - (Y - fit) / (1.0 - h)[:, None]
                mae = float(np.abs(loo - Y).mean())
                if best is None or mae < best[0]:
                    best = (mae, setting, w, a, loo)
    return best


def _choose_coherence(cfg, sess, gold, raw_va, vectorizer, K_train, kernel_of, alpha, real=None, cache=None):
    """Fit the coherence model on train and choose its penalty on validation, against the
    train-only ridge with the chosen settings (``K_train``; ``kernel_of(sessions)`` is the kernel
    of new sessions against train; ``raw_va`` None: that ridge's own validation items; ``real``:
    the coherence rows of train then validation sessions, if already computed; ``cache``: the
    build's BlockCache of ``vectorizer``). Returns (gate setting, train-only model)."""
    import numpy as np

    Kc, row = _center_train(K_train)
    ymean = gold["train"].mean(0)
    c = np.linalg.solve(Kc + alpha * np.eye(len(Kc)), gold["train"] - ymean)

    def raw_of(sessions):
        Kv = kernel_of(sessions)
        return (Kv - Kv.mean(1, keepdims=True) - row[None, :] + row.mean()) @ c + ymean

    if raw_va is None:
        raw_va = raw_of(sess["validation"])
    n = len(sess["train"])
    model = coh.fit(
        sess["train"], vectorizer, cfg.seed, None if real is None else real[:n], cfg.coherence_prefixes, cache
    )
    bad = coh.bad_items(gold["train"], cfg.bad_fraction)
    choice = coh.choose_gate(
        model,
        vectorizer,
        sess["validation"],
        raw_va,
        gold["validation"],
        raw_of,
        bad,
        cfg.gates,
        cfg.strengths,
        cfg.min_val_auc,
        None if real is None else real[n:],
        cfg.gate_slack,
        cache,
    )
    return dict(choice["chosen"], bad=bad, choice=choice), model


def _kernel_to_train(transform, fitted, Xtr, Wtr, Ftr, w_word, w_num):
    """``kernel_of(sessions)``: the weighted kernel of new sessions against the train sessions'
    blocks (``Xtr``, ``Wtr``, ``Ftr``), the kernel the chosen ridge reads."""

    def kernel_of(sessions):
        X, W, F = transform(fitted, sessions)
        Kw = sum(_kernels(W, Wtr)) if W else 0.0
        return sum(_kernels(X, Xtr)) + (w_word**2) * Kw + (w_num**2) * F @ Ftr.T

    return kernel_of


def _select_validation(cfg, sess, gold, rated, fit_features, transform, step, cache):
    """The word-block weight, numeric weight and ridge alpha chosen on the validation split (train
    only fitted), the coherence gate there, stretch and offsets tuned there (``selection =
    "validation"``; ``rated``: the validation sessions' totals). Returns (train-fitted features,
    chosen settings, ``_choose_stretch``'s choice, validation metrics, gate)."""
    import numpy as np

    step(STAGES[1])
    fitted, (Xtr, Wtr, Ftr) = fit_features(sess["train"])
    Xva, Wva, Fva = transform(fitted, sess["validation"])
    Ktext, Kva_text = sum(_kernels(Xtr, Xtr)), sum(_kernels(Xva, Xtr))
    Kword = sum(_kernels(Wtr, Wtr)) if Wtr else 0.0
    Kva_word = sum(_kernels(Wva, Wtr)) if Wtr else 0.0
    ymean = gold["train"].mean(0)
    Yc = gold["train"] - ymean
    best = None
    step(STAGES[2])
    for ww in cfg.word_weights:
        for w in cfg.numeric_weights:
            K = Ktext + (ww**2) * Kword + (w**2) * Ftr @ Ftr.T
            Kv = Kva_text + (ww**2) * Kva_word + (w**2) * Fva @ Ftr.T
            Kc, row = _center_train(K)
            Kvc = Kv - Kv.mean(1, keepdims=True) - row[None, :] + row.mean()
            evals, U = np.linalg.eigh(Kc)
            UtY = U.T @ Yc
            for a in cfg.alphas:
                c = U @ (UtY / (evals + a)[:, None])
                raw = Kvc @ c + ymean
                mae = np.abs(raw - gold["validation"]).mean()
                if best is None or mae < best[0]:
                    best = (mae, ww, w, a, raw)
    _, w_word, w_num, alpha, raw_va = best
    gate = None
    step(STAGES[3])
    if cfg.coherence:
        kernel_of = _kernel_to_train(transform, fitted, Xtr, Wtr, Ftr, w_word, w_num)
        K_train = Ktext + (w_word**2) * Kword + (w_num**2) * Ftr @ Ftr.T
        vec = fitted[0][1]
        gate, model = _choose_coherence(cfg, sess, gold, raw_va, vec, K_train, kernel_of, alpha, None, cache(fitted))
        q_va = model.predict_proba(coherence_matrix(sess["validation"], vec, cache=cache(fitted)))[:, 1]
        raw_va = coh.apply_penalty(raw_va, q_va, gate)
    chosen = _choose_stretch(raw_va, gold["validation"], rated, cfg.offset_grid, cfg.stretches)
    return fitted, (w_word, w_num, alpha), chosen, chosen["metrics"], gate


def _select_loo(cfg, sess, gold, fit_sessions, Y, rated, fit_features, transform, step, cache):
    """``selection = "loo"``: features fitted once on train + validation; the word-block weight,
    numeric weight and alpha chosen by the exact leave-one-out MAE over all 5,930 sessions, and
    the stretch and rounding offsets tuned on those leave-one-out items — each session predicted
    by a ridge that never saw it — (nine times the sessions one validation split gives, so fewer
    choices fitted to its noise). The coherence gate is still chosen on validation against a
    train-only ridge; its penalty is applied to the leave-one-out items before the stretch is
    chosen (``rated``: their totals). Returns (features, (X, W, F, K), chosen settings,
    ``_choose_stretch``'s choice, leave-one-out metrics, gate — holding the train-only coherence
    model)."""
    step(STAGES[1])
    fitted, (X, W, F) = fit_features(fit_sessions)
    Ktext = sum(_kernels(X, X))
    Kword = sum(_kernels(W, W)) if W else 0.0
    step(STAGES[2])
    kernels = ((ww, Ktext + (ww**2) * Kword) for ww in cfg.word_weights)
    _, w_word, w_num, alpha, raw = _loo_search(kernels, Y, cfg.alphas, F, cfg.numeric_weights)
    K = Ktext + (w_word**2) * Kword + (w_num**2) * F @ F.T
    gate = None
    step(STAGES[3])
    if cfg.coherence:
        n = len(sess["train"])
        kernel_of = _kernel_to_train(transform, fitted, [x[:n] for x in X], [x[:n] for x in W], F[:n], w_word, w_num)
        Q = coherence_matrix(fit_sessions, fitted[0][1], cache=cache(fitted))  # computed once, read twice
        gate, model = _choose_coherence(
            cfg, sess, gold, None, fitted[0][1], K[:n, :n], kernel_of, alpha, Q, cache(fitted)
        )
        raw = coh.apply_penalty(raw, model.predict_proba(Q)[:, 1], gate)
        gate["model"] = model  # the features are the final ones here: ship the model the gate was chosen for
    chosen = _choose_stretch(raw, Y, rated, cfg.offset_grid, cfg.stretches)
    step(STAGES[4])
    return fitted, (X, W, F, K), (w_word, w_num, alpha), chosen, chosen["metrics"], gate


def _fit_block(k: int):
    """Fit the k-th (vectorizer, texts) of a fork_map's state; returns (vectorizer, matrix)."""
    from kokoro.blocks import state

    v, texts = state()[k]
    m = v.fit_transform(texts)
    v.stop_words_ = None  # every pruned n-gram: not needed to transform, slow to send back
    return v, m


STAGES = (
    "reading KokoroChat",
    "text features",
    "ridge settings",
    "coherence model",
    "refit on train + validation",
    "scoring the test split",
)


def train_cpu_scorer(cfg: CpuScorerConfig, progress=None) -> dict:
    """``progress(stage)``: called as each of ``STAGES`` begins (a progress bar's hook)."""
    import numpy as np
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import TfidfVectorizer

    stage_seconds: dict[str, float] = {}
    began: list = []

    def step(stage: str | None) -> None:
        """Time each of STAGES (in the card and the printed metrics), then tell ``progress``."""
        now = time.time()
        if began:
            stage_seconds[began[-1][0]] = round(now - began[-1][1], 1)
        if stage is not None:
            began.append((stage, now))
            if progress:
                progress(stage)

    t0 = time.time()
    step(STAGES[0])
    dialogues = load(cfg.data)
    split = scorer_split(dialogues, cfg.seed)
    by = {d.id: d for d in dialogues}
    ids = {k: list(getattr(split, k)) for k in ("train", "validation", "test")}
    if cfg.limit:
        ids = {k: v[: max(5, cfg.limit * len(v) // len(dialogues))] for k, v in ids.items()}
    sess = {k: [by[i].turns for i in v] for k, v in ids.items()}
    gold = {k: np.array([by[i].items for i in v], dtype=float) for k, v in ids.items()}
    rated = {k: [by[i].score for i in v] for k, v in ids.items()}  # the paper's totals, flags applied

    def tfidf(analyzer: str, ngrams: tuple[int, int]):
        return TfidfVectorizer(
            analyzer=analyzer,
            **({"token_pattern": r"\S+"} if analyzer == "word" else {}),
            ngram_range=ngrams,
            min_df=cfg.min_df,
            max_features=cfg.max_features,
            sublinear_tf=True,
            dtype=np.float32,
        )

    words_of: dict[int, tuple] = {}  # each session's MeCab pass, once per build

    def words(t):
        return words_of[id(t)]

    def analyse_words(sessions) -> None:
        """MeCab over the sessions not analysed yet, on every core."""
        new = list({id(t): t for t in sessions if id(t) not in words_of}.values())
        words_of.update(zip(map(id, new), fork_map(word_blocks, new, workers(cfg.workers))))

    def fit_features(train_sessions):
        """Features fitted on ``train_sessions``; returns (fitted, their own (X, W, F))."""
        vecs = [tfidf("char", (1, cfg.ngram_max)) for _ in range(4)]
        wvecs = [tfidf("word", (1, cfg.word_ngram_max)) for _ in range(2)] if any(cfg.word_weights) else []
        analyse_words(train_sessions if wvecs else [])
        jobs = list(zip(vecs, zip(*[text_blocks(t) for t in train_sessions])))
        jobs += list(zip(wvecs, zip(*[words(t) for t in train_sessions]))) if wvecs else []
        done = fork_map(_fit_block, list(range(len(jobs))), workers(cfg.workers), jobs, min_items=2)
        vecs, X = [v for v, _ in done[:4]], [m for _, m in done[:4]]
        wvecs, W = [v for v, _ in done[4:]], [m for _, m in done[4:]]
        num = np.array([numeric_features(t) for t in train_sessions])
        mean, scale = num.mean(0), num.std(0) + 1e-6
        return (vecs, wvecs, mean, scale), (X, W, (num - mean) / scale)

    def transform(fitted, sessions):
        vecs, wvecs, mean, scale = fitted
        X = [v.transform(b) for v, b in zip(vecs, zip(*[text_blocks(t) for t in sessions]))]
        analyse_words(sessions if wvecs else [])
        W = [v.transform(b) for v, b in zip(wvecs, zip(*[words(t) for t in sessions]))] if wvecs else []
        F = (np.array([numeric_features(t) for t in sessions]) - mean) / scale
        return X, W, F

    caches: dict[int, BlockCache] = {}

    def cache(fitted) -> BlockCache:
        """The build's BlockCache for the counselor vectorizer of ``fitted``."""
        v = fitted[0][1]
        return caches.setdefault(id(v), BlockCache(v, cfg.workers))

    if cfg.selection not in ("loo", "validation"):
        raise ValueError(f"selection must be 'loo' or 'validation', got {cfg.selection!r}")
    fit_sessions = sess["train"] + sess["validation"]
    Y = np.vstack([gold["train"], gold["validation"]])
    calib_on = rated["train"] + rated["validation"] if cfg.selection == "loo" else rated["validation"]
    unseen = "leave-one-out over train + validation" if cfg.selection == "loo" else "validation split"
    if cfg.selection == "loo":
        fitted, (X, W, F, K), (w_word, w_num, alpha), chosen, val_metrics, gate = _select_loo(
            cfg, sess, gold, fit_sessions, Y, calib_on, fit_features, transform, step, cache
        )
    else:
        fitted, (w_word, w_num, alpha), chosen, val_metrics, gate = _select_validation(
            cfg, sess, gold, calib_on, fit_features, transform, step, cache
        )
        # refit on train + validation with the chosen settings
        step(STAGES[4])
        fitted, (X, W, F) = fit_features(fit_sessions)
        K = None
    # primal weights for fast scoring
    vecs, wvecs, mean, scale = fitted
    W = W if w_word else []  # a zero weight drops the word blocks (the scorer then has none)
    Xall = sp.hstack(X + [x * w_word for x in W] + [sp.csr_matrix(F * w_num)]).tocsr()
    K = (Xall @ Xall.T).toarray() if K is None else K
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
        "settings": asdict(cfg) | {"chosen_alpha": alpha, "chosen_numeric_weight": w_num, "chosen_word_weight": w_word},
        "stretch": chosen["stretch"],
        "offsets": [round(float(x), 3) for x in chosen["offsets"]],
        "split": {
            "name": split.name,
            "hash": split.as_dict()["hash"],
            "fit_on": "train+validation",
            "sizes": {k: len(v) for k, v in ids.items()},
        },
        "versions": library_versions(),
    }
    identity["interval"] = interval.calibrate(chosen["calib"].sum(1).tolist(), calib_on, unseen)
    coherence = None
    if gate:
        coherence = {
            "model": gate.get("model")
            or coh.fit(fit_sessions, vecs[1], cfg.seed, None, cfg.coherence_prefixes, cache(fitted)),
            "bad": coh.bad_items(Y, cfg.bad_fraction).tolist(),
        } | {k: gate[k] for k in ("lo", "hi", "strength")}
        identity["coherence"] = {
            "features": list(COHERENCE),
            "lo": gate["lo"],
            "hi": gate["hi"],
            "strength": gate["strength"],
            "bad_total": round(sum(coherence["bad"]), 1),
            "choice": gate["choice"],
            "trained_on": "train" if "model" in gate else "train+validation",
            "prefixes": bool(cfg.coherence_prefixes),
        }
    # the numeric block was fitted as F * w_num == (num - mean) / (scale / w_num)
    scorer = CpuScorer(
        [(v, 1.0) for v in vecs],
        mean,
        scale / w_num if w_num else scale,
        coef,
        intercept,
        chosen["offsets"],
        identity,
        coherence,
        [(v, w_word) for v in wvecs] if w_word else [],
    )
    step(STAGES[5])
    raw_te = scorer.predict_raw(sess["test"], cache(fitted))
    rounded_te = scorer.rounded(raw_te)
    test_metrics = score_metrics(rounded_te, gold["test"].astype(int).tolist())
    test_metrics["mae_raw"] = float(np.abs(raw_te - gold["test"]).mean())
    test_metrics["interval"] = interval.coverage(identity["interval"], [sum(x) for x in rounded_te], rated["test"])
    identity["validation"] = {k: val_metrics[k] for k in ("acc", "acc_soft", "mae")} | {"on": unseen}
    identity["test"] = {k: test_metrics[k] for k in ("acc", "acc_soft", "mae", "mae_raw", "interval")}
    identity["seconds"] = round(time.time() - t0, 1)
    step(None)
    identity["stage_seconds"] = stage_seconds
    out = Path(cfg.out)
    scorer.save(out)
    write_json(out / "metrics.json", {"test": test_metrics, "validation": val_metrics})
    return {
        "acc": round(test_metrics["acc"], 2),
        "acc_soft": round(test_metrics["acc_soft"], 2),
        "mae": round(test_metrics["mae"], 4),
        "mae_raw": round(test_metrics["mae_raw"], 4),
        "interval": {lv: c["covered"] for lv, c in test_metrics["interval"].items()},
        "n_test": test_metrics["n"],
        "split": split.name,
        "seconds": identity["seconds"],
        "stage_seconds": stage_seconds,
        "workers": workers(cfg.workers),
        "out": str(out),
    }
