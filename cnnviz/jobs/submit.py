"""Submitting, stopping and resuming runs: each is one write to the run store, which is the queue.

Workers (``cnnviz.jobs.worker``) claim the runs; pages and the command line only write here
and read the store back, so a closed tab, a restart or a crashed worker loses nothing queued.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnviz.runs.store import RESUMABLE, RunNotFound, RunStore


@dataclass(frozen=True)
class JobStatus:
    """Where a run is: ``queued`` (with ``queue_position``, 1 = next), ``running`` or ``done``."""

    state: str
    queue_position: int | None = None
    device: str | None = None
    stopping: bool = False  # Stop was pressed; the run ends within one batch


def submit(config, *, student: str, name: str | None = None, store: RunStore | None = None, **tags) -> int:
    """Validate ``config`` and queue it for the workers as ``student``'s run; returns the run id.

    ``tags`` are ``RunStore.create``'s experiment tags. A config the registries refuse raises
    ``ConfigError``, and one whose estimated peak memory is above the server's budget a
    ``ValueError`` saying what fits, before anything is stored.
    """
    from cnnviz.jobs.admission import check_admission
    from cnnviz.training.checks import validate_config  # the registries: torch

    validate_config(config)
    check_admission(config)
    store = store or RunStore()
    return store.create(config, name=name, status="queued", student=student or "", **tags)


def stop(run_id: int, *, store: RunStore | None = None) -> bool:
    """Stop a run: a queued one at once, a running one within one batch; False when it had already ended."""
    return (store or RunStore()).request_stop(run_id)


def resume(run_id: int, *, store: RunStore | None = None) -> int:
    """Queue a stopped, interrupted or failed run to continue from its last saved epoch; returns its id.

    The run keeps its id: it goes back to ``queued``, then ``running``, and its epochs carry on
    numbering where they stopped, with the optimiser, scheduler and random state it had.
    """
    store = store or RunStore()
    run = store.get(run_id)
    if run.status not in RESUMABLE:
        raise ValueError(f"run {run_id} is {run.status}; only a stopped, interrupted or failed run can resume")
    saved = store.last_checkpoint_path(run_id).is_file()
    done = len(store.epochs(run_id))
    store.requeue(run_id, message=f"queued to resume after epoch {done}" if saved and done
                  else "queued to start again (no epoch was saved)")
    return int(run_id)


def status(run_id: int, *, store: RunStore | None = None) -> JobStatus:
    """Where run ``run_id`` is, read from the store (``done`` for an ended or unknown run)."""
    store = store or RunStore()
    try:
        run = store.get(run_id)
    except RunNotFound:
        return JobStatus("done")
    if run.status == "queued":
        return JobStatus("queued", store.queue_position(run_id), run.config.device)
    if run.status == "running":
        return JobStatus("running", None, run.device, run.stop_requested)
    return JobStatus("done")


class StoreJobs:
    """``submit``/``status``/``stop`` bound to one store and student, for callers that take a job object."""

    def __init__(self, store: RunStore | None = None, *, student: str = ""):
        self.store = store or RunStore()
        self.student = student

    def submit(self, config, *, name: str | None = None, student: str | None = None, **tags) -> int:
        """Queue ``config`` (see ``submit``)."""
        return submit(config, student=self.student if student is None else student, name=name, store=self.store,
                      **tags)

    def status(self, run_id: int) -> JobStatus:
        """Where the run is (see ``status``)."""
        return status(run_id, store=self.store)

    def stop(self, run_id: int) -> bool:
        """Stop the run (see ``stop``)."""
        return stop(run_id, store=self.store)


def get_manager(store: RunStore | None = None, *, student: str = "") -> StoreJobs:
    """The store-backed jobs of ``store`` (default: the store under ``CNNVIZ_HOME``)."""
    return StoreJobs(store, student=student)
