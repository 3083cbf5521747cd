"""Report plots."""

from __future__ import annotations

from pathlib import Path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def per_item_plot(m: dict, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 3.5), dpi=100)
    dims = [x["dim"] for x in m["per_item"]]
    ax.bar(dims, [x["acc"] for x in m["per_item"]], label="ACC")
    ax.plot(dims, [x["acc_soft"] for x in m["per_item"]], "o-", color="C1", label="ACC_soft")
    ax.set_ylim(0, 100)
    ax.set_ylabel("%")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def totals_plot(pred: list[float], gold: list[float], path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    bins = range(0, 105, 5)
    ax.hist(gold, bins=bins, alpha=0.6, label="gold (sum of items)")
    ax.hist(pred, bins=bins, alpha=0.6, label="predicted")
    ax.set_xlabel("total of the 20 items")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def reliability_plot(pred: list[float], gold: list[float], path: Path) -> None:
    """Mean rated total against mean predicted total per 10-point band of prediction (the
    diagonal is perfect calibration); the count of sessions is written beside each point."""
    plt = _plt()
    bands: dict[int, list[tuple[float, float]]] = {}
    for p, g in zip(pred, gold):
        bands.setdefault(min(int(p) // 10, 9), []).append((p, g))
    pts = [(sum(p for p, _ in b) / len(b), sum(g for _, g in b) / len(b), len(b)) for _, b in sorted(bands.items())]
    fig, ax = plt.subplots(figsize=(4.5, 4), dpi=100)
    ax.plot([0, 100], [0, 100], color="grey", lw=0.8, ls=":")
    ax.plot([x for x, _, _ in pts], [y for _, y, _ in pts], "o-")
    for x, y, n in pts:
        ax.annotate(str(n), (x, y), fontsize=7, xytext=(3, -9), textcoords="offset points")
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.set_xlabel("mean predicted total (10-point bands)")
    ax.set_ylabel("mean rated total")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
