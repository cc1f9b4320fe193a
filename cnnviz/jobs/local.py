"""Background training jobs: submit a config, get a run id, poll the store.

One ``JobManager`` per process (``get_manager()``) runs at most one job per
device at a time in a daemon worker thread; the rest wait in order. It never
touches Streamlit: pages submit, then read progress from the run store, so a
rerun or a closed tab loses nothing. The interface is deliberately small
(``submit``, ``status``, ``stop``) so another executor could back it later.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from cnnviz.runs.store import RunNotFound, RunStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobStatus:
    """Where a run is: ``queued`` (with ``queue_position``, 1 = next), ``running`` or ``done``."""

    state: str
    queue_position: int | None = None
    device: str | None = None
    stopping: bool = False  # Stop was pressed; the run ends within one batch


@dataclass
class _Job:
    run_id: int
    config: object
    device: str
    stop: threading.Event = field(default_factory=threading.Event)


def device_key(config) -> str:
    """The device a config will train on, as a queue name (``cpu``, ``cuda:0``, ``mps``)."""
    from cnnviz.device import pick_device

    device = pick_device(config.device)
    return f"cuda:{device.index or 0}" if device.type == "cuda" else device.type


def _error_message(exc: BaseException) -> str:
    # ValueError/RuntimeError subclasses carry messages written for the user (DatasetUnavailable,
    # WeightsUnavailable, bad options); anything else is a bug, so name its type.
    text = str(exc).strip()
    if isinstance(exc, (ValueError, RuntimeError, OSError)) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def run_training(config, *, store: RunStore, run_id: int, stop: threading.Event | None = None,
                 callbacks: tuple = (), train_fn: Callable | None = None):
    """Train run ``run_id`` with its recorder and best-checkpoint writer attached, store the result; returns it.

    Used by the job worker and the command line alike. If training raises, the run is
    marked ``failed`` with the error's message and the exception propagates.
    """
    if train_fn is None:
        from cnnviz.training import train as train_fn  # torch: only when a run trains
    from cnnviz.training.callbacks import BestCheckpoint

    store.set_status(run_id, "running", "preparing data and model")
    best = BestCheckpoint(store.checkpoint_path(run_id), extra={"run_id": int(run_id)})
    recorder = store.recorder(run_id)  # after ``best``: it records the path ``best`` has just written
    try:
        try:
            result = train_fn(config, callbacks=(best, recorder, *callbacks), stop=stop)
        finally:
            recorder.flush()  # batch losses still buffered when training ended early
        store.record_end(run_id, result)
    except BaseException as exc:
        store.set_status(run_id, "failed", _error_message(exc))
        raise
    return result


class JobManager:
    """Runs submitted training configs in background threads, one job per device at a time."""

    def __init__(self, store: RunStore | None = None, *, train_fn: Callable | None = None,
                 device_of: Callable[[object], str] = device_key):
        self.store = store or RunStore()
        self.train_fn = train_fn
        self.device_of = device_of
        self._lock = threading.Condition()
        self._queues: dict[str, deque[_Job]] = {}
        self._running: dict[str, _Job] = {}
        self._workers: dict[str, threading.Thread] = {}

    def submit(self, config, *, name: str | None = None, **tags) -> int:
        """Queue ``config`` for training; returns the new run's id (stored as ``queued``, with ``tags``: see RunStore.create)."""
        device = self.device_of(config)  # a missing device is a ValueError before anything is stored
        with self._lock:
            # Creating under the lock keeps run ids in queue order when sessions submit at once.
            run_id = self.store.create(config, name=name, status="queued", **tags)
            self._queues.setdefault(device, deque()).append(_Job(run_id, config, device))
            if device not in self._workers:
                worker = threading.Thread(target=self._work, args=(device,), name=f"cnnviz-jobs-{device}", daemon=True)
                self._workers[device] = worker
                worker.start()
            self._lock.notify_all()
        return run_id

    def status(self, run_id: int) -> JobStatus:
        """Where run ``run_id`` is; runs this manager does not hold are read from the store."""
        with self._lock:
            for device, job in self._running.items():
                if job.run_id == run_id:
                    return JobStatus("running", None, device, job.stop.is_set())
            for device, queue in self._queues.items():
                for position, job in enumerate(queue, start=1):
                    if job.run_id == run_id:
                        return JobStatus("queued", position, device)
        try:
            run = self.store.get(run_id)
        except RunNotFound:
            return JobStatus("done")
        # Active in the store but not here: another process (a CLI run, another app) owns it.
        return JobStatus(run.status if run.active else "done")

    def stop(self, run_id: int) -> bool:
        """Stop a run: a queued one is removed and marked ``stopped``; a running one ends within one batch."""
        with self._lock:
            for job in self._running.values():
                if job.run_id == run_id:
                    job.stop.set()
                    return True
            for queue in self._queues.values():
                for job in queue:
                    if job.run_id == run_id:
                        queue.remove(job)
                        self.store.set_status(run_id, "stopped", "stopped before it started")
                        self._lock.notify_all()
                        return True
        return False

    def queue(self, device: str | None = None) -> list[int]:
        """Run ids waiting (on ``device``, or on every device), in the order they will start."""
        with self._lock:
            queues = [self._queues.get(device, deque())] if device else list(self._queues.values())
            return [job.run_id for queue in queues for job in queue]

    def running(self) -> list[int]:
        """Run ids training right now (one per busy device)."""
        with self._lock:
            return [job.run_id for job in self._running.values()]

    def wait(self, run_id: int, timeout: float | None = None) -> bool:
        """Block until run ``run_id`` has left this manager; False if ``timeout`` passed first."""
        with self._lock:
            return self._lock.wait_for(lambda: not self._holds(run_id), timeout=timeout)

    def _holds(self, run_id: int) -> bool:
        return any(j.run_id == run_id for j in self._running.values()) or any(
            j.run_id == run_id for q in self._queues.values() for j in q)

    def _work(self, device: str) -> None:
        while True:
            with self._lock:
                queue = self._queues.get(device)
                if not queue:
                    del self._workers[device]  # the next submit starts a fresh worker
                    return
                job = queue.popleft()
                self._running[device] = job
            try:
                run_training(job.config, store=self.store, run_id=job.run_id, stop=job.stop, train_fn=self.train_fn)
            except Exception:
                log.exception("run %s failed", job.run_id)
            except BaseException:  # e.g. SystemExit inside a train function: never kill the worker silently
                log.exception("run %s aborted", job.run_id)
            finally:
                with self._lock:
                    self._running.pop(device, None)
                    self._lock.notify_all()


_MANAGERS: dict[str, JobManager] = {}
_MANAGERS_LOCK = threading.Lock()


def get_manager(store: RunStore | None = None) -> JobManager:
    """The process-wide job manager for ``store`` (default: the store under ``CNNVIZ_HOME``)."""
    store = store or RunStore()
    key = str(store.path.resolve())
    with _MANAGERS_LOCK:
        if key not in _MANAGERS:
            _MANAGERS[key] = JobManager(store)
        return _MANAGERS[key]
