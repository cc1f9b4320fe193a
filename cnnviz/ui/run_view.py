"""The run half of the Train page: the live panel while a run trains, the results once it ends.

Everything drawn here is read from the run store, so a rerun, another tab or a
restart shows the same thing; the live panel is a fragment that polls the
store every second and reruns the whole page once the run has ended.
"""

from __future__ import annotations

import functools
import json
import time

import pandas as pd
import streamlit as st

from cnnviz import charts
from cnnviz.runs import RunNotFound, RunStore
from cnnviz import jobs
from cnnviz.ui import state
from cnnviz.ui.logic import (TERMINAL, cell_indices, confusion_cells, init_display_name, misclassified, run_progress,
                             status_message)

POLL_SECONDS = 1.0
GALLERY = 24  # misclassified images shown at most


def show_run(run_id: int) -> bool:
    """The attached run: live while it trains, results when it has ended. False if there is no such run."""
    store = RunStore()
    try:
        run = store.get(run_id)
    except RunNotFound:
        st.warning(f"Run {run_id} is not in the run store (deleted?). Set up a new run below.")
        state.detach()
        return False
    st.subheader(f"Run {run.id}" + (f": {run.name}" if run.name else ""))
    st.caption(describe(run.config))
    with st.container(horizontal=True):  # short labels in a row that wraps: never "Ne..." on a narrow screen
        if st.button("New", key="train_detach", icon=":material/add:",
                     help="Stop watching this run (it carries on) and set up another."):
            state.detach()
            st.rerun()
        if run.status in TERMINAL and st.button("Again", key="train_again", icon=":material/replay:",
                                                help="Train again: fill the form with this run's settings "
                                                     "to change one and rerun."):
            state.prefill_train_form(run.config)
            state.detach()
            st.rerun()
        if run.status in ("stopped", "interrupted", "failed") and st.button(
                "Resume", key="train_resume", icon=":material/play_arrow:",
                help="Continue from the last saved epoch, as if it had never stopped."):
            jobs.resume(run.id, store=store)
            st.rerun()
    if run.status in TERMINAL:
        show_results(run, store)
    else:
        live_panel(run_id)
    return True


def describe(config) -> str:
    """``AlexNet (CIFAR) [se_2] - scratch on shapes - 3 epochs, lr 0.01``: only options that differ from the defaults."""
    from cnnviz.data import dataset_display_name
    from cnnviz.models import get_spec

    spec = get_spec(config.arch)
    defaults = spec.defaults()
    changed = [k if v is True else f"{k}={v}" for k, v in config.options.items() if defaults.get(k) != v]
    probe = f" at {config.probe_layer}" if config.mode == "probe" else ""
    init = "" if config.init == "none" else f" from {init_display_name(config.init)}"
    data = dataset_display_name(config.dataset, config.data_path)
    return (f"{spec.label}{' [' + ', '.join(changed) + ']' if changed else ''} · {config.mode}{probe}{init} on "
            f"{data} · {config.epochs} epochs, batch {config.batch_size}, lr {config.lr:g}, "
            f"{config.image_size or spec.default_size} px")


@st.fragment(run_every=POLL_SECONDS)
def live_panel(run_id: int) -> None:
    """Progress, curves and the epoch table of a queued or running run, redrawn every second."""
    store = RunStore()
    run = store.get(run_id)
    if run.status in TERMINAL:
        st.rerun(scope="app")  # draw the results once, then stop polling
    job = jobs.status(run_id, store=store)
    epochs, batches = store.epochs(run_id), store.batches(run_id)
    cached = uses_cached_features(run.config)
    progress = run_progress(status=run.status, epochs_total=run.config.epochs, epoch_rows=epochs, batch_rows=batches,
                            started_at=run.started_at, now=time.time(), queue_position=job.queue_position,
                            expected_batches=st.session_state.get("train_expected_batches", {}).get(run_id),
                            stopping=job.stopping, message=run.message or (FEATURES_STEP if cached else None))
    bar, stop = st.columns([5, 1], vertical_alignment="bottom")
    bar.progress(progress.fraction, text=progress.text)
    kept = ("the best epoch so far is kept." if epochs else
            "no epoch has finished yet, so nothing would be kept.")
    if stop.button("Stop", width="stretch", key="train_stop", type="primary", disabled=job.stopping,
                   help="Ends within one batch; " + kept):
        store.request_stop(run_id)
        st.toast(f"Stopping run {run_id}...")
    draw_curves(epochs, batches, epochs_total=run.config.epochs, num_classes=len(run.classes or []), cached=cached)


def uses_cached_features(config) -> bool:
    """Whether the run's epochs train only the head, on frozen features computed once before epoch 1."""
    from cnnviz.recipes import features_cached

    return features_cached(mode=config.mode, augment=config.augment)


