"""`python -m evaluation scores --perturb`: does a scorer notice a bad counselor?

A sensitivity test, not agreement with raters. On the fixed test split, every dialogue is scored
as it is and as perturbed copies (kokoro.perturb.PERTURBATIONS); per perturbation the report
gives the mean predicted total before and after, the change, the AUC of "the original scores
higher than the perturbed copy" (Mann–Whitney over all original/perturbed pairs, ties half) and
the paired share (per dialogue, original above its own copy). Totals are what a client would see:
the sum of the integer items the scorer outputs (kokoro.flags.flagged_total, whose zero rule is
off); beside them, the share of originals and copies whose counselor words raise a screening flag.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from kokoro.dataset import load
from kokoro.flags import flagged_total, remark_flags
from kokoro.perturb import PERTURBATIONS, auc, held_out_remarks, suite
from kokoro.splits import scorer_split
from kokoro.versions import library_versions

from .scores import load_scorer


def totals(scorer, kind: str, sessions, flags: list[dict], progress: bool, desc: str) -> tuple[list[int], list[bool]]:
    """Each session's total as a client would be given it (kokoro.flags.flagged_total) and whether
    the counselor's words raised a screening flag in it (``flags``: kokoro.flags.remark_flags of each
    session, computed once for every scorer)."""
    if kind in ("cpu", "endpoint"):
        items = scorer.predict_many(sessions)
    else:
        from tqdm import tqdm

        items = [scorer.predict(t) for t in tqdm(sessions, desc=desc, disable=not progress)]
    return [flagged_total(p, f) for p, f in zip(items, flags)], [bool(f) for f in flags]


def figures(orig: tuple[list[int], list[bool]], pert: tuple[list[int], list[bool]]) -> dict:
    (o, of), (p, pf) = orig, pert
    paired = [1.0 if a > b else 0.5 if a == b else 0.0 for a, b in zip(o, p)]
    return {
        "mean_original": round(statistics.fmean(o), 2),
        "mean_perturbed": round(statistics.fmean(p), 2),
        "mean_change": round(statistics.fmean(p) - statistics.fmean(o), 2),
        "auc": round(auc(o, p), 4),
        "paired": round(statistics.fmean(paired), 4),
        # the screening flags (kokoro/flags.py): share of copies whose counselor words raise one
        "flagged_original": round(statistics.fmean(of), 4),
        "flagged_perturbed": round(statistics.fmean(pf), 4),
    }


def evaluate(
    scorers, data=None, limit: int = 0, out: Path | None = None, n_ctx: int = 8192, progress=True, n_gpu_layers=0
) -> dict:
    t0 = time.time()
    dialogues = load(data)
    by = {d.id: d for d in dialogues}
    test = [by[i] for i in scorer_split(dialogues, 1).test][: limit or None]
    sessions = [list(d.turns) for d in test]
    remarks = held_out_remarks()  # never trained or tuned on: the flag rules must not have seen them
    copies = {name: suite(sessions, name, remarks) for name in PERTURBATIONS}
    flags = [remark_flags(s) for s in sessions]  # the turns' flags: the same for every scorer
    copy_flags = {name: [remark_flags(s) for s in c] for name, c in copies.items()}
    runs = []
    for kind, path in scorers:
        sc = load_scorer(kind, path, n_ctx=n_ctx, n_gpu_layers=n_gpu_layers)
        orig = totals(sc, kind, sessions, flags, progress, "original")
        per = {name: figures(orig, totals(sc, kind, c, copy_flags[name], progress, name)) for name, c in copies.items()}
        runs.append({"scorer": sc.identity, "path": str(sc.identity.get("model", path)), "perturbations": per})
    result = {
        "perturbations": runs[0]["perturbations"],
        "runs": runs,
        "described": PERTURBATIONS,
        "n_test": len(test),
        "split": {"name": "scorer fixed test (8:1:1)", "ids": [d.id for d in test]},
        "settings": {
            "scorers": [(k, p if k != "endpoint" else p.identity) for k, p in scorers],
            "limit": limit,
            "seed": 0,
            "n_gpu_layers": n_gpu_layers,
        },
        "note": "sensitivity to a bad counselor, not agreement with raters",
        "versions": library_versions(),
        "seconds": round(time.time() - t0, 1),
    }
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "perturb.json").write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        (out / "perturb.md").write_text(markdown(result), encoding="utf-8")
        plot(result, out / "perturb.png")
    return result


def summary(r: dict) -> dict:
    """What --json prints: per perturbation the first scorer's figures, and every scorer's."""
    runs = [{"path": x["path"], "perturbations": x["perturbations"]} for x in r["runs"]]
    return {k: r[k] for k in ("perturbations", "n_test", "note")} | {"runs": runs}


def markdown(r: dict) -> str:
    lines = [
        f"# Perturbation suite on the fixed test split ({r['n_test']} dialogues)",
        "",
        "A sensitivity test: how the predicted total moves when the counselor is made worse.",
        "It says nothing about agreement with raters (see the scores report for that).",
        "",
        "| scorer | perturbation | mean total before → after | change | AUC | paired | flagged before → after |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in r["runs"]:
        for name, f in run["perturbations"].items():
            lines.append(
                f"| {Path(run['path']).name} | {name} | {f['mean_original']:.1f} → {f['mean_perturbed']:.1f} | "
                f"{f['mean_change']:+.1f} | {f['auc']:.3f} | {f['paired']:.3f} | "
                f"{f['flagged_original']:.1%} → {f['flagged_perturbed']:.1%} |"
            )
    lines += ["", "Perturbations:", ""] + [f"- `{k}`: {v}" for k, v in r["described"].items()]
    return "\n".join(lines) + "\n"


def plot(r: dict, path: Path) -> None:
    from .report import _plt

    plt = _plt()
    names = list(r["described"])
    fig, ax = plt.subplots(figsize=(8, 3.5), dpi=100)
    width = 0.8 / len(r["runs"])
    for k, run in enumerate(r["runs"]):
        xs = [i + k * width for i in range(len(names))]
        ax.bar(xs, [run["perturbations"][n]["auc"] for n in names], width, label=Path(run["path"]).name)
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.axhline(0.9, color="C3", lw=0.8, ls="--")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(names))], names, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("AUC original > perturbed")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
