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
from pathlib import Path
from typing import Iterator

from cnnviz.paths import home as default_home
from cnnviz.runs.rows import (  # noqa: F401  (Run, statuses and RunNotFound are re-exported: the store's API)
    ACTIVE, HEARTBEAT_TIMEOUT, RESUMABLE, RUN_CARD_FORMAT, STATUSES, Run, RunNotFound, _check_status,
    _float_or_none, _int_or_none, _json_or_none, _jsonable, _row_to_run, process_alive, process_token)
from cnnviz.runs.fairness import fair_order, usage_by_student as _usage

SCHEMA_VERSION = 1
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
        """Remove a run, its metrics and its checkpoint files (best and last epoch). A queued or running run
        must be stopped first."""
        run = self.get(run_id)
        if run.active and self._owner_alive(run_id):
            raise ValueError(f"run {run_id} is {run.status}; stop it before deleting it")
        with self._write() as conn:
            conn.execute("DELETE FROM epochs WHERE run_id=?", (run_id,))
            conn.execute("DELETE FROM batches WHERE run_id=?", (run_id,))
            conn.execute("DELETE FROM runs WHERE id=?", (run_id,))
        for path in self.checkpoint_files(run):
            path.unlink(missing_ok=True)

    def checkpoint_files(self, run: Run) -> set[Path]:
        """Where ``run``'s checkpoint files are or would be: its best weights (as recorded, and at the default
        path) and its last epoch, saved while it can resume. Some of them may not exist."""
        paths = {self.checkpoint_path(run.id), self.last_checkpoint_path(run.id)}
        return (paths | {Path(run.checkpoint)}) if run.checkpoint else paths

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
