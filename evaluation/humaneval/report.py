"""`humaneval report`: the paper's majority rule per item, Win / Lose / Tie per pair (Figure 5),
and what the paper does not give: Fleiss' κ (agreement among raters) and a two-sided sign test
per pair (wins against losses of the upper source, ties left out)."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

from .answers import Folder


def majority(votes: list[str], a: str, b: str) -> str:
    """The paper's rule: a side is adopted if over half of the raters chose it; otherwise, or if
    ties exceed half, the item is a tie."""
    c, half = Counter(votes), len(votes) / 2
    return a if c[a] > half else b if c[b] > half else "tie"


def fleiss_kappa(table: list[list[int]]) -> float | None:
    """Fleiss' κ of an items × categories table of counts, the same number of raters per item
    (≥ 2). None where it is undefined (every rating in one category)."""
    if not table:
        return None
    n = sum(table[0])
    if n < 2 or any(sum(row) != n for row in table):
        raise ValueError("Fleiss' kappa needs the same number (>= 2) of ratings for every item")
    N = len(table)
    p = [sum(row[j] for row in table) / (N * n) for j in range(len(table[0]))]
    P = sum((sum(x * x for x in row) - n) / (n * (n - 1)) for row in table) / N
    Pe = sum(x * x for x in p)
    return None if Pe == 1 else (P - Pe) / (1 - Pe)


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test (binomial, p = 1/2) of wins against losses."""
    n, k = wins + losses, min(wins, losses)
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n)


def summarize(folder: Folder) -> dict:
    votes = folder.votes()
    pairs = []
    for a, b in folder.comparison["settings"]["pairs"]:
        items = [x for x in folder.comparison["items"] if x["pair"] == [a, b]]
        rated = [votes[x["id"]] for x in items if x["id"] in votes]
        outcome = Counter(majority(list(v.values()), a, b) for v in rated)
        counts = Counter(len(v) for v in rated)
        m = max(counts, default=0)  # items rated by every rater of the pair count for kappa
        table = [[list(v.values()).count(c) for c in (a, b, "tie")] for v in rated if len(v) == m]
        pairs.append(
            {
                "upper": a,
                "lower": b,
                "items": len(items),
                "rated": len(rated),
                "raters_per_item": m,
                "win": outcome[a],
                "lose": outcome[b],
                "tie": outcome["tie"],
                "fleiss_kappa": fleiss_kappa(table) if m >= 2 else None,
                "kappa_items": len(table) if m >= 2 else 0,
                "sign_test_p": sign_test(outcome[a], outcome[b]),
                "votes": dict(Counter(w for v in rated for w in v.values())),
            }
        )
    every = [list(v.values()) for v in votes.values()]
    m = max((len(v) for v in every), default=0)
    overall = []
    for x in folder.comparison["items"]:  # categories as shown to raters are source-blind: upper / lower / tie
        v = votes.get(x["id"], {})
        if len(v) == m and m >= 2:
            a, b = x["pair"]
            overall.append([list(v.values()).count(c) for c in (a, b, "tie")])
    return {
        "signature": folder.comparison["signature"],
        "versions": folder.comparison.get("versions", {}),
        "settings": folder.comparison["settings"],
        "raters": {r: len(folder.answered(r)) for r in folder.raters},
        "pairs": pairs,
        "fleiss_kappa_all": fleiss_kappa(overall) if overall else None,
        "kappa_items_all": len(overall),
    }


def chart(r: dict, path: Path) -> None:
    """Horizontal Win / Tie / Lose bars per pair, the upper source's wins in orange (Figure 5), the
    winner named under a pair whose sign test is below 0.05."""
    from evaluation.report import _plt

    plt = _plt()
    pairs = r["pairs"]
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(pairs) + 1.2), dpi=100)
    for k, p in enumerate(pairs):
        total = max(p["win"] + p["tie"] + p["lose"], 1)
        left = 0.0
        for key, color in (("win", "#e8833a"), ("tie", "#bdbdbd"), ("lose", "#5b8fc9")):
            w = 100 * p[key] / total
            ax.barh(k, w, left=left, color=color, label=key.capitalize() if k == 0 else None)
            if w >= 6:
                ax.text(left + w / 2, k, str(p[key]), ha="center", va="center", fontsize=8)
            left += w

    def label(p):  # the winner named where the sign test says so (the paper sets it in bold)
        won = p["upper"] if p["win"] > p["lose"] else p["lower"]
        sig = p["sign_test_p"] < 0.05 and p["win"] != p["lose"]
        return f"{p['upper']} vs {p['lower']}" + (f"\n{won} wins (p = {p['sign_test_p']:.2g})" if sig else "")

    ax.set_yticks(range(len(pairs)), [label(p) for p in pairs])
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of items (majority of raters)")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def fmt_k(k) -> str:
    return "–" if k is None else f"{k:.3f}"


def markdown(r: dict) -> str:
    lines = [
        "# Human pairwise evaluation (paper §5.1.3, Figure 5)",
        "",
        f"Signature: `{r['signature']}`; versions at prepare: `{json.dumps(r['versions'])}`",
        "",
        "Sources: "
        + "; ".join(f"**{k}** `{json.dumps(v, ensure_ascii=False)}`" for k, v in r["settings"]["sources"].items())
        + ".",
        "",
        "Majority rule as in the paper: a side is adopted if over half of the raters chose it; otherwise, or "
        "if ties exceed half, the item is a tie. Fleiss' κ over the items every rater answered; the sign test "
        "is two-sided over wins against losses of the upper source.",
        "",
        "| upper vs lower | win | tie | lose | items rated | raters per item | Fleiss' κ | sign test p |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in r["pairs"]:
        lines.append(
            f"| {p['upper']} vs {p['lower']} | {p['win']} | {p['tie']} | {p['lose']} | {p['rated']} / {p['items']} | "
            f"{p['raters_per_item']} | {fmt_k(p['fleiss_kappa'])} | {p['sign_test_p']:.3g} |"
        )
    lines += [
        "",
        f"Fleiss' κ over all pairs: {fmt_k(r['fleiss_kappa_all'])} ({r['kappa_items_all']} items).",
        "",
        "Answers per rater: " + ", ".join(f"{k} {v}" for k, v in r["raters"].items()) + ".",
        "",
        "The paper gives Figure 5 as a chart only (no counts in its text), so its rows are not beside ours; "
        "its text names the comparisons Kokoro-Low with Llama-3.1, Kokoro-High with Kokoro-Low and with "
        "Kokoro-Full, Kokoro-High with GPT-4o and GPT-4o with Human: 100 items each, five professional counselors.",
        "",
        "![Win / Tie / Lose](figure5.png)",
    ]
    return "\n".join(lines) + "\n"


def report(folder: str | Path, out: Path | None = None) -> dict:
    f = Folder(folder)
    r = summarize(f)
    out = Path(out) if out else f.path
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(r, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    (out / "report.md").write_text(markdown(r), encoding="utf-8")
    chart(r, out / "figure5.png")
    return r
