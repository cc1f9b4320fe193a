"""Comparing runs: the runs table, its filters, curves, cost and disagreement frames; the models to compare.

Pure pandas over ``cnnviz.runs.Run`` objects (read by attribute, so any object
with the same fields works); the Compare page draws what these return. The
Predict page compares models on pictures: ``model_choices`` lists them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from cnnviz.data import DatasetError, dataset_display_name, get_dataset_spec, list_datasets
from cnnviz.predict import load_pretrained
from cnnviz.runs import load_model

# Table columns in display order; filters and the CSV export use the same names.
TABLE_COLUMNS = (
    "id", "name", "student", "architecture", "dataset", "mode", "status", "best val acc", "time (s)", "params",
    "trainable params", "FLOPs", "options", "init", "best epoch", "epochs", "created", "note",
)
SEARCH_COLUMNS = ("name", "student", "architecture", "options", "dataset", "mode", "init", "status")
# What a curve can be drawn against (label -> cnnviz.charts.curves ``x``): wall time shows what speed costs.
CURVE_AXES = {"epoch": "epoch", "wall time": "wall"}
# Costs for the accuracy-against-cost scatter (label -> cnnviz.charts.cost_scatter ``cost``).
# "parameters" counts what training updates: a frozen backbone's weights cost nothing to learn.
COST_AXES = {"training time": "train_seconds", "trainable parameters": "trainable_params", "FLOPs per image": "flops"}
# Where two runs disagree, in teaching order: who was right?
DISAGREEMENT_KINDS = ("only A right", "only B right", "both wrong, differently")


def describe_options(options: dict[str, Any] | None) -> str:
    """Options as a short readable string: ``residual_1, no lrn, se_reduction=16``."""
    parts = []
    for key, value in sorted((options or {}).items()):
        if isinstance(value, bool):
            parts.append(key if value else f"no {key}")
        else:
            parts.append(f"{key}={value}")
    return ", ".join(parts)


def run_name(run: Any) -> str:
    """A run's own name, or ``resnet18 finetune`` for one never named."""
    return (run.name or "").strip() or f"{run.config.arch} {run.config.mode}"


def run_student(run: Any) -> str:
    """Who submitted ``run`` ("" when nobody is recorded)."""
    return (getattr(run, "student", "") or "").strip()


def whose(student: str) -> str:
    """`` · alice`` after a run's name, or nothing for a run of no student."""
    return f" · {student}" if student else ""


def run_label(run: Any) -> str:
    """How a run is named in pickers and legends: ``#3 resnet18 finetune · alice`` (its student, where
    known: a class trains the same default run thirty times)."""
    return f"#{run.id} {run_name(run)}{whose(run_student(run))}"


def _label_sets(dataset: str) -> tuple[str, ...]:
    try:
        return get_dataset_spec(dataset).label_sets
    except DatasetError:  # a run of a dataset this version does not know: show it as stored
        return ("fine",)


def _dataset_label(config: Any) -> str:
    """The dataset, with the labels it was trained on where it has several (``cifar100 (coarse)``); an
    uploaded one by its file's name (``pets.zip``)."""
    name = dataset_display_name(config.dataset, getattr(config, "data_path", None))
    if len(_label_sets(config.dataset)) > 1:
        return f"{name} ({config.labels})"
    return name


def _mode_label(config: Any) -> str:
    return f"probe @{config.probe_layer}" if config.mode == "probe" else config.mode


def _measured(value: Any) -> Any:
    """A count that was measured, else None: no network has 0 parameters, so 0 means never measured."""
    return value if value else None


def run_note(run: Any, epochs_done: int | None) -> str:
    """Why a failed or stopped run has no numbers (``failed before training``), else empty."""
    if run.status not in ("failed", "stopped", "interrupted"):
        return ""
    if not epochs_done:
        return f"{run.status} before training" if run.status == "failed" else f"{run.status} before its first epoch"
    return f"{run.status} after {epochs_done} epoch{'s' if epochs_done != 1 else ''}"


