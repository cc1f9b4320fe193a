"""The reports' tables: per-epoch rows, one summary row per run beside the published figure, and
a run printed as the PyTorch transfer-learning tutorial prints it."""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from cnnviz.experiments.conclude import comparable, points, signed
from cnnviz.experiments.spec import Experiment, Outcome
from cnnviz.recipes import format_seconds


def epochs_table(outcomes: Sequence[Outcome]) -> pd.DataFrame:
    """Per-epoch train/val loss and accuracy and time of every run (the reports' table)."""
    rows = []
    for o in outcomes:
        elapsed = 0.0
        for row in o.epochs:
            elapsed += float(row.get("seconds") or 0.0)
            rows.append({"run": o.label, "epoch": row.get("epoch"), "train loss": row.get("train_loss"),
                         "train acc": row.get("train_acc"), "val loss": row.get("val_loss"),
                         "val acc": row.get("val_acc"), "time (s)": round(elapsed, 1)})
    return pd.DataFrame(rows, columns=["run", "epoch", "train loss", "train acc", "val loss", "val acc", "time (s)"])


def results_table(experiment: Experiment, outcomes: Sequence[Outcome]) -> pd.DataFrame:
    """One row per run: status, best val acc (epoch), time, and the published figure beside it."""
    rows = []
    for o in outcomes:
        pub = experiment.published_for(o.key) if comparable(experiment, o) else None
        rows.append({
            "run": o.label, "status": o.status,
            "best val acc": o.best_val_acc, "best epoch": o.best_epoch,
            "epochs": f"{len(o.epochs)}/{o.config.epochs}",
            "time": format_duration(o.train_seconds) if o.train_seconds else "",
            "published": pub.shown() if pub else "",
            # text, so a run without a published figure shows a blank rather than "None"
            "difference (points)": signed(points(o.best_val_acc - pub.value))
            if pub and pub.value is not None and o.best_val_acc is not None else "",
        })
    frame = pd.DataFrame(rows, columns=["run", "status", "best val acc", "best epoch", "epochs", "time", "published",
                                        "difference (points)"])
    frame["best val acc"] = pd.to_numeric(frame["best val acc"], errors="coerce")
    frame["best epoch"] = pd.to_numeric(frame["best epoch"], errors="coerce").astype("Int64")
    return frame


def report_text(outcome: Outcome) -> str:
    """One run printed as the PyTorch transfer-learning tutorial prints it (the reports pasted this)."""
    lines = []
    total = outcome.config.epochs
    for row in outcome.epochs:
        lines += [f"Epoch {int(row['epoch']) - 1}/{total - 1}", "-" * 10]
        for split in ("train", "val"):
            loss, acc = row.get(f"{split}_loss"), row.get(f"{split}_acc")
            if loss is not None and acc is not None:
                lines.append(f"{split} Loss: {loss:.4f} Acc: {acc:.4f}")
        lines.append("")
    seconds = outcome.train_seconds or sum(float(r.get("seconds") or 0) for r in outcome.epochs)
    lines.append(f"Training complete in {int(seconds // 60)}m {int(seconds % 60)}s")
    if outcome.best_val_acc is not None:
        lines.append(f"Best val Acc: {outcome.best_val_acc:.4f}")
    return "\n".join(lines)


def format_duration(seconds: float) -> str:
    """``42 s``, ``3 min 5 s``, ``1 h 12 min``."""
    return format_seconds(seconds)
