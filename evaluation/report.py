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
