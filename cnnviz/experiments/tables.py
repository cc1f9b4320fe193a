"""The reports' tables: per-epoch rows, one summary row per run beside the published figure, and
a run printed as the PyTorch transfer-learning tutorial prints it."""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from cnnviz.experiments.conclude import comparable, conclude, noise_line, points, signed
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
    """One row per run: status, best val acc (epoch), test acc, time, and the published figure beside it.

    "published split" says what the report measured (test or val); the difference sets the run's
    figure on that split beside it ("compared on": val where the run has no test set).
    """
    rows = []
    for o in outcomes:
        pub = experiment.published_for(o.key) if comparable(experiment, o) else None
        value, split = o.figure(pub.split) if pub else (None, "")
        rows.append({
            "run": o.label, "status": o.status,
            "best val acc": o.best_val_acc, "best epoch": o.best_epoch, "test acc": o.test_acc,
            "epochs": f"{len(o.epochs)}/{o.config.epochs}",
            "time": format_duration(o.train_seconds) if o.train_seconds else "",
            "published": pub.shown() if pub else "",
            "published split": pub.split if pub else "",
            # text, so a run without a published figure shows a blank rather than "None"
            "difference (points)": signed(points(value - pub.value))
            if pub and pub.value is not None and value is not None else "",
            "compared on": split if pub and pub.value is not None and value is not None else "",
        })
    frame = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    for column in ("best val acc", "test acc"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame["best epoch"] = pd.to_numeric(frame["best epoch"], errors="coerce").astype("Int64")
    return frame


RESULT_COLUMNS = ["run", "status", "best val acc", "best epoch", "test acc", "epochs", "time", "published",
                  "published split", "difference (points)", "compared on"]


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
    if outcome.test_acc is not None:
        lines.append(f"Test Acc (once, best-validation weights): {outcome.test_acc:.4f}")
    return "\n".join(lines)


def format_duration(seconds: float) -> str:
    """``42 s``, ``3 min 5 s``, ``1 h 12 min``."""
    return format_seconds(seconds)


def published_rows(experiment: Experiment, outcome: Outcome) -> list[dict]:
    """The published figures set beside ``outcome``: its own figure on the same split where it has one, none
    (and why) where it ran on a stand-in dataset."""
    same = comparable(experiment, outcome)
    rows = []
    for pub in experiment.published:
        if pub.run_key != outcome.key:
            continue
        value, split = outcome.figure(pub.split) if same else (None, f"none: ran on {outcome.config.dataset}, "
                                                                     f"not {experiment.dataset}")
        rows.append({"label": pub.label, "value": pub.shown(), "split": pub.split, "citation": pub.citation,
                     "yours": value, "yours_split": split})
    return rows


def report_summary(experiment: Experiment, outcomes: Sequence[Outcome]) -> dict:
    """What an experiment's lab report shows, as plain data: the question, the settings, the tables, the
    conclusions with their noise band, and every published figure with its split and source."""
    lines = conclude(experiment, outcomes)
    noise = noise_line([o for o in outcomes if o.done and o.best_val_acc is not None])
    lines += [line for line in noise if line not in lines]  # the noise band, even where the card leaves it out
    published = [{"label": p.label, "value": p.shown(), "split": p.split, "run": p.run_key or "",
                  "citation": p.citation} for p in experiment.published]
    return {
        "key": experiment.key, "number": experiment.number, "title": experiment.title,
        "question": experiment.question, "expectation": experiment.expectation, "why": experiment.why,
        "dataset": experiment.dataset, "settings": dict(experiment.settings),
        "results": results_table(experiment, outcomes), "epochs": epochs_table(outcomes), "conclusions": lines,
        "published": published,
        "runs": [{"id": o.run_id, "label": o.label, "published": published_rows(experiment, o)} for o in outcomes],
    }
