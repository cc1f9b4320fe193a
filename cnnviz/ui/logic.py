"""Plain-Python logic behind the pages (no Streamlit import): tested without a browser."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any, Mapping

from cnnviz.recipes import NAMED_RECIPES, format_seconds
from cnnviz.runs.store import ACTIVE, STATUSES
from cnnviz.training.config import TrainConfig, knobs, nesterov_applies, value_type

UPLOAD_PATH = "train_upload_path"  # str: the saved .zip of the last dataset upload
WEIGHTS_PATH = "train_weights_path"  # str: the saved weights file of the last upload


def parse_run_id(value) -> int | None:
    """A run id from a query parameter or session value; None when absent or not a positive integer."""
    if value is None or isinstance(value, bool):
        return None
    try:
        run_id = int(str(value).strip())
    except ValueError:
        return None
    return run_id if run_id > 0 else None


def signed_delta(value: int | float | None, reference: int | float | None, fmt) -> str | None:
    """``+12.3 K vs default`` (None when equal or unknown), for st.metric's delta."""
    if value is None or reference is None or value == reference:
        return None
    diff = value - reference
    return f"{'+' if diff > 0 else '-'}{fmt(abs(diff))} vs default"


def plural(count: int, word: str) -> str:
    """``1 epoch``, ``3 epochs``."""
    return f"{count} {word}" + ("" if count == 1 else "s")


def options_key(options: dict) -> tuple:
    """A hashable, order-free form of an options dict (a cache key)."""
    return tuple(sorted(options.items()))


# -- a run's progress, for the live panel ---------------------------------------------------

TERMINAL = tuple(s for s in STATUSES if s not in ACTIVE)  # finished, stopped, diverged, failed, interrupted


@dataclass(frozen=True)
class Progress:
    """What the progress bar shows: a fraction in [0, 1] and one line of text."""

    fraction: float
    text: str
    eta_seconds: float | None = None


def batches_per_epoch(batch_rows: list[dict]) -> int | None:
    """Batches in one epoch, known once the first epoch has finished (its step count)."""
    epochs = [r.get("epoch") for r in batch_rows if r.get("epoch") is not None]
    if not epochs:
        return None
    first = min(epochs)
    if max(epochs) == first:
        return None  # still inside the first epoch
    return sum(1 for e in epochs if e == first)


def run_progress(*, status: str, epochs_total: int, epoch_rows: list[dict], batch_rows: list[dict],
                 started_at: float | None, now: float, queue_position: int | None = None,
                 expected_batches: int | None = None, stopping: bool = False, message: str | None = None) -> Progress:
    """Progress fraction, ETA and the line of text under the progress bar, from what the store holds.

    ``expected_batches`` (batches per epoch, if the page knows the dataset size)
    lets the bar move inside the first epoch; later epochs use the measured count.
    """
    if status == "queued":
        if queue_position and queue_position > 1:
            return Progress(0.0, f"Queued: position {queue_position} in line; the device is busy with other runs.")
        if queue_position == 1:
            return Progress(0.0, "Queued: next in line; starts when the run on the device finishes.")
        return Progress(0.0, "Queued: starting...")
    done = len(epoch_rows)
    if status in TERMINAL:
        return Progress(1.0 if status == "finished" else min(1.0, done / max(epochs_total, 1)),
                        f"{status.capitalize()} after {done} of {plural(epochs_total, 'epoch')}.")
    if done >= epochs_total > 0:  # the epochs are over; the run evaluates its best weights and saves
        text = (f"All {plural(epochs_total, 'epoch')} done: testing the best epoch's weights (where the dataset has "
                "a test set) and saving the results...")
        return Progress(1.0, ("Stopping... " if stopping else "") + text, 0.0)
    per_epoch = batches_per_epoch(batch_rows) or expected_batches
    current = done + 1
    in_epoch = sum(1 for r in batch_rows if r.get("epoch") == current)
    if not batch_rows and not done:  # the trainer's own words (e.g. "decoding images") say more
        return Progress(0.0, (message[:1].upper() + message[1:] + "...") if message else "Preparing the data and the model...")
    within = min(in_epoch / per_epoch, 1.0) if per_epoch else 0.0
    fraction = min((done + within) / max(epochs_total, 1), 1.0)
    batch_text = f"batch {in_epoch} of {per_epoch}" if per_epoch else f"batch {in_epoch}"
    text = f"Epoch {min(current, epochs_total)} of {epochs_total}, {batch_text}"
    eta = None
    if started_at is not None and fraction > 0.02:
        elapsed = max(now - started_at, 0.0)
        eta = elapsed * (1 - fraction) / fraction
        text += f"; about {format_seconds(eta)} left"
    if stopping:
        text = "Stopping after this batch... " + text
    return Progress(fraction, text + ".", eta)


