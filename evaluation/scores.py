"""`python -m evaluation scores`: ACC / ACC_soft / MAE per item (Table 8) and averaged (Table 5),
mean ± std over scorers (seeds), Spearman of totals — always beside the baselines and the paper."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from kokoro.dataset import load
from kokoro.flags import FLAG_OF, ZERO_RULE, flagged_total, remark_flags
from kokoro.interval import coverage
from kokoro.items import ITEMS
from kokoro.scoring import score_metrics
from kokoro.splits import scorer_split
from kokoro.versions import library_versions

from .baselines import constant_mode, length_regression
from .report import per_item_plot, reliability_plot, totals_plot

PAPER = {  # Table 5
    "Llama-3.1 (paper)": {"acc": 28.70, "acc_soft": 72.53, "mae": 1.0540},
    "GPT-4o (paper)": {"acc": 30.92, "acc_soft": 75.27, "mae": 1.0151},
    "Fine-tuned 8B (paper)": {"acc": 35.35, "acc_soft": 83.64, "mae": 0.8283},
}


def spearman_totals(pred, gold) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr([sum(p) for p in pred], [sum(g) for g in gold]).statistic)


def flag_figures(predicted: list[dict], test) -> dict:
    """How often the counselor's words raise a screening flag in a test session (kokoro/flags.py),
    against the sessions whose clients set a zeroing flag."""
    real = [any(d.flags.get(k) for k in FLAG_OF.values()) for d in test]
    hit = [bool(f) for f in predicted]
    return {
        "sessions_flagged": sum(hit),
        "flagged_share": round(100 * sum(hit) / max(len(test), 1), 2),
        "by_flag": {k: sum(k in f for f in predicted) for k in FLAG_OF.values()},
        "client_flagged": sum(real),
        "client_flagged_caught": sum(h and r for h, r in zip(hit, real)),
        "zero_rule": ZERO_RULE,
    }


def flag_lines(f: dict) -> list[str]:
    rule = "zeroes the total" if f["zero_rule"] else "is reported, the total is not zeroed (kokoro.flags.ZERO_RULE)"
    return [
        f"Screening flags predicted from the counselor's words (kokoro/flags.py): {f['sessions_flagged']} test "
        f"sessions ({f['flagged_share']} %); clients flagged {f['client_flagged']}, of which "
        f"{f['client_flagged_caught']} are among them. A flag {rule}.",
        "",
    ]


def extremes(pred_totals, gold_totals) -> dict:
    """Calibration at the ends of the scale: how often the predicted total reaches 90 (against
    the gold), and the total's mean absolute error on sessions rated ≥ 90 and ≤ 40."""
    hi = [(p, g) for p, g in zip(pred_totals, gold_totals) if g >= 90]
    lo = [(p, g) for p, g in zip(pred_totals, gold_totals) if g <= 40]
    n = max(len(gold_totals), 1)
    mae = lambda xs: statistics.fmean(abs(p - g) for p, g in xs) if xs else float("nan")
    return {
        "predicted_ge_90": round(100 * sum(p >= 90 for p in pred_totals) / n, 2),
        "gold_ge_90": round(100 * sum(g >= 90 for g in gold_totals) / n, 2),
        "total_mae_gold_ge_90": round(mae(hi), 2),
        "total_mae_gold_le_40": round(mae(lo), 2),
        "n_ge_90": len(hi),
        "n_le_40": len(lo),
    }


def load_scorer(kind: str, path: str, **kw):
    """A CPU scorer folder, or a scorer GGUF (``kw``: n_ctx, n_gpu_layers, … for GgufScorer)."""
    if kind == "cpu":
        from kokoro.cpu_scorer import CpuScorer

        return CpuScorer.load(path)
    if kind == "endpoint":  # path is an evaluation.endpoint.EndpointScorer already
        return path
    from kokoro.gguf_scorer import GgufScorer

    return GgufScorer(path, **kw)