def draw_curves(epochs: list[dict], batches: list[dict], *, epochs_total: int | None = None,
                num_classes: int = 0, cached: bool = False) -> None:
    """Loss and accuracy by epoch (with the chance level), the per-batch loss trace and the epoch table."""
    if epochs:
        frame = pd.DataFrame(epochs)
        chance = 1.0 / num_classes if num_classes else None
        left, right = st.columns(2)
        left.altair_chart(charts.curves(frame, metric="loss", epochs_total=epochs_total), width="stretch")
        right.altair_chart(charts.curves(frame, metric="acc", epochs_total=epochs_total, chance=chance),
                           width="stretch")
    if batches:
        st.altair_chart(charts.batch_loss(pd.DataFrame(batches)), width="stretch")
    if epochs:
        st.dataframe(epoch_table(epochs), hide_index=True, key=None,
                     column_config=CACHED_EPOCH_COLUMNS if cached else EPOCH_COLUMNS)
        if cached:
            st.caption(f"Seconds and images/s {CACHED_NOTE}: the frozen features were computed once, before "
                       "epoch 1, and that time is not in the epochs.")
    elif not batches:
        st.caption("Curves appear after the first batches.")


ACCURACY_COLUMNS = ("train_acc", "val_acc", "val_top5")
# Accuracies in percent with one decimal, as on every other chart and metric of the app.
EPOCH_COLUMNS = {c: st.column_config.NumberColumn(c, format="%.1f%%") for c in ACCURACY_COLUMNS}
EPOCH_COLUMNS.update({"seconds": st.column_config.NumberColumn("seconds", format="%.1f"),
                      "images_per_sec": st.column_config.NumberColumn("images/s", format="%.0f")})
CACHED_NOTE = "(head only, on cached features)"
# Epochs on cached frozen features time the head alone: their images/s is not the network's speed.
CACHED_EPOCH_COLUMNS = {**EPOCH_COLUMNS,
                        "seconds": st.column_config.NumberColumn("seconds (head only)", format="%.1f"),
                        "images_per_sec": st.column_config.NumberColumn(f"images/s {CACHED_NOTE}", format="%.0f")}
FEATURES_STEP = "decoding the images and computing the frozen features once (the epochs then train only the head)"


def epoch_table(epochs: list[dict]) -> pd.DataFrame:
    """The epoch rows with readable columns (accuracies in percent; nested values such as gradient norms left out)."""
    columns = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_top5", "lr", "seconds", "images_per_sec"]
    frame = pd.DataFrame(epochs)
    frame = frame[[c for c in columns if c in frame.columns]].round(4)
    for column in ACCURACY_COLUMNS:
        if column in frame.columns:
            frame[column] = pd.to_numeric(frame[column], errors="coerce") * 100
    return frame


# -- results ----------------------------------------------------------------------------------

def show_results(run, store: RunStore) -> None:
    """Status, best accuracy, curves, confusion matrix with its images, per-class accuracy, downloads."""
    epochs = store.epochs(run.id)
    cached = uses_cached_features(run.config)
    level, text = status_message(run.status, run.message, epochs_done=len(epochs))
    getattr(st, level)(text)
    with st.container(horizontal=True):  # metrics of a fixed width wrap instead of cutting their labels
        st.metric("Best val accuracy", f"{run.best_val_acc:{charts.PERCENT}}" if run.best_val_acc is not None else "n/a",
                  width=170)
        st.metric("Best epoch", f"{run.best_epoch} of {run.config.epochs}" if run.best_epoch else "n/a", width=170)
        st.metric("Training time", f"{run.train_seconds:.0f} s" if run.train_seconds else "n/a", width=170,
                  help=setup_note(run.train_seconds, epochs) if cached else None)
        st.metric("Images per class", run.config.subset or "all", width=170)
    test = (f"**Test accuracy** (evaluated once, on the best-validation weights): {run.test_acc:{charts.PERCENT}}"
            if run.test_acc is not None else "**Test accuracy**: none (no test set, or the run did not finish)")
    st.markdown(test + "".join(f" · {k} {v['images']:,} images" for k, v in (run.splits or {}).items() if v))
    with st.expander("Curves and epochs", expanded=True):
        draw_curves(epochs, store.batches(run.id), epochs_total=run.config.epochs,
                    num_classes=len(run.classes or []), cached=cached)
    if run.confusion and run.classes:
        confusion_section(run)
    downloads(run, store)


def setup_note(train_seconds: float | None, epochs: list[dict]) -> str | None:
    """How much of a cached-feature run's time went outside its epochs (the frozen features, the data, the test)."""
    if not train_seconds:
        return None
    outside = max(train_seconds - sum(r.get("seconds") or 0.0 for r in epochs), 0.0)
    return (f"{outside:.0f} s of it outside the epochs: decoding the images, computing the frozen features once, "
            "and the test set. The epochs train only the head, on the cached features.")