def status_message(status: str, message: str | None = None, *, epochs_done: int | None = None) -> tuple[str, str]:
    """(level, text) telling a student what a run's end status means and what to do; level is an st.* alert name.

    ``epochs_done=0`` says that a stopped or interrupted run kept nothing (None: not known).
    """
    detail = f" ({message})" if message else ""
    if status == "finished":
        return "success", "Finished." + detail
    if status in ("stopped", "interrupted") and epochs_done == 0:
        what = "Stopped" if status == "stopped" else "Interrupted (the app stopped while this run was training)"
        return "warning", (f"{what} before its first epoch finished, so nothing was kept: no weights, no "
                           "results. Launch it again to train it." + detail)
    if status == "stopped":
        return "warning", "Stopped. The best epoch so far is kept and can be used like any finished run." + detail
    if status == "diverged":
        return "error", ("The loss diverged (it became NaN or exploded), so training stopped: lower the learning "
                         "rate (try a tenth of it) and launch again." + detail)
    if status == "interrupted":
        return "warning", ("Interrupted: the app stopped while this run was training. Its finished epochs are kept; "
                           "launch it again to train it fully." + detail)
    if status == "failed":
        return "error", "Training failed: " + (message or "no message was recorded.")
    return "info", f"{status.capitalize()}." + detail


# -- uploads ----------------------------------------------------------------------------------

class UploadError(ValueError):
    """An uploaded file that cannot be used; the message says why in one line."""


def save_upload(data: bytes, *, folder: Path, filename: str = "", kind: str = "zip") -> Path:
    """Store uploaded bytes as ``folder/<content hash>/<the user's file name>``; returns the path.

    The hash folder makes re-uploads reuse the file; the user's name inside it is what messages
    about the file show. ``kind="zip"`` checks the bytes really are a .zip archive (what is inside is
    checked by ``cnnviz.data`` when the dataset loads); ``kind="weights"`` keeps
    the bytes for ``torch.load(weights_only=True)`` to judge.
    """
    name = filename or "the uploaded file"
    if not data:
        raise UploadError(f"{name} is empty.")
    if kind == "zip" and not zipfile.is_zipfile(io.BytesIO(data)):
        raise UploadError(f"{name} is not a .zip archive. Zip a folder that holds one sub-folder per class "
                          "(e.g. ants/ and bees/, each with its pictures) and upload that.")
    suffix = ".zip" if kind == "zip" else (Path(filename).suffix.lower() or ".pth")
    stem = re.sub(r"[^\w.\- ]", "_", Path(Path(filename).name).stem).strip(" .")[:100] or "upload"
    home = folder / hashlib.sha256(data).hexdigest()[:16]
    earlier = sorted(p for p in home.glob("*") if not p.name.endswith(".part")) if home.is_dir() else []
    if earlier:  # the same bytes came before: one copy, under the first name it had
        return earlier[0]
    home.mkdir(parents=True, exist_ok=True)
    path = home / f"{stem}{suffix}"
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(path)  # atomic: a half-written upload never looks complete
    return path


# -- the Train page's widgets <-> a TrainConfig, generated from the config's field metadata ------

PREFIX = "train_"


def widget_key(f: dataclasses.Field) -> str:
    """The session-state key of a config field's widget on the Train page."""
    return PREFIX + (f.metadata["key"] or f.name)


def form_fields() -> tuple[dataclasses.Field, ...]:
    """The config fields whose widget the table maps by itself (the page builds ``special`` ones by hand)."""
    return tuple(f for f in knobs() if f.metadata["ui"] not in (None, "special"))


def _counts_none_as_zero(f: dataclasses.Field) -> bool:
    base, optional = value_type(f)
    return optional and base is int  # "0 = all" in a number input means None in the config


