"""The run store's rows as Python: the ``Run`` record, statuses, and the JSON/number helpers.

Split from ``store.py`` so the store itself holds only SQL: connections, the schema, writes and
the queue. No torch import here either (``TrainConfig`` is torch-free).
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATUSES = ("queued", "running", "finished", "stopped", "diverged", "failed", "interrupted")
ACTIVE = ("queued", "running")  # statuses that a living process still owns
RESUMABLE = ("stopped", "interrupted", "failed")  # a run that ended early can continue from its last epoch
HEARTBEAT_TIMEOUT = 30.0  # seconds without a heartbeat after which another machine's worker counts as dead
RUN_CARD_FORMAT = "cnnviz-run-card/1"


class RunNotFound(KeyError):
    """No run with that id in this store."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "run not found"


@dataclass
class Run:
    """One row of the store, with its JSON columns decoded.

    Timestamps are Unix seconds (``time.time()``); ``checkpoint`` is the path of
    the best checkpoint file, or None when the run saved none.
    """

    id: int
    name: str
    config: Any  # cnnviz.training.config.TrainConfig
    status: str
    message: str | None = None
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    train_seconds: float | None = None
    params: int | None = None
    flops: int | None = None
    classes: list[str] = field(default_factory=list)
    best_val_acc: float | None = None
    best_epoch: int | None = None
    confusion: list[list[int]] | None = None
    per_class_acc: list[float] | None = None
    checkpoint: str | None = None
    val_predictions: list[int] | None = None
    trainable_params: int | None = None
    image_size: int | None = None  # the side the run trained at (config.image_size may be None: automatic)
    device: str | None = None  # where it trained, e.g. "cpu" or "cuda:0"
    # Set when a guided experiment launched it: the experiment's key ("exp1"), the launch number,
    # the planned run's key ("alexnet-freeze") and the label it was planned with.
    experiment: str | None = None
    group: int | None = None
    run_key: str | None = None
    run_label: str | None = None
    student: str = ""  # who submitted it (the Train page's name, or --student / the OS user)
    worker: str | None = None  # "host:pid" of the worker that claimed it
    heartbeat_at: float | None = None  # the claiming worker's last sign of life
    stop_requested: bool = False  # Stop was pressed while it ran; the worker ends it within one batch
    resume_of: int | None = None  # queued to continue run <resume_of>'s last saved epoch (itself)
    executor: str | None = None  # "local" or "ray"
    # The test set, evaluated once at the end on the best-validation weights (None: none, or not yet).
    test_acc: float | None = None
    test_loss: float | None = None
    test_confusion: list[list[int]] | None = None
    splits: dict | None = None  # train/val/test: {"images": n, "from": words} (test None: the dataset has none)

    @property
    def label(self) -> str:
        """The name a page shows: the user's name, else ``run <id>``."""
        return self.name or f"run {self.id}"

    @property
    def active(self) -> bool:
        """Whether the run is still queued or running."""
        return self.status in ACTIVE

    def summary(self) -> dict[str, Any]:
        """A flat JSON-able row for tables (``runs list``, the Compare page)."""
        cfg = self.config
        return {
            "id": self.id, "name": self.label, "arch": cfg.arch, "options": cfg.options,
            "dataset": cfg.dataset, "mode": cfg.mode, "status": self.status, "message": self.message,
            "best_val_acc": self.best_val_acc, "best_epoch": self.best_epoch, "test_acc": self.test_acc,
            "epochs": cfg.epochs,
            "train_seconds": self.train_seconds, "params": self.params, "flops": self.flops,
            "image_size": self.image_size, "device": self.device, "created_at": self.created_at,
            "started_at": self.started_at, "finished_at": self.finished_at, "student": self.student,
            "worker": self.worker,
        }


def process_token(pid: int | None = None) -> str | None:
    """A string that differs between two processes that had the same pid (their start time).

    Read from ``/proc`` on Linux; None elsewhere, where only the pid is checked.
    """
    pid = os.getpid() if pid is None else pid
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime) comes after the parenthesised command name, which may hold spaces.
    return stat.rsplit(")", 1)[1].split()[19]


def process_alive(pid: int, token: str | None) -> bool:
    """Whether process ``pid`` still runs and is the same process that wrote ``token``."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        pass  # it exists but belongs to someone else
    if token is None:
        return True
    current = process_token(pid)
    return current is None or current == token


def _row_to_run(row: sqlite3.Row) -> Run:
    from cnnviz.training.config import TrainConfig

    return Run(
        id=row["id"], name=row["name"] or "", config=TrainConfig.from_json(row["config"]), status=row["status"],
        message=row["message"], created_at=row["created_at"], started_at=row["started_at"],
        finished_at=row["finished_at"], train_seconds=row["train_seconds"], params=row["params"],
        flops=row["flops"], classes=json.loads(row["classes"]) if row["classes"] else [],
        best_val_acc=row["best_val_acc"], best_epoch=row["best_epoch"],
        confusion=_loads(row["confusion"]), per_class_acc=_loads(row["per_class_acc"]),
        checkpoint=row["checkpoint"], val_predictions=_loads(row["val_predictions"]),
        trainable_params=row["trainable_params"], image_size=row["image_size"], device=row["device"],
        experiment=row["experiment"], group=row["experiment_group"], run_key=row["experiment_run"],
        run_label=row["experiment_label"], student=row["student"] or "", worker=row["worker"],
        heartbeat_at=row["heartbeat_at"], stop_requested=bool(row["stop_requested"]), resume_of=row["resume_of"],
        executor=row["executor"],
        test_acc=row["test_acc"], test_loss=row["test_loss"],
        test_confusion=_loads(row["test_confusion"]), splits=_loads(row["splits"]),
    )


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}; got {status!r}")


def _loads(text: str | None):
    return json.loads(text) if text else None


def _json_or_none(value) -> str | None:
    return None if value is None else json.dumps(_jsonable(value))


def _int_or_none(value) -> int | None:
    return None if value is None else int(value)


def _float_or_none(value) -> float | None:
    return None if value is None else float(value)


def _jsonable(value):
    """Plain Python for JSON: tensors/numpy scalars to numbers, NaN/inf to None (JSON has neither)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # torch/numpy scalars and arrays
        return _jsonable(value.tolist())
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    return value
