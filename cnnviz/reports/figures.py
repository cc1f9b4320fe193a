"""The report's few charts drawn with matplotlib (Agg, to PNG bytes), for machines without vl-convert.

Each figure says its split in its title and legend, like the app's Altair charts.
"""

from __future__ import annotations

import io
from typing import Sequence

import pandas as pd

METRIC_TITLES = {"loss": "loss", "acc": "accuracy"}


def available() -> bool:
    """Whether matplotlib is installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)  # no display; a report is drawn in a worker or a CLI
    import matplotlib.pyplot as plt

    return plt


def curves_png(epochs: pd.DataFrame, *, metric: str) -> bytes:
    """Train (solid) and val (dashed) ``metric`` per epoch; one colour per run when ``epochs`` has a ``run`` column."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    runs = epochs.groupby("run") if "run" in epochs.columns else [("", epochs)]
    for i, (name, rows) in enumerate(runs):
        colour = f"C{i % 10}"
        for split, style in (("train", "-"), ("val", "--")):
            column = f"{split}_{metric}"
            if column in rows.columns and rows[column].notna().any():
                label = f"{name}: {split}" if name else split
                ax.plot(rows["epoch"], rows[column], style, marker="o", color=colour, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(METRIC_TITLES.get(metric, metric))
    if metric == "acc":
        ax.set_ylim(0, 1)
    ax.legend(fontsize=7, loc="best")
    ax.set_title(f"train and val {METRIC_TITLES.get(metric, metric)}")
    ax.grid(alpha=0.3)
    return _png(fig)


def confusion_png(matrix: Sequence[Sequence[int]], classes: Sequence[str], *, title: str) -> bytes:
    """A confusion matrix as a heat map with its counts (rows: true class)."""
    plt = _pyplot()
    k = len(matrix)
    side = min(9.0, 2.0 + 0.45 * k)
    fig, ax = plt.subplots(figsize=(side, side))
    ax.imshow(matrix, cmap="Blues")
    names = list(classes) or [str(i) for i in range(k)]
    if k <= 30:
        ax.set_xticks(range(k), names, rotation=90, fontsize=7)
        ax.set_yticks(range(k), names, fontsize=7)
        top = max(max(row) for row in matrix) or 1
        for i, row in enumerate(matrix):
            for j, v in enumerate(row):
                if v:
                    ax.text(j, i, str(v), ha="center", va="center", fontsize=6,
                            color="white" if v > top / 2 else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    return _png(fig)
