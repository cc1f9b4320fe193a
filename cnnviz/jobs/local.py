"""Training one claimed run in this process: ``run_training`` (shared by workers and the command line)
and ``LocalExecutor``, the worker's default way to train a run.

Nothing here touches Streamlit: pages submit runs to the store and read progress back from it.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from cnnviz.runs.store import Run, RunStore
from cnnviz.training.messages import error_text

log = logging.getLogger(__name__)

STOP_POLL_SECONDS = 0.25  # how often a stop request in the store is looked for (Stop ends within one batch)


def resume_point(store: RunStore, run_id: int):
    """The ``Checkpoint`` a run queued to resume continues from, or None (a fresh start)."""
    run = store.get(run_id)
    path = store.last_checkpoint_path(run_id)
    if run.resume_of is None or not path.is_file():
        return None
    from cnnviz.checkpoint import load_checkpoint  # torch: only when a run trains

    return load_checkpoint(path)


def run_training(config, *, store: RunStore, run_id: int, stop: threading.Event | None = None,
                 callbacks: tuple = (), train_fn: Callable | None = None):
    """Train run ``run_id`` with its recorder and checkpoint writers attached, store the result; returns it.

    The best epoch is saved at every improvement (``run-<id>.pt``) and the latest after every
    epoch (``run-<id>-last.pt``, removed once the run finishes), so a run queued to resume
    continues from its last saved epoch. Used by the workers and the command line alike. If
    training raises, the run is marked ``failed`` with the error's message and the exception propagates.
    """
    if train_fn is None:
        from cnnviz.training import train as train_fn  # torch: only when a run trains
    from cnnviz.training.callbacks import BestCheckpoint, LastCheckpoint

    resume_from = resume_point(store, run_id)
    store.set_status(run_id, "running", f"resuming after epoch {resume_from.epoch}" if resume_from
                     else "preparing data and model")
    best = BestCheckpoint(store.checkpoint_path(run_id), extra={"run_id": int(run_id)})
    last = LastCheckpoint(store.last_checkpoint_path(run_id), extra={"run_id": int(run_id)})
    recorder = store.recorder(run_id)  # after ``best``: it records the path ``best`` has just written
    extra = {"resume_from": resume_from} if resume_from is not None else {}
    try:
        try:
            result = train_fn(config, callbacks=(best, last, recorder, *callbacks), stop=stop, **extra)
        finally:
            recorder.flush()  # batch losses still buffered when training ended early
        if resume_from is not None:  # the time of the epochs before the resume counts too
            earlier = (resume_from.extra.get("resume") or {}).get("history") or []
            result.train_seconds += sum(float(r.get("seconds") or 0.0) for r in earlier)
        store.record_end(run_id, result)
    except BaseException as exc:
        store.set_status(run_id, "failed", error_text(exc))
        raise
    return result


class LocalExecutor:
    """Trains a claimed run in the worker's own process, ending it within one batch once Stop is asked."""

    kind = "local"

    def __init__(self, *, train_fn: Callable | None = None, poll_seconds: float = STOP_POLL_SECONDS):
        self.train_fn = train_fn
        self.poll_seconds = poll_seconds

    def run(self, run: Run, config, *, store: RunStore, should_stop: Callable[[], bool]) -> None:
        """Train ``run`` to its end, recording everything into ``store``."""
        stop, done = threading.Event(), threading.Event()

        def watch() -> None:
            while not done.wait(self.poll_seconds):
                try:
                    if should_stop():
                        stop.set()
                        return
                except Exception:  # noqa: BLE001 - a busy database: ask again next time
                    log.exception("could not read the stop request of run %s", run.id)

        watcher = threading.Thread(target=watch, name=f"cnnviz-stop-{run.id}", daemon=True)
        watcher.start()
        try:
            run_training(config, store=store, run_id=run.id, stop=stop, train_fn=self.train_fn)
        finally:
            done.set()
            watcher.join()
