"""The run store: one SQLite file (``<home>/runs.sqlite3``) plus checkpoint files.

Every page, the worker processes and the command line read and write runs through
``RunStore``; it is also the queue (``create`` a queued run, ``claim_next`` in a worker,
``request_stop``, ``heartbeat``). Many Streamlit sessions and several workers use it at the
same time, so each call opens its own short-lived connection (WAL journal,
``BEGIN IMMEDIATE`` for writes, a busy timeout) instead of sharing one.

No torch import here: listing runs must stay cheap.
"""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from cnnviz.paths import home as default_home
from cnnviz.runs.fairness import NOMINAL_RUN_SECONDS, fair_order, usage_by_student as _usage

SCHEMA_VERSION = 1
STATUSES = ("queued", "running", "finished", "stopped", "diverged", "failed", "interrupted")
ACTIVE = ("queued", "running")  # statuses that a living process still owns
RESUMABLE = ("stopped", "interrupted", "failed")  # a run that ended early can continue from its last epoch
HEARTBEAT_TIMEOUT = 30.0  # seconds without a heartbeat after which another machine's worker counts as dead
RUN_CARD_FORMAT = "cnnviz-run-card/1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL DEFAULT '',
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    message TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    train_seconds REAL,
    params INTEGER,
    flops INTEGER,
    classes TEXT,
    best_val_acc REAL,
    best_epoch INTEGER,
    confusion TEXT,
    per_class_acc TEXT,
    val_predictions TEXT,
    checkpoint TEXT,
    trainable_params INTEGER,
    image_size INTEGER,
    device TEXT,
    owner_host TEXT,
    owner_pid INTEGER,
    owner_token TEXT,
    experiment TEXT,
    experiment_group INTEGER,
    experiment_run TEXT,
    experiment_label TEXT,
    student TEXT NOT NULL DEFAULT '',
    worker TEXT,
    heartbeat_at REAL,
    stop_requested INTEGER NOT NULL DEFAULT 0,
    resume_of INTEGER,
    executor TEXT,
    test_acc REAL,
    test_loss REAL,
    test_confusion TEXT,
    splits TEXT
);
CREATE TABLE IF NOT EXISTS epochs (
    run_id INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    train_loss REAL, train_acc REAL, val_loss REAL, val_acc REAL, seconds REAL,
    row TEXT NOT NULL,
    PRIMARY KEY (run_id, epoch)
);
CREATE TABLE IF NOT EXISTS batches (
    run_id INTEGER NOT NULL,
    step INTEGER NOT NULL,
    epoch INTEGER,
    loss REAL,
    PRIMARY KEY (run_id, step)
);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status);
"""

# Databases already created/checked in this process, and those whose crashed runs were
# already swept: both happen once per process per file, not once per RunStore().
_READY: set[str] = set()
_SWEPT: set[str] = set()
_INIT_LOCK = threading.Lock()
_WRITE_LOCKS: dict[str, threading.Lock] = {}


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


class RunStore:
    """Runs, their per-epoch metrics and per-batch losses, in ``<home>/runs.sqlite3``."""

    def __init__(self, home: Path | str | None = None):
        self.home = Path(home) if home is not None else default_home()
        self.home.mkdir(parents=True, exist_ok=True)
        self.path = self.home / "runs.sqlite3"
        self.checkpoint_dir = self.home / "checkpoints"
        key = str(self.path.resolve())
        with _INIT_LOCK:
            self._write_lock = _WRITE_LOCKS.setdefault(key, threading.Lock())
            if key not in _READY:
                self._create_schema()
                _READY.add(key)
            first_open = key not in _SWEPT
            _SWEPT.add(key)
        if first_open:
            self.mark_interrupted()

    # -- connections -------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA synchronous = NORMAL")  # safe with WAL; a crash loses at most the last commit
        return conn

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        # BEGIN IMMEDIATE takes the write lock up front, so two writers never deadlock
        # upgrading a read transaction; the in-process lock saves busy-waiting between threads.
        with self._write_lock:
            conn = self._connect()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            finally:
                conn.close()

    def _create_schema(self) -> None:
        conn = self._connect()
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path} was written by a newer cnnviz (schema {version}, this one reads {SCHEMA_VERSION}); "
                    "upgrade cnnviz or set CNNVIZ_HOME to another folder")
            conn.executescript(_SCHEMA)
            _add_missing_columns(conn)
            # Migrations that change existing columns go here: `if version < 2: ...`.
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        finally:
            conn.close()

    # -- runs ------------------------------------------------------------------------------

    def create(self, config, *, name: str | None = None, status: str = "queued", student: str = "",
               experiment: str | None = None, group: int | None = None, label: str | None = None,
               run_key: str | None = None) -> int:
        """Add a run for ``config`` (submitted by ``student``), owned by this process; returns its id.

        A ``queued`` run waits for a worker (``claim_next``); ``running`` means this process trains it
        itself (the command line's ``train``). ``experiment``, ``group``, ``run_key`` and ``label`` tag a
        run launched as part of a guided experiment's group, so the group is found again from the store alone.
        """
        _check_status(status)
        name = name if name is not None else (getattr(config, "name", "") or "")
        now = time.time()
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO runs (name, config, status, created_at, started_at, owner_host, owner_pid, owner_token, "
                "experiment, experiment_group, experiment_run, experiment_label, student) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (name, config.to_json(), status, now, now if status == "running" else None, socket.gethostname(),
                 os.getpid(), process_token(), experiment, _int_or_none(group), run_key, label, student or ""))
            return int(cur.lastrowid)

    def get(self, run_id: int) -> Run:
        """The run ``run_id``, or ``RunNotFound``."""
        with self._read() as conn:
            row = conn.execute("SELECT * FROM runs WHERE id = ?", (int(run_id),)).fetchone()
        if row is None:
            raise RunNotFound(f"no run {run_id} in {self.path}")
        return _row_to_run(row)

    def list(self, status: str | tuple[str, ...] | None = None) -> list[Run]:
        """All runs, newest first; only those with ``status`` (one or several) when given."""
        query, args = "SELECT * FROM runs", ()
        if status is not None:
            statuses = (status,) if isinstance(status, str) else tuple(status)
            query += f" WHERE status IN ({','.join('?' * len(statuses))})"
            args = statuses
        with self._read() as conn:
            rows = conn.execute(query + " ORDER BY id DESC", args).fetchall()
        return [_row_to_run(r) for r in rows]

    def set_status(self, run_id: int, status: str, message: str | None = None) -> None:
        """Change a run's status; entering ``running`` stamps the start, leaving it the finish."""
        _check_status(status)
        now = time.time()
        with self._write() as conn:
            if status == "running":
                conn.execute(
                    "UPDATE runs SET status=?, message=?, started_at=COALESCE(started_at, ?), "
                    "owner_host=?, owner_pid=?, owner_token=? WHERE id=?",
                    (status, message, now, socket.gethostname(), os.getpid(), process_token(), run_id))
            elif status in ACTIVE:
                conn.execute("UPDATE runs SET status=?, message=? WHERE id=?", (status, message, run_id))
            else:
                conn.execute("UPDATE runs SET status=?, message=?, finished_at=COALESCE(finished_at, ?) WHERE id=?",
                             (status, message, now, run_id))

    def record_start(self, run_id: int, *, params: int | None, flops: int | None, classes: list[str],
                     trainable_params: int | None = None, image_size: int | None = None,
                     device: str | None = None) -> None:
        """The run began training: its size, its classes, where it runs; status ``running``."""
        now = time.time()
        with self._write() as conn:
            conn.execute(
                "UPDATE runs SET status='running', message=NULL, started_at=COALESCE(started_at, ?), params=?, "
                "flops=?, classes=?, trainable_params=?, image_size=?, device=?, owner_host=?, owner_pid=?, "
                "owner_token=? WHERE id=?",
                (now, _int_or_none(params), _int_or_none(flops), json.dumps(list(classes or [])),
                 _int_or_none(trainable_params), _int_or_none(image_size), device or None,
                 socket.gethostname(), os.getpid(), process_token(), run_id))

    def record_epoch(self, run_id: int, row: dict) -> None:
        """Store one finished epoch's metrics (a repeated epoch replaces the earlier row)."""
        row = _jsonable(row)
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO epochs (run_id, epoch, train_loss, train_acc, val_loss, val_acc, seconds, row) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, int(row["epoch"]), row.get("train_loss"), row.get("train_acc"), row.get("val_loss"),
                 row.get("val_acc"), row.get("seconds"), json.dumps(row)))

    def epochs(self, run_id: int) -> list[dict]:
        """The run's epoch rows, in order."""
        with self._read() as conn:
            rows = conn.execute("SELECT row FROM epochs WHERE run_id=? ORDER BY epoch", (run_id,)).fetchall()
        return [json.loads(r["row"]) for r in rows]

    def record_batches(self, run_id: int, rows: list[tuple]) -> None:
        """Append per-batch losses: ``(step, loss)`` or ``(step, loss, epoch)`` tuples."""
        if not rows:
            return
        values = [(run_id, int(r[0]), int(r[2]) if len(r) > 2 and r[2] is not None else None, _float_or_none(r[1]))
                  for r in rows]
        with self._write() as conn:
            conn.executemany("INSERT OR REPLACE INTO batches (run_id, step, epoch, loss) VALUES (?, ?, ?, ?)", values)

    def batches(self, run_id: int, *, since_step: int = 0) -> list[dict]:
        """Per-batch losses ``{step, epoch, loss}`` after ``since_step``, in order (the live loss trace)."""
        with self._read() as conn:
            rows = conn.execute("SELECT step, epoch, loss FROM batches WHERE run_id=? AND step>? ORDER BY step",
                                (run_id, since_step)).fetchall()
        return [dict(r) for r in rows]

    def record_end(self, run_id: int, result) -> None:
        """Store a finished ``RunResult``: status, timings, results, every epoch, the best checkpoint."""
        checkpoint = None
        payload = getattr(result, "checkpoint", None)
        if payload:
            path = self.checkpoint_path(run_id)
            if not path.is_file():  # a BestCheckpoint callback wrote it already, with the optimiser state
                from cnnviz.checkpoint import save_checkpoint  # torch only when there is something to save

                save_checkpoint({**payload, "run_id": int(run_id)}, path)
            checkpoint = str(path)
        for row in getattr(result, "epochs", None) or []:
            self.record_epoch(run_id, row)
        classes = getattr(result, "classes", None)
        with self._write() as conn:
            conn.execute(
                "UPDATE runs SET status=?, message=?, finished_at=?, train_seconds=?, params=COALESCE(?, params), "
                "flops=COALESCE(?, flops), classes=COALESCE(?, classes), best_val_acc=?, best_epoch=?, confusion=?, "
                "per_class_acc=?, val_predictions=?, checkpoint=COALESCE(?, checkpoint), "
                "trainable_params=COALESCE(?, trainable_params), image_size=COALESCE(?, image_size), test_acc=?, "
                "test_loss=?, test_confusion=?, splits=? WHERE id=?",
                (result.status, getattr(result, "message", None), time.time(),
                 _float_or_none(getattr(result, "train_seconds", None)),
                 _int_or_none(getattr(result, "params", None)), _int_or_none(getattr(result, "flops", None)),
                 json.dumps(list(classes)) if classes else None,
                 _float_or_none(getattr(result, "best_val_acc", None)),
                 _int_or_none(getattr(result, "best_epoch", None)),
                 _json_or_none(getattr(result, "confusion", None)),
                 _json_or_none(getattr(result, "per_class_acc", None)),
                 _json_or_none(getattr(result, "val_predictions", None)), checkpoint,
                 _int_or_none(getattr(result, "trainable_params", None) or None),
                 _int_or_none(getattr(result, "image_size", None) or None),
                 _float_or_none(getattr(result, "test_acc", None)), _float_or_none(getattr(result, "test_loss", None)),
                 _json_or_none(getattr(result, "test_confusion", None)),
                 _json_or_none(getattr(result, "splits", None) or None), run_id))

    def record_checkpoint(self, run_id: int, path: Path | str, *, best_epoch: int | None = None,
                          best_val_acc: float | None = None) -> None:
        """A best checkpoint was written to ``path`` (during training: a killed run still points to it)."""
        with self._write() as conn:
            conn.execute("UPDATE runs SET checkpoint=?, best_epoch=COALESCE(?, best_epoch), "
                         "best_val_acc=COALESCE(?, best_val_acc) WHERE id=?",
                         (str(path), _int_or_none(best_epoch), _float_or_none(best_val_acc), run_id))

    def checkpoint_path(self, run_id: int) -> Path:
        """Where run ``run_id``'s best checkpoint lives (``<home>/checkpoints/run-<id>.pt``)."""
        return self.checkpoint_dir / f"run-{int(run_id)}.pt"

    def rename(self, run_id: int, name: str) -> None:
        """Give run ``run_id`` a new display name."""
        self.get(run_id)
        with self._write() as conn:
            conn.execute("UPDATE runs SET name=? WHERE id=?", (name.strip(), run_id))

    def delete(self, run_id: int) -> None:
        """Remove a run, its metrics and its checkpoint file. A queued or running run must be stopped first."""
        run = self.get(run_id)
        if run.active and self._owner_alive(run_id):
            raise ValueError(f"run {run_id} is {run.status}; stop it before deleting it")
        with self._write() as conn:
            conn.execute("DELETE FROM epochs WHERE run_id=?", (run_id,))
            conn.execute("DELETE FROM batches WHERE run_id=?", (run_id,))
            conn.execute("DELETE FROM runs WHERE id=?", (run_id,))
        for path in {self.checkpoint_path(run_id), Path(run.checkpoint) if run.checkpoint else None} - {None}:
            path.unlink(missing_ok=True)

    def export_csv(self, run_id: int) -> str:
        """The run's epochs as CSV text (one row per epoch; nested values as JSON)."""
        self.get(run_id)
        rows = self.epochs(run_id)
        columns: list[str] = []
        for row in rows:
            columns += [k for k in row if k not in columns]
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns or ["epoch"], lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in row.items()})
        return out.getvalue()

    def run_card(self, run_id: int) -> dict:
        """Everything about a run as one JSON-able dict: config, per-epoch rows and results."""
        run = self.get(run_id)
        return {
            "format": RUN_CARD_FORMAT,
            "id": run.id,
            "name": run.label,
            "status": run.status,
            "message": run.message,
            "created_at": run.created_at,
            "started_at": run.started_at,
            "finished_at": run.finished_at,
            "config": run.config.to_dict(),
            "epochs": self.epochs(run_id),
            "results": {
                "best_val_acc": run.best_val_acc, "best_epoch": run.best_epoch, "train_seconds": run.train_seconds,
                "params": run.params, "trainable_params": run.trainable_params, "flops": run.flops,
                "image_size": run.image_size, "device": run.device, "classes": run.classes,
                "confusion": run.confusion, "per_class_acc": run.per_class_acc,
                "test_acc": run.test_acc, "test_loss": run.test_loss, "test_confusion": run.test_confusion,
                "splits": run.splits,
            },
            "checkpoint": Path(run.checkpoint).name if run.checkpoint else None,
        }

    # -- the queue ------------------------------------------------------------------------------

    def claim_next(self, worker: str, *, devices: tuple[str, ...] | list[str] | None = None,
                   executor: str = "local") -> Run | None:
        """Take the fair next queued run for ``worker`` ("host:pid") and mark it running; None when none waits.

        Atomic under ``BEGIN IMMEDIATE``: two workers never claim the same run. ``devices`` limits
        the claim to runs whose config asks for one of those devices (``auto``, ``cpu``, ``cuda``...).
        """
        now = time.time()
        with self._write() as conn:
            rows = conn.execute("SELECT id, student, created_at, config FROM runs WHERE status='queued'").fetchall()
            if devices is not None:
                wanted = set(devices)
                rows = [r for r in rows if json.loads(r["config"]).get("device", "auto") in wanted]
            order = fair_order([(r["id"], r["student"], r["created_at"]) for r in rows], _usage(conn, now, 3600.0))
            if not order:
                return None
            run_id = order[0]
            conn.execute(
                "UPDATE runs SET status='running', message='claimed by a worker', worker=?, executor=?, "
                "heartbeat_at=?, started_at=CASE WHEN resume_of IS NULL THEN COALESCE(started_at, ?) ELSE ? END, "
                "stop_requested=0, owner_host=?, owner_pid=?, owner_token=? WHERE id=? AND status='queued'",
                (worker, executor, now, now, now, socket.gethostname(), os.getpid(), process_token(), run_id))
            row = conn.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        return _row_to_run(row)

    def heartbeat(self, run_id: int, worker: str) -> None:
        """The worker that claimed ``run_id`` is alive (stamped only while that worker holds it)."""
        with self._write() as conn:
            conn.execute("UPDATE runs SET heartbeat_at=? WHERE id=? AND worker=?", (time.time(), int(run_id), worker))

    def request_stop(self, run_id: int) -> bool:
        """Stop a run: a queued one becomes ``stopped`` at once, a running one is asked to end within one batch.

        False when the run had already ended; ``RunNotFound`` when there is no such run.
        """
        with self._write() as conn:
            row = conn.execute("SELECT status FROM runs WHERE id=?", (int(run_id),)).fetchone()
            if row is None:
                raise RunNotFound(f"no run {run_id} in {self.path}")
            if row["status"] == "queued":
                conn.execute("UPDATE runs SET status='stopped', message='stopped before it started', "
                             "finished_at=COALESCE(finished_at, ?) WHERE id=?", (time.time(), int(run_id)))
                return True
            if row["status"] == "running":
                conn.execute("UPDATE runs SET stop_requested=1 WHERE id=?", (int(run_id),))
                return True
        return False

    def stop_requested(self, run_id: int) -> bool:
        """Whether Stop was pressed for ``run_id`` while it runs."""
        with self._read() as conn:
            row = conn.execute("SELECT stop_requested FROM runs WHERE id=?", (int(run_id),)).fetchone()
        return bool(row and row["stop_requested"])

    def queue(self) -> list[Run]:
        """The queued runs in the order they will start (fair share between students, see ``fair_order``)."""
        with self._read() as conn:
            rows = {r["id"]: r for r in conn.execute("SELECT * FROM runs WHERE status='queued'").fetchall()}
            usage = _usage(conn, time.time(), 3600.0)
        order = fair_order([(r["id"], r["student"], r["created_at"]) for r in rows.values()], usage)
        return [_row_to_run(rows[i]) for i in order]

    def queue_position(self, run_id: int) -> int | None:
        """Where a queued run stands in line (1 = next), or None when it is not queued."""
        ids = [r.id for r in self.queue()]
        return ids.index(int(run_id)) + 1 if int(run_id) in ids else None

    def student_usage(self, since_seconds: float = 3600.0) -> dict[str, float]:
        """Seconds of training per student in the last ``since_seconds`` (running runs by their elapsed time)."""
        with self._read() as conn:
            return _usage(conn, time.time(), since_seconds)

    def requeue(self, run_id: int, *, message: str = "queued to resume") -> None:
        """Put a stopped, interrupted or failed run back in the queue to continue from its last saved epoch."""
        with self._write() as conn:
            row = conn.execute("SELECT status FROM runs WHERE id=?", (int(run_id),)).fetchone()
            if row is None:
                raise RunNotFound(f"no run {run_id} in {self.path}")
            if row["status"] not in RESUMABLE:
                raise ValueError(f"run {run_id} is {row['status']}; only a {', '.join(RESUMABLE)} run can resume")
            conn.execute("UPDATE runs SET status='queued', message=?, finished_at=NULL, stop_requested=0, "
                         "resume_of=id, worker=NULL, heartbeat_at=NULL, owner_host=?, owner_pid=?, owner_token=? "
                         "WHERE id=?", (message, socket.gethostname(), os.getpid(), process_token(), int(run_id)))

    def last_checkpoint_path(self, run_id: int) -> Path:
        """Where run ``run_id``'s latest epoch is saved while it trains (``run-<id>-last.pt``), to resume from."""
        return self.checkpoint_dir / f"run-{int(run_id)}-last.pt"

    # -- crash recovery ------------------------------------------------------------------------

    def _owner_alive(self, run_id: int) -> bool:
        with self._read() as conn:
            row = conn.execute("SELECT owner_host, owner_pid, owner_token, heartbeat_at FROM runs WHERE id=?",
                               (run_id,)).fetchone()
        return row is not None and _owner_row_alive(row)

    def mark_interrupted(self) -> int:
        """Mark running runs whose process no longer exists as ``interrupted``; returns the count.

        Dead means: on this machine, the owning pid is gone (or reused by another program); on
        another machine, its worker has not sent a heartbeat for ``HEARTBEAT_TIMEOUT`` seconds.
        Their finished epochs and best checkpoint stay. Queued runs wait for a worker, however
        long: the store is the queue, so a restart loses none of them.
        """
        with self._read() as conn:
            rows = conn.execute("SELECT id, status, owner_host, owner_pid, owner_token, heartbeat_at FROM runs "
                                "WHERE status='running'").fetchall()
        dead = [r for r in rows if not _owner_row_alive(r)]
        if not dead:
            return 0
        now = time.time()
        with self._write() as conn:
            for r in dead:
                conn.execute(
                    "UPDATE runs SET status='interrupted', message=?, stop_requested=0, "
                    "finished_at=COALESCE(finished_at, ?) WHERE id=? AND status='running'",
                    ("the process that ran it stopped while it was running; finished epochs are kept, and "
                     "the best checkpoint (Resume continues it)", now, r["id"]))
        return len(dead)

    def recorder(self, run_id: int, *, flush_seconds: float = 0.5, flush_batches: int = 50):
        """A training ``Callback`` that writes this run's start, batches, epochs and end into the store."""
        from cnnviz.runs.recorder import StoreRecorder  # imports cnnviz.training, so torch: only when training

        return StoreRecorder(self, run_id, flush_seconds=flush_seconds, flush_batches=flush_batches)


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    """Add columns that a newer schema declares but an existing file lacks (additive changes need no version)."""
    wanted = sqlite3.connect(":memory:")
    try:
        wanted.executescript(_SCHEMA)
        for table in ("runs", "epochs", "batches"):
            have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
            for _, name, kind, *_ in wanted.execute(f"PRAGMA table_info({table})"):
                if name not in have:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
    finally:
        wanted.close()


def _owner_row_alive(row: sqlite3.Row) -> bool:
    if row["owner_host"] and row["owner_host"] != socket.gethostname():
        # Another machine: only its worker's heartbeat tells; a run without one is left alone.
        beat = row["heartbeat_at"] if "heartbeat_at" in row.keys() else None
        return beat is None or time.time() - beat < HEARTBEAT_TIMEOUT
    if row["owner_pid"] is None:
        return False
    return process_alive(int(row["owner_pid"]), row["owner_token"])


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
