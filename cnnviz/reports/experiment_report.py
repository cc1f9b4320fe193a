"""The lab report of an experiment's group of runs: the question, the plan, the results beside the
published figures, the curves, the conclusions with their noise band, then each run's own report.

The experiment's numbers come in as plain data (``cnnviz.experiments.report_summary``): reports and
experiments sit in the same layer, so neither imports the other and the caller joins them.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from cnnviz import charts
from cnnviz.reports import figures
from cnnviz.reports.render import Bullets, Paragraph, Report, Table, chart_image, frame
from cnnviz.reports.run_report import run_sections


def experiment_report(summary: dict[str, Any], store, *, misclassified: bool = True) -> Report:
    """The report of one experiment's group from its ``summary`` and the runs in ``store``."""
    report = Report(f"Lab report: experiment {summary['number']}. {summary['title']}", summary["question"])
    report.section("What was asked").add(
        Paragraph(summary["question"]), Paragraph(f"Expected: {summary['expectation']}"),
        Paragraph(f"Why: {summary['why']}"),
        Bullets([f"{size}: {words}" for size, words in summary["settings"].items()]) if summary["settings"] else None,
        Table(frame([{"run": r["label"], "id": r["id"]} for r in summary["runs"]]), "the runs of this group"))
    results: pd.DataFrame = summary["results"]
    report.section("Results beside the published figures").add(
        Table(results, "best val acc chose the best epoch; test acc was evaluated once on its weights; "
                       "'compared on' is the split set beside the published figure"))
    epochs: pd.DataFrame = summary["epochs"]
    curves = report.section("Per-epoch table and curves")
    curves.add(Table(epochs, "train and validation, per epoch (time is cumulative)"))
    if not epochs.empty:
        data = epochs.rename(columns={"train loss": "train_loss", "train acc": "train_acc", "val loss": "val_loss",
                                      "val acc": "val_acc"})
        data["seconds"] = data.groupby("run")["time (s)"].diff().fillna(data["time (s)"])
        curves.add(*[chart_image(charts.curves(data, metric=m), f"train and val {w} per epoch, every run",
                                 draw=lambda m=m: figures.curves_png(data, metric=m))
                     for m, w in (("loss", "loss"), ("acc", "accuracy"))])
    lines = summary["conclusions"]
    report.section("Conclusions").add(Bullets(lines) if lines else Paragraph("(No run of this group finished yet.)"))
    report.section("Published figures").add(
        Table(frame(summary["published"], ["label", "value", "split", "run", "citation"]),
              "what the reports published, and on which split"))
    for run in summary["runs"]:
        if run["id"] is None:
            continue
        report.section(f"Run {run['id']}: {run['label']}")
        report.sections += run_sections(store, run["id"], published=run["published"], level=3,
                                        misclassified=misclassified)
    return report