def confusion_section(run) -> None:
    """Confusion matrix (click a cell, or pick it below) -> the validation images behind it; per-class accuracy."""
    st.subheader("Where it goes wrong")
    frame = charts.confusion_frame(run.confusion, run.classes)
    cells = confusion_cells(run.confusion, run.classes)
    key = f"train_cell_{run.id}"
    # The matrix keeps its square size (from its class count); per-class bars sit beside it, or below on a
    # narrow screen.
    with st.container(horizontal=True, gap="large"):
        with st.container(width="content"):  # alone in the row, the chart would be squeezed to a sliver
            st.altair_chart(charts.confusion(frame, selectable=True), width="content",
                            key=f"train_confusion_{run.id}", on_select=functools.partial(_cell_clicked, run.id, cells),
                            selection_mode=charts.CONFUSION_SELECTION)
        if run.per_class_acc:
            with st.container(width=320):
                st.altair_chart(charts.per_class_accuracy(run.classes, run.per_class_acc), width="stretch")
    if not cells:
        return
    if st.session_state.get(key) not in cells:
        st.session_state[key] = cells[0]
    true, pred = st.selectbox("Images where the true class is... and the model said...", cells, key=key,
                              format_func=lambda c: f"true {run.classes[c[0]]} -> predicted {run.classes[c[1]]} "
                                                    f"({run.confusion[c[0]][c[1]]})")
    val = validation_split(run)
    if val is None or not run.val_predictions:
        st.caption("The validation images are not available for this run.")
        return
    labels = val.labels.tolist()
    show_images(val, cell_indices(labels, run.val_predictions, true=true, predicted=pred), run.classes,
                run.val_predictions)
    wrong = misclassified(labels, run.val_predictions)
    st.markdown(f"**Misclassified validation images** ({len(wrong)} of {len(labels)})")
    show_images(val, wrong[:GALLERY], run.classes, run.val_predictions)


def _cell_clicked(run_id: int, cells: list) -> None:
    """Altair click on a confusion cell -> select the same cell in the selectbox."""
    event = st.session_state.get(f"train_confusion_{run_id}")
    points = (event or {}).get("selection", {}).get(charts.CONFUSION_SELECTION) or []
    if points:
        cell = (int(points[0]["true_index"]), int(points[0]["pred_index"]))
        if cell in cells:
            st.session_state[f"train_cell_{run_id}"] = cell


def show_images(val, indices: list[int], classes: list[str], predictions: list[int]) -> None:
    """A grid of validation images captioned with their predicted and true classes."""
    if not indices:
        st.caption("No images here.")
        return
    images = val.images[indices[:GALLERY]].permute(0, 2, 3, 1).numpy()
    captions = [f"said {classes[predictions[i]]} / is {classes[int(val.labels[i])]}" for i in indices[:GALLERY]]
    st.image(list(images), caption=captions, width=96)


@st.cache_resource(show_spinner="Loading the validation images...", max_entries=4)
def _validation_split(config_json: str, image_size: int):
    from cnnviz.data import load_validation
    from cnnviz.training.config import TrainConfig

    return load_validation(TrainConfig.from_json(config_json), image_size=image_size)


def validation_split(run):
    """The run's validation images, in the order of its ``val_predictions`` (None when they cannot be loaded)."""
    from cnnviz.models import get_spec

    size = run.config.image_size or get_spec(run.config.arch).default_size
    try:
        val = _validation_split(run.config.to_json(), int(size))
    except Exception as exc:  # a dataset moved or deleted since the run: say so, keep the page
        st.caption(f"Could not reload the validation images: {exc}")
        return None
    return val if len(val) == len(run.val_predictions or []) else None


def downloads(run, store: RunStore) -> None:
    """Download buttons: the best checkpoint, the run card (config + results) and the per-epoch CSV."""
    with st.container(horizontal=True):
        if run.checkpoint:
            from pathlib import Path

            ckpt = Path(run.checkpoint)
            if ckpt.exists():
                st.download_button("Checkpoint", data=lambda: ckpt.read_bytes(), file_name=f"cnnviz-run-{run.id}.pt",
                                   mime="application/octet-stream", key="train_dl_checkpoint",
                                   icon=":material/download:", help="The best epoch's weights (.pt)")
        st.download_button("Run card", data=json.dumps(store.run_card(run.id), indent=2),
                           file_name=f"cnnviz-run-{run.id}.json", mime="application/json", key="train_dl_card",
                           icon=":material/download:", help="Settings and results (JSON)")
        st.download_button("Epochs", data=store.export_csv(run.id), file_name=f"cnnviz-run-{run.id}.csv",
                           mime="text/csv", key="train_dl_csv", icon=":material/download:",
                           help="One row per epoch (CSV)")
        st.download_button("Report", data=lambda: _report_html(store, run_id=run.id),
                           file_name=f"cnnviz-run-{run.id}-report.html", mime="text/html", key="train_dl_report",
                           icon=":material/description:", help="The lab report: one self-contained HTML page")


def _report_html(store: RunStore, **which) -> str:
    """A lab report as one self-contained HTML page (built when the button is pressed)."""
    from cnnviz.cli.report import build_report
    from cnnviz.reports import render

    return render(build_report(store, **which), "html")