def number_bounds(name: str) -> dict[str, Any]:
    """``min_value``/``max_value`` for a config field's number input, from its metadata, in the field's type."""
    f = next(f for f in knobs() if f.name == name)
    base, _ = value_type(f)
    bounds = {"min_value": f.metadata["low"], "max_value": f.metadata["high"]}
    return {k: base(v) for k, v in bounds.items() if v is not None}


def widget_values(config: TrainConfig) -> dict[str, Any]:
    """The widget values (``train_*`` keys) that show ``config``'s table fields."""
    values = {}
    for f in form_fields():
        value = getattr(config, f.name)
        values[widget_key(f)] = 0 if value is None and _counts_none_as_zero(f) else value
    return values


def _from_widget(f: dataclasses.Field, value: Any) -> Any:
    base, optional = value_type(f)
    if optional and base is int:
        return int(value) if value else None
    if base is str:
        return str(value).strip() if f.metadata["ui"] == "text" else value
    return base(value)


def build_train_config(values: Mapping[str, Any], *, options: dict[str, Any]) -> TrainConfig:
    """A ``TrainConfig`` from the Train page's widget values (``train_*`` keys); ValueError says what is missing.

    Table fields come from ``form_fields``; a widget that is absent keeps the field's default.
    """
    from cnnviz.data import get_dataset_spec  # deferred: the data layer imports torch

    get = values.get
    table = {f.name: _from_widget(f, values[widget_key(f)]) for f in form_fields() if widget_key(f) in values}
    if not nesterov_applies(table.get("optimizer", TrainConfig.optimizer), table.get("momentum", TrainConfig.momentum)):
        table["nesterov"] = False  # Nesterov is a kind of SGD momentum: the page greys its toggle out otherwise
    dataset = get("train_dataset", "shapes")
    mode = get("train_mode", "scratch")
    init_kind = "none" if mode == "scratch" else get("train_init", "none")
    if init_kind == "imagenet":
        init = "imagenet"
    elif init_kind == "run":
        if get("train_init_run") is None:
            raise ValueError("Choose the earlier run to start from (or another initialisation).")
        init = f"run:{int(get('train_init_run'))}"
    elif init_kind == "file":
        if not get(WEIGHTS_PATH):
            raise ValueError("Upload a weights file first (or choose another initialisation).")
        init = str(get(WEIGHTS_PATH))
    else:
        init = "none"
    data_spec = get_dataset_spec(dataset)
    data_path = get(UPLOAD_PATH) if data_spec.needs_path else None
    if data_spec.needs_path and not data_path:
        raise ValueError("Upload a .zip of class folders first.")
    return TrainConfig(
        arch=get("train_model"), options=dict(options), dataset=dataset, data_path=data_path,
        labels=get("train_labels", data_spec.label_sets[0]) if len(data_spec.label_sets) > 1 else data_spec.label_sets[0],
        mode=mode, probe_layer=get("train_probe_layer") if mode == "probe" else None, init=init, **table)


