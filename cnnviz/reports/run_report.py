"""The lab report of one run: what was asked, the model, the configuration, every epoch, the curves,
validation and test accuracy, the confusion matrices, misclassified validation pictures."""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import pandas as pd

from cnnviz import charts
from cnnviz.reports import figures
from cnnviz.reports.render import (Bullets, Code, Gallery, Image, Paragraph, Report, Section, Table, chart_image,
                                   frame, thumbnail_png)
from cnnviz.training.callbacks import LOOKAHEAD_EVERY
from cnnviz.training.config import FROZEN_MODES

MISCLASSIFIED = 8  # pictures in the gallery: enough to see a pattern, small enough to print
MODE_WORDS = {"scratch": "from random initial weights", "finetune": "with a new head, every layer training",
              "freeze": "with a new head, only the head training (the body frozen)",
              "probe": "as a linear probe (softmax regression on fixed features)"}


def describe_config(config) -> str:
    """The run's configuration in one paragraph of words."""
    from cnnviz.data import get_dataset_spec
    from cnnviz.models import get_spec

    arch = get_spec(config.arch).label if _known_arch(config.arch) else config.arch
    dataset = get_dataset_spec(config.dataset).label
    options = ", ".join(f"{k}={v}" for k, v in sorted(config.options.items()))
    start = {"none": "", "imagenet": " starting from ImageNet weights"}.get(
        config.init, f" starting from {config.init.replace('run:', 'the weights of run ')}")
    probe = f" at {config.probe_layer}" if config.mode == "probe" else ""
    subset = (f"{config.subset} training pictures per class" if config.subset else "every training picture")
    text = (f"Train {arch}{f' ({options})' if options else ''} {MODE_WORDS.get(config.mode, config.mode)}{probe}"
            f"{start if config.mode != 'scratch' else ''} on {dataset}"
            f"{' (' + config.labels + ' labels)' if config.labels != 'fine' else ''}, using {subset}, for "
            f"{config.epochs} epoch(s) of batches of {config.batch_size}: {config.optimizer.upper()} at learning rate "
            f"{config.lr:g}, weight decay {config.weight_decay:g}"
            f"{f', momentum {config.momentum:g}' if config.optimizer == 'sgd' else ''}"
            f"{' (Nesterov)' if config.nesterov else ''}, schedule {config.scheduler}, "
            f"augmentation {config.augment}"
            f"{' (flips alternating)' if config.alternate_flip and config.augment != 'none' else ''}"
            f"{f', label smoothing {config.label_smoothing:g}' if config.label_smoothing else ''}, loss {config.loss}"
            f"{f', weights averaged (EMA {config.ema_decay:g} per batch)' if config.ema_decay else ''}"
            f"{f', lookahead every {LOOKAHEAD_EVERY} batches' if config.lookahead else ''}"
            f"{_tta_words(config)}, seed {config.seed}.")
    return text


def _tta_words(config) -> str:
    views = [w for w, on in (("flip", config.tta_flip), ("one-pixel shift", config.tta_shift)) if on]
    return f", {' and '.join(views)} test-time augmentation" if views else ""


def _known_arch(name: str) -> bool:
    from cnnviz.models import list_models

    return name in list_models()


def config_table(config) -> pd.DataFrame:
    """Every configuration field with its value and what it means."""
    rows = [{"field": f.name, "value": _value(getattr(config, f.name)), "meaning": f.metadata.get("help", "")}
            for f in dataclasses.fields(config)]
    return frame(rows, ["field", "value", "meaning"])


def _value(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in sorted(value.items())) or "(defaults)"
    return "" if value is None else str(value)


def epochs_frame(epochs: Sequence[dict]) -> pd.DataFrame:
    """The per-epoch table, with the split in every column name."""
    rows = [{"epoch": r.get("epoch"), "train loss": r.get("train_loss"), "train acc": r.get("train_acc"),
             "val loss": r.get("val_loss"), "val acc": r.get("val_acc"), "lr": r.get("lr"),
             "seconds": r.get("seconds")} for r in epochs]
    return frame(rows, ["epoch", "train loss", "train acc", "val loss", "val acc", "lr", "seconds"])