def evaluate(
    scorers: list[tuple[str, str]],
    data=None,
    limit: int = 0,
    out: Path | None = None,
    n_ctx: int = 8192,
    progress=True,
    n_gpu_layers: int = 0,
) -> dict:
    from tqdm import tqdm

    t0 = time.time()
    dialogues = load(data)
    split = scorer_split(dialogues, 1)  # the test part is the same for every seed
    by = {d.id: d for d in dialogues}
    test = [by[i] for i in split.test][: limit or None]
    train = [by[i] for i in split.train]
    gold = [list(d.items) for d in test]
    flags = [remark_flags(d.turns) for d in test]  # the counselor's words: the same for every scorer
    runs = []
    for kind, path in scorers:
        sc = load_scorer(kind, path, n_ctx=n_ctx, n_gpu_layers=n_gpu_layers)
        t = time.time()
        if kind in ("cpu", "endpoint"):  # batched (an endpoint runs its requests concurrently)
            pred = [list(p) for p in sc.predict_many([d.turns for d in test])]
        else:
            pred = [
                list(sc.predict(d.turns)) for d in tqdm(test, desc=f"scoring {Path(path).name}", disable=not progress)
            ]
        m = score_metrics(pred, gold)
        # totals as a client is given them (kokoro.flags: the zero rule only where ZERO_RULE)
        pred_totals = [flagged_total(p, f) for p, f in zip(pred, flags)]
        m["flags"] = flag_figures(flags, test)
        m.update(
            spearman_totals=spearman_totals(pred, gold),
            extremes=extremes(pred_totals, [sum(g) for g in gold]),
            scorer=sc.identity,
            path=str(path) if kind != "endpoint" else sc.identity["model"],
            seconds_per_dialogue=(time.time() - t) / max(len(test), 1),
        )
        if sc.identity.get("interval"):  # issue 33: does the stated interval hold on the test split?
            m["interval"] = coverage(sc.identity["interval"], pred_totals, [d.score for d in test])
        runs.append((m, pred))
    agg = {k: statistics.fmean(m[k] for m, _ in runs) for k in ("acc", "acc_soft", "mae", "spearman_totals")}
    agg.update({f"{k}_std_seeds": statistics.pstdev([m[k] for m, _ in runs]) for k in ("acc", "acc_soft", "mae")})
    base = {}
    for name, pred in (
        ("constant mode", constant_mode(train, len(test))),
        ("length regression", length_regression(train, test)),
    ):
        base[name] = score_metrics(pred, gold)
        # a constant prediction has no rank order: its Spearman is undefined, reported as 0
        base[name]["spearman_totals"] = spearman_totals(pred, gold) if name != "constant mode" else 0.0
    result = {
        "acc": agg["acc"],
        "acc_soft": agg["acc_soft"],
        "mae": agg["mae"],
        "aggregate": agg,
        "runs": [m for m, _ in runs],
        "baselines": base,
        "paper": PAPER,
        "n_test": len(test),
        "split": {
            "name": "scorer fixed test (8:1:1)",
            "hash": split.as_dict()["hash"]["test"],
            "ids": list(split.test)[: len(test)],
        },
        "settings": {
            "scorers": [(k, p if k != "endpoint" else p.identity) for k, p in scorers],
            "limit": limit,
            "n_ctx": n_ctx,
            "n_gpu_layers": n_gpu_layers,
        },
        "versions": library_versions(),
        "seconds": round(time.time() - t0, 1),
    }
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        (out / "report.md").write_text(markdown(result), encoding="utf-8")
        per_item_plot(runs[0][0], out / "per_item.png")
        totals_plot([sum(p) for p in runs[0][1]], [sum(g) for g in gold], out / "totals.png")
        reliability_plot([sum(p) for p in runs[0][1]], [sum(g) for g in gold], out / "reliability.png")
    return result


def summary(r: dict) -> dict:
    """What --json prints: the averaged metrics, Spearman of totals and the baselines."""
    return {k: r[k] for k in ("acc", "acc_soft", "mae", "n_test")} | {
        "spearman_totals": r["aggregate"]["spearman_totals"],
        "baselines": {k: {m: v[m] for m in ("acc", "acc_soft", "mae")} for k, v in r["baselines"].items()},
    }


def interval_lines(cov: dict | None) -> list[str]:
    """How often the scorer's stated interval held on the test split (none: the scorer has none)."""
    if not cov:
        return [
            "The first scorer states no interval for its totals (a scorer GGUF, an endpoint, an older CPU scorer).",
            "",
        ]
    parts = [
        f"{c['nominal']:.0f} % interval held {c['covered']} % of the time (mean width {c['mean_width']})"
        for c in cov.values()
    ]
    return ["Stated intervals of the total on the test split (first scorer): " + "; ".join(parts) + ".", ""]


def markdown(r: dict) -> str:
    a = r["aggregate"]
    many = len(r["runs"]) > 1
    pm = lambda k, f: f"{a[k]:{f}}" + (f" ± {a[k + '_std_seeds']:{f}}" if many else "")
    rows = [
        (
            "This scorer" + (f" (mean ± std over {len(r['runs'])})" if many else ""),
            pm("acc", ".2f"),
            pm("acc_soft", ".2f"),
            pm("mae", ".4f"),
            f"{a['spearman_totals']:.3f}",
        )
    ]
    for name, m in r["baselines"].items():
        rows.append(
            (
                f"Baseline: {name}",
                f"{m['acc']:.2f}",
                f"{m['acc_soft']:.2f}",
                f"{m['mae']:.4f}",
                f"{m['spearman_totals']:.3f}",
            )
        )
    for name, m in r["paper"].items():
        rows.append((name, f"{m['acc']:.2f}", f"{m['acc_soft']:.2f}", f"{m['mae']:.4f}", "–"))
    lines = [
        f"# Score prediction on the fixed test split ({r['n_test']} dialogues)",
        "",
        "Table 5 layout (paper numbers are on the paper's own split).",
        "",
        "| model | ACC | ACC_soft | MAE | Spearman (totals) |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += ["| " + " | ".join(x) + " |" for x in rows]
    e = r["runs"][0]["extremes"]
    lines += [
        "",
        f"Calibration at the ends (first scorer): predicted totals ≥ 90 in {e['predicted_ge_90']} % of sessions "
        f"(gold: {e['gold_ge_90']} %); total off by {e['total_mae_gold_ge_90']} points on sessions rated ≥ 90 "
        f"(n = {e['n_ge_90']}) and {e['total_mae_gold_le_40']} on those ≤ 40 (n = {e['n_le_40']}); "
        "reliability.png plots the mean rated total per band of predicted total.",
        "",
        *flag_lines(r["runs"][0]["flags"]),
        *interval_lines(r["runs"][0].get("interval")),
        "Table 8 layout (first scorer):",
        "",
        "| Dim. | item | ACC | ACC_soft | MAE |",
        "| --- | --- | --- | --- | --- |",
    ]
    for it, m in zip(ITEMS, r["runs"][0]["per_item"]):
        lines.append(f"| {it.dim} | {it.label_ja} | {m['acc']:.2f} | {m['acc_soft']:.2f} | {m['mae']:.4f} |")
    return "\n".join(lines) + "\n"