def runs_table(*, runs: Iterable[Any], epochs_done: dict[int, int] | None = None) -> pd.DataFrame:
    """One row per run with the columns of ``TABLE_COLUMNS`` (newest first); unmeasured counts are empty."""
    epochs_done = epochs_done or {}
    rows = []
    for run in runs:
        config = run.config
        done = epochs_done.get(int(run.id))
        rows.append({
            "id": int(run.id),
            "name": run_name(run),
            "student": run_student(run),
            "architecture": config.arch,
            "options": describe_options(config.options),
            "dataset": _dataset_label(config),
            "mode": _mode_label(config),
            "init": config.init,
            "status": run.status,
            "best val acc": run.best_val_acc,
            "best epoch": run.best_epoch,
            "epochs": epochs_done.get(int(run.id), config.epochs),
            "time (s)": run.train_seconds,
            "params": _measured(run.params),
            "trainable params": _measured(getattr(run, "trainable_params", None)),
            "FLOPs": _measured(run.flops),
            "created": pd.to_datetime(run.created_at, unit="s") if isinstance(run.created_at, (int, float)) else run.created_at,
            "note": run_note(run, done),
        })
    frame = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    for column in ("best val acc", "time (s)"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    for column in ("best epoch", "epochs", "params", "trainable params", "FLOPs"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("Int64")
    return frame.sort_values("id", ascending=False, ignore_index=True)


def filter_runs(
    table: pd.DataFrame,
    *,
    architectures: Sequence[str] = (),
    datasets: Sequence[str] = (),
    modes: Sequence[str] = (),
    statuses: Sequence[str] = (),
    text: str = "",
) -> pd.DataFrame:
    """Rows matching every non-empty filter; ``text`` matches words anywhere (``#id`` matches the id)."""
    keep = pd.Series(True, index=table.index)
    for column, allowed in (("architecture", architectures), ("dataset", datasets), ("mode", modes), ("status", statuses)):
        if allowed:
            keep &= table[column].isin(list(allowed))
    haystack = pd.Series("", index=table.index)
    for column in SEARCH_COLUMNS:
        haystack += " " + table[column].astype(str).str.lower()
    for word in text.lower().split():
        if word.startswith("#") and word[1:].isdigit():
            keep &= table["id"] == int(word[1:])
        else:
            keep &= haystack.str.contains(word, regex=False)
    return table[keep].reset_index(drop=True)


def filter_choices(table: pd.DataFrame) -> dict[str, list[str]]:
    """The values each multiselect filter can take, from the runs that exist."""
    return {column: sorted(table[column].dropna().unique().tolist()) for column in ("architecture", "dataset", "mode", "status")}


def table_csv(table: pd.DataFrame) -> str:
    """The runs table as CSV text (what the export button downloads)."""
    return table.to_csv(index=False)


def epochs_frame(*, epochs_by_run: dict[str, list[dict]]) -> pd.DataFrame:
    """The stored epoch rows of several runs in one frame with a ``run`` label column.

    This is what ``cnnviz.charts.curves`` overlays (by epoch, or by wall time
    from the running sum of each epoch's ``seconds``).
    """
    frames = [pd.DataFrame(rows).assign(run=label) for label, rows in epochs_by_run.items() if rows]
    if not frames:
        return pd.DataFrame(columns=["run", "epoch", "train_loss", "train_acc", "val_loss", "val_acc", "seconds"])
    frame = pd.concat(frames, ignore_index=True)
    # Nested values (per-layer gradient norms) are not curves and break the long format.
    frame = frame.drop(columns=[c for c in frame.columns if frame[c].map(lambda v: isinstance(v, (dict, list))).any()])
    return frame.sort_values(["run", "epoch"], ignore_index=True)


def cost_frame(table: pd.DataFrame) -> pd.DataFrame:
    """Runs with a best val accuracy, in the columns ``cnnviz.charts.cost_scatter`` reads.

    ``trainable_params`` falls back to all parameters where a run did not record it.
    """
    frame = table[table["best val acc"].notna()]
    params = frame["params"].astype("float64")
    return pd.DataFrame({
        "run": "#" + frame["id"].astype(str) + " " + frame["name"].astype(str),
        "architecture": frame["architecture"], "mode": frame["mode"], "dataset": frame["dataset"],
        "best_val_acc": frame["best val acc"], "train_seconds": frame["time (s)"],
        "params": params, "trainable_params": frame["trainable params"].astype("float64").fillna(params),
        "flops": frame["FLOPs"].astype("float64"),
    }).reset_index(drop=True)


def default_selection(table: pd.DataFrame, *, limit: int = 3, student: str = "") -> list[int]:
    """The runs Compare starts with: the newest finished runs of the newest run's dataset (never a mix),
    ``student``'s own where they have finished any."""
    if table.empty:
        return []
    newest = table.sort_values("id", ascending=False)
    finished = newest[newest["status"] == "finished"]
    own = finished[finished["student"] == student] if student else finished.iloc[:0]
    pool = own if not own.empty else finished if not finished.empty else newest
    dataset = pool.iloc[0]["dataset"]
    return [int(i) for i in pool[pool["dataset"] == dataset]["id"].head(limit)]


def common_chance(runs: Sequence[Any]) -> float | None:
    """Chance accuracy (1 / classes) when every run has the same number of classes, else None."""
    counts = {len(run.classes) for run in runs if getattr(run, "classes", None)}
    return 1.0 / counts.pop() if len(counts) == 1 else None


def first_comparable_pair(runs: Sequence[Any]) -> tuple[int, int]:
    """Positions of the first two runs that share a validation set, else ``(0, 1)``."""
    for i, run_a in enumerate(runs):
        for j in range(i + 1, len(runs)):
            if same_validation_set(run_a, runs[j])[0]:
                return i, j
    return 0, 1


def validation_key(config: Any) -> tuple:
    """What decides which images a run validated on, in which order."""
    return (config.dataset, config.data_path, config.labels, config.val_split, config.seed, config.val_subset,
            config.val_carve)


def same_validation_set(run_a: Any, run_b: Any) -> tuple[bool, str]:
    """Whether two runs' per-image predictions can be compared, and if not, why not."""
    if not run_a.val_predictions or not run_b.val_predictions:
        missing = run_a if not run_a.val_predictions else run_b
        return False, f"{run_label(missing)} has no saved per-image validation predictions (they are saved when a run ends)."
    a, b = run_a.config, run_b.config
    names = ("dataset", "data path", "labels", "validation split", "seed", "validation images per class",
             "validation carving")
    for name, value_a, value_b in zip(names, validation_key(a), validation_key(b)):
        if value_a != value_b:
            return False, (f"they validated on different images: {name} is {value_a!r} for {run_label(run_a)} "
                           f"but {value_b!r} for {run_label(run_b)}.")
    if list(run_a.classes or []) != list(run_b.classes or []):
        return False, "their class lists differ, so the same label number means different classes."
    if len(run_a.val_predictions) != len(run_b.val_predictions):
        return False, (f"their validation sets have different sizes ({len(run_a.val_predictions)} vs "
                       f"{len(run_b.val_predictions)} images).")
    return True, ""


def disagreement_frame(*, pred_a: Sequence[int], pred_b: Sequence[int], truth: Sequence[int],
                       classes: Sequence[str]) -> pd.DataFrame:
    """Validation images where two runs predict differently: index, true, A, B, kind."""
    rows = []
    for index, (a, b, t) in enumerate(zip(pred_a, pred_b, truth)):
        if a == b:
            continue
        kind = "only A right" if a == t else "only B right" if b == t else "both wrong, differently"
        rows.append({"index": index, "true": classes[t], "A says": classes[a], "B says": classes[b], "kind": kind})
    return pd.DataFrame(rows, columns=["index", "true", "A says", "B says", "kind"])


def agreement_counts(*, pred_a: Sequence[int], pred_b: Sequence[int], truth: Sequence[int]) -> dict[str, int]:
    """How many validation images fall in each case of (A right?, B right?, same answer?)."""
    counts = {"both right": 0, "only A right": 0, "only B right": 0, "both wrong, same answer": 0,
              "both wrong, differently": 0}
    for a, b, t in zip(pred_a, pred_b, truth):
        if a == t and b == t:
            counts["both right"] += 1
        elif a == t:
            counts["only A right"] += 1
        elif b == t:
            counts["only B right"] += 1
        else:
            counts["both wrong, same answer" if a == b else "both wrong, differently"] += 1
    return counts


# -- the models the Predict page compares on pictures --------------------------------------------

@dataclass(frozen=True)
class ModelChoice:
    """A model to predict with: a run's checkpoint (``run:<id>``) or ImageNet weights (``imagenet:<arch>``)."""

    key: str
    label: str
    version: float  # checkpoint file mtime: a retrained/replaced file is a new cache entry
    dataset: str | None = None  # what the model was trained on (None: ImageNet)
    knows: str = ""  # the classes it can answer, e.g. "knows: ants, bees"
    finished: bool = True
    student: str = ""  # whose run it is ("" for ImageNet weights and runs without one)


def model_choices(runs: Iterable[Any], *, pretrained: Iterable[tuple[str, float]] = ()) -> list[ModelChoice]:
    """Runs with a saved checkpoint (in the order given), then ``pretrained`` ``(arch, weights mtime)`` pairs."""
    choices = []
    for run in runs:
        path = Path(run.checkpoint) if run.checkpoint else None
        if path is None or not path.is_file():
            continue
        acc = f", val {run.best_val_acc:.0%}" if run.best_val_acc is not None else ""
        status = "" if run.status == "finished" else f", {run.status}"
        label = f"{run_label(run)} ({_dataset_label(run.config)}{acc}{status})"
        choices.append(ModelChoice(f"run:{run.id}", label, path.stat().st_mtime, dataset=run.config.dataset,
                                   knows=knows_text(run.classes or []), finished=run.status == "finished",
                                   student=run_student(run)))
    for arch, version in pretrained:
        choices.append(ModelChoice(f"imagenet:{arch}", f"{arch} (ImageNet-pretrained, 1000 classes)", version,
                                   knows="knows: 1000 ImageNet classes"))
    return choices


def knows_text(classes: Sequence[str], *, shown: int = 4) -> str:
    """``knows: ants, bees`` or ``knows: circle, cross, dots, ring, ... (10 classes)``."""
    names = [str(c) for c in classes]
    if not names:
        return ""
    if len(names) <= shown + 1:
        return "knows: " + ", ".join(names)
    return f"knows: {', '.join(names[:shown])}, ... ({len(names)} classes)"


def picture_datasets(names: Iterable[str]) -> list[str]:
    """The datasets sample pictures come from, by their ``<dataset>-<class>.jpg`` names (unknown names skipped)."""
    known = set(list_datasets())
    found = []
    for name in names:
        prefix = Path(name).stem.split("-", 1)[0]
        if prefix in known and prefix not in found:
            found.append(prefix)
    return found


def default_models(choices: Sequence[ModelChoice], *, datasets: Sequence[str] = (), student: str = "") -> list[str]:
    """Keys of the models Predict starts with: per dataset of the pictures, its newest finished run;
    with no such run (or no known dataset), the newest finished run; else the first choice.

    At each step ``student``'s own runs come first: in a class, the newest run is usually
    somebody else's.
    """
    ordered = sorted(choices, key=lambda c: not (student and c.student == student))  # stable: newest first kept
    picked = []
    for dataset in datasets:
        match = next((c for c in ordered if c.dataset == dataset and c.finished), None)
        if match is not None:
            picked.append(match.key)
    if picked:
        return picked
    newest = next((c for c in ordered if c.finished), ordered[0] if ordered else None)
    return [newest.key] if newest is not None else []


def load_choice(key: str):
    """``(model.eval(), payload)`` for a ``ModelChoice.key``."""
    kind, _, rest = key.partition(":")
    if kind == "run":
        return load_model(int(rest))
    if kind == "imagenet":
        return load_pretrained(rest)
    raise ValueError(f"unknown model key {key!r}; expected run:<id> or imagenet:<arch>")