def confusion_table(matrix: Sequence[Sequence[int]], classes: Sequence[str]) -> pd.DataFrame:
    """A confusion matrix as a table: one row per true class, one column per predicted class."""
    names = list(classes) or [str(i) for i in range(len(matrix))]
    rows = [{"true \\ predicted": names[i], **{names[j]: int(v) for j, v in enumerate(row)}}
            for i, row in enumerate(matrix)]
    return frame(rows, ["true \\ predicted", *names])


def per_class_table(run) -> pd.DataFrame:
    """Validation (best epoch) and test accuracy per class."""
    test = _per_class(run.test_confusion) if run.test_confusion else []
    rows = [{"class": name, "val acc": (run.per_class_acc or [None] * len(run.classes))[i],
             "test acc": test[i] if i < len(test) else None} for i, name in enumerate(run.classes)]
    return frame(rows, ["class", "val acc", "test acc"])


def _per_class(matrix: Sequence[Sequence[int]]) -> list[float]:
    return [row[i] / max(sum(row), 1) for i, row in enumerate(matrix)]


def _fmt(value: float | None, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def model_blocks(run) -> list:
    """The printed model and its layer summary (parameters and FLOPs), or why they are missing."""
    from cnnviz.inspect import format_flops, summarize

    blocks: list = [Paragraph(f"Parameters: {run.params or 0:,} ({run.trainable_params or 0:,} trainable); "
                              f"FLOPs per image at {run.image_size} px: {format_flops(run.flops or 0)} "
                              "(2 per multiply-add).")]
    try:
        summary = summarize(run.config.arch, options=run.config.options, num_classes=max(len(run.classes), 1),
                            image_size=run.image_size or None, frozen=run.config.mode in FROZEN_MODES)
    except Exception as exc:  # noqa: BLE001 - an architecture no longer registered: keep the rest of the report
        return blocks + [Paragraph(f"(The model could not be rebuilt to print it: {exc}.)")]
    return blocks + [Code(summary.text, "The printed model (print(model))"),
                     Code(summary.table(), "Layer summary (torchinfo)")]


def results_blocks(run) -> list:
    """Best epoch, time, validation and test accuracy, each named by its split."""
    splits = run.splits or {}
    items = [f"Status: {run.status}" + (f" ({run.message})" if run.message else ""),
             f"Best epoch: {run.best_epoch} (of {run.config.epochs} planned)",
             f"Best validation accuracy: {_fmt(run.best_val_acc)} (chose the best epoch)",
             f"Training time: {_fmt(run.train_seconds, '.1f')} s on {run.device or 'an unknown device'}"]
    if run.test_acc is not None:
        items.append(f"Test accuracy: {_fmt(run.test_acc)}, test loss {_fmt(run.test_loss)} "
                     "(evaluated once, on the best-validation weights)")
    else:
        items.append(f"Test accuracy: none — {_no_test(run)}")
    for name in ("train", "val", "test"):
        part = splits.get(name)
        if part:
            items.append(f"{name} split: {part['images']:,} images, {part['from']}")
    return [Bullets(items)]


def _no_test(run) -> str:
    from cnnviz.data import no_test_reason

    if run.status != "finished":
        return "the run did not finish, so its test set was never evaluated"
    try:
        return no_test_reason(run.config)
    except Exception:  # noqa: BLE001
        return "the dataset has no test set"


def misclassified_gallery(run, *, limit: int = MISCLASSIFIED) -> Gallery | Paragraph:
    """A few validation pictures the best epoch got wrong (thumbnails), or why there are none."""
    if not run.val_predictions:
        return Paragraph("(No validation predictions were stored for this run.)")
    try:
        from cnnviz.data import load_validation

        val = load_validation(run.config, image_size=run.image_size or 64)
    except Exception as exc:  # noqa: BLE001 - a dataset moved since the run
        return Paragraph(f"(The validation pictures could not be loaded: {exc}.)")
    if len(val) != len(run.val_predictions):
        return Paragraph("(The validation split no longer matches the stored predictions.)")
    wrong = [i for i, (p, y) in enumerate(zip(run.val_predictions, val.labels.tolist())) if p != y][:limit]
    if not wrong:
        return Paragraph("The best epoch classified every validation picture correctly.")
    classes = val.classes
    images = [Image(thumbnail_png(val.images[i]), f"said {classes[run.val_predictions[i]]} / is "
                                                  f"{classes[int(val.labels[i])]}") for i in wrong]
    return Gallery(images, f"{len(wrong)} misclassified validation pictures (best epoch)")


def curves_blocks(epochs: Sequence[dict]) -> list:
    """Loss and accuracy curves of train and validation, as images."""
    if not epochs:
        return [Paragraph("(No epoch finished.)")]
    data = pd.DataFrame(list(epochs))
    return [chart_image(charts.curves(data, metric=m), f"train and val {w} per epoch",
                        draw=lambda m=m: figures.curves_png(data, metric=m))
            for m, w in (("loss", "loss"), ("acc", "accuracy"))]


def run_sections(store, run_id: int, *, published: Sequence[dict] = (), level: int = 2,
                 misclassified: bool = True) -> list[Section]:
    """The sections of one run's report (``level``: heading depth, deeper inside an experiment's report)."""
    run = store.get(run_id)
    epochs = store.epochs(run_id)
    sub = level
    sections = [
        Section("What was asked", level=sub).add(Paragraph(describe_config(run.config))),
        Section("The model", level=sub).add(*model_blocks(run)),
        Section("Configuration", level=sub).add(Table(config_table(run.config))),
        Section("Per-epoch table", level=sub).add(Table(epochs_frame(epochs), "train and validation, per epoch")),
        Section("Curves", level=sub).add(*curves_blocks(epochs)),
        Section("Results: best epoch, time, validation and test accuracy", level=sub).add(*results_blocks(run)),
    ]
    matrices = Section("Confusion matrix and per-class accuracy", level=sub)
    if run.confusion:
        matrices.add(Table(confusion_table(run.confusion, run.classes), "validation, best epoch (rows: true class)"),
                     chart_image(charts.confusion(charts.confusion_frame(run.confusion, run.classes)),
                                 "validation confusion matrix, best epoch",
                                 draw=lambda: figures.confusion_png(run.confusion, run.classes,
                                                                    title="validation, best epoch")))
    if run.test_confusion:
        matrices.add(Table(confusion_table(run.test_confusion, run.classes),
                           "test, once on the best-validation weights (rows: true class)"),
                     chart_image(None, "test confusion matrix, best-validation weights",
                                 draw=lambda: figures.confusion_png(run.test_confusion, run.classes,
                                                                    title="test, best-validation weights")))
    if run.classes and (run.per_class_acc or run.test_confusion):
        matrices.add(Table(per_class_table(run), "per-class accuracy"))
    if not matrices.blocks:
        matrices.add(Paragraph("(No epoch finished, so there is no confusion matrix.)"))
    sections.append(matrices)
    if misclassified:
        sections.append(Section("Misclassified examples (validation)", level=sub).add(misclassified_gallery(run)))
    rows = [{"figure": p["label"], "published": p["value"], "split": p["split"], "this run": p.get("yours"),
             "this run's split": p.get("yours_split"), "source": p["citation"]} for p in published]
    sections.append(Section("Published figures", level=sub).add(
        Table(frame(rows)) if rows else Paragraph("No published figure sits beside this run: only runs launched as "
                                                  "part of an experiment, on its own dataset, have one.")))
    return sections


def run_report(store, run_id: int, *, published: Sequence[dict] = ()) -> Report:
    """The lab report of run ``run_id`` (``published``: figures to set beside it, from its experiment)."""
    run = store.get(run_id)
    report = Report(f"Lab report: {run.label}", f"{run.config.describe()} — run {run.id}, {run.status}")
    report.sections += run_sections(store, run_id, published=published)
    return report


def runs_report(store, run_ids: Sequence[int], *, title: str = "Lab report: runs compared") -> Report:
    """One report holding several runs, each with every section of its own report (the Compare page's)."""
    ids = list(run_ids)
    report = Report(title, f"runs {', '.join(str(i) for i in ids)}")
    rows = [{"run": r.label, "id": r.id, "status": r.status, "best val acc": r.best_val_acc,
             "test acc": r.test_acc, "seconds": r.train_seconds} for r in map(store.get, ids)]
    report.section("The runs").add(Table(frame(rows), "best val acc chose each run's best epoch; test acc was "
                                                      "evaluated once on its weights"))
    for run_id in ids:
        report.section(f"Run {run_id}: {store.get(run_id).label}")
        report.sections += run_sections(store, run_id, level=3)
    return report