def merge_recipe(current: Mapping[str, Any], applied: Mapping[str, Any],
                 recipe: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(widget values to write, the recipe's values held back) when a new recipe replaces the last one.

    A widget still showing what the last recipe (``applied``) put there is untouched and takes the new
    recipe's value; one the student changed by hand keeps its value, and the recipe's goes into the second
    dict, so the page can offer it. A widget no recipe filled yet takes the recipe's value.
    """
    updates, held = {}, {}
    for key, value in recipe.items():
        typed = key in current and key in applied and current[key] != applied[key]
        if not typed:
            updates[key] = value
        elif current[key] != value:
            held[key] = value
    return updates, held


_NOTE_WORDS = {"lr": "lr", "batch_size": "batch size", "subset": "images per class", "image_size": "input size",
               "val_subset": "validation images per class", "weight_decay": "weight decay"}


def _note_value(field: str, value: Any) -> str:
    if field in ("subset", "val_subset") and not value:
        return "all"
    return f"{value:g}" if isinstance(value, float) else str(value)


def kept_values_note(held: Mapping[str, Any], current: Mapping[str, Any], *, recipe_for: str) -> str | None:
    """``kept your lr 0.05; the recipe for freeze suggests 0.001``: hand-typed values kept over a new recipe's.

    Only values that still differ from the recipe's are named; None when there are none.
    """
    differ = [k for k, v in held.items() if k in current and current[k] != v]
    if not differ:
        return None
    fields = [k[len(PREFIX):] for k in differ]
    words = [_NOTE_WORDS.get(f, f.replace("_", " ")) for f in fields]
    yours = " and ".join(f"{w} {_note_value(f, current[k])}" for w, f, k in zip(words, fields, differ))
    suggested = " and ".join(f"{_note_value(f, held[k])}" for f, k in zip(fields, differ))
    return f"Kept your {yours}; the recipe for {recipe_for} suggests {suggested}."


def recipe_choices() -> list[str]:
    """The named recipes' names, in the order ``python -m cnnviz recipes`` lists them (the Recipe box's options)."""
    return [r.name for r in NAMED_RECIPES]


def round_lr(lr: float | None) -> float | None:
    """A learning rate to two significant figures (``0.0010975`` -> ``0.0011``), as a person would type it."""
    return None if lr is None else float(f"{lr:.2g}")


def images_for_estimate(*, train_counts: dict[str, int], val_counts: dict[str, int], subset: int | None = None,
                        val_subset: int | None = None, val_carved: bool = False) -> tuple[int, int]:
    """(training images, validation images) one epoch sees, with ``subset``/``val_subset`` images per class.

    The counts are the dataset's default split. Where validation is carved from the training
    pictures (``val_carved``), a run holds out only its ``val_subset`` and the rest of each class's
    share trains (``TrainConfig.val_carve`` "capped").
    """
    def total(counts: dict[str, int], per_class: int | None) -> int:
        return sum(min(c, per_class) if per_class else c for c in counts.values())

    if val_carved and val_subset:
        train_counts = {c: n + val_counts.get(c, 0) - min(val_counts.get(c, 0), val_subset)
                        for c, n in train_counts.items()}
    return total(train_counts, subset), total(val_counts, val_subset)


def run_images_text(*, train_counts: dict[str, int], val_counts: dict[str, int], subset: int | None,
                    val_subset: int | None, official_val: bool, val_carved: bool = False) -> str:
    """What a run with these settings trains and validates on, in one sentence (the numbers ``images_for_estimate`` gives)."""
    train, val = images_for_estimate(train_counts=train_counts, val_counts=val_counts, subset=subset,
                                     val_subset=val_subset, val_carved=val_carved)
    split = "the official validation split" if official_val else "the validation split"
    part = f"{val_subset} per class of {split}" if val_subset else f"all of {split}"
    return f"A run trains on {train:,} images and validates on **{val:,}** ({part})."


def your_run_label(run: Any, *, dataset: str, where: str) -> str:
    """A "Your runs" link: ``Run 4: mine, resnet18 on shapes · running, epoch 2 of 3``.

    The run's name is shown only when it adds something (a default ``run <id>`` would repeat the id);
    ``dataset`` is its display name, ``where`` the run's place in the queue or its progress.
    """
    name = run.name if run.name and run.name.lower() != f"run {run.id}" else ""
    return f"Run {run.id}: " + (f"{name}, " if name else "") + f"{run.config.arch} on {dataset} · {where}"


# -- confusion matrix cells -> the validation images behind them ------------------------------

def confusion_cells(matrix: list[list[int]], classes: list[str]) -> list[tuple[int, int]]:
    """Non-empty (true, predicted) cells, mistakes first (largest first), then correct cells."""
    cells = [(t, p) for t, row in enumerate(matrix) for p, n in enumerate(row) if n]
    return sorted(cells, key=lambda c: (c[0] == c[1], -matrix[c[0]][c[1]], c))


def cell_indices(labels: list[int], predictions: list[int], *, true: int, predicted: int) -> list[int]:
    """Indices of validation images of class ``true`` that the model called ``predicted``."""
    return [i for i, (t, p) in enumerate(zip(labels, predictions)) if t == true and p == predicted]


def misclassified(labels: list[int], predictions: list[int]) -> list[int]:
    """Indices of validation images the model got wrong."""
    return [i for i, (t, p) in enumerate(zip(labels, predictions)) if t != p]


def init_display_name(init: str) -> str:
    """How a page names a run's starting weights: ``ImageNet weights``, ``run 3``, or the file's own name
    (an uploaded file is stored under a content-hash folder that means nothing to a student)."""
    if init == "imagenet":
        return "ImageNet weights"
    if init.startswith("run:"):
        return f"run {init[4:]}"
    return PurePath(init).name or init
