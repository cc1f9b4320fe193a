"""Worker processes: claim the fair next run from the store, train it through an executor, repeat.

    Worker(RunStore(), executor=LocalExecutor(), threads=2).run_forever()

A worker sends a heartbeat for the run it holds, sweeps runs whose worker died (marked
``interrupted``, their checkpoints kept) and, started by the app's pool, exits when the app
does. On SIGTERM the run it holds ends within one batch and is marked ``interrupted``, so
Resume continues it later.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from typing import Callable, Protocol

from cnnviz.runs.store import Run, RunStore

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0  # well under the store's HEARTBEAT_TIMEOUT
POLL_SECONDS = 0.5  # how often an idle worker looks for a queued run


class Executor(Protocol):
    """Something that trains a claimed run (in this process, or on a Ray cluster)."""

    def run(self, run: Run, config, *, store: RunStore, should_stop: Callable[[], bool]) -> None:
        """Train the claimed run to its end, recording everything into the store."""


def worker_name() -> str:
    """This process as a worker name: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def set_torch_threads(threads: int | None) -> None:
    """One torch thread pool per worker process, set once before any run (workers x threads <= cores)."""
    if not threads:
        return
    import torch

    torch.set_num_threads(int(threads))
    try:
        torch.set_num_interop_threads(max(1, int(threads)))
    except RuntimeError:  # already set, or parallel work already started: the intra-op count is what matters
        pass


class Worker:
    """Claims queued runs from ``store`` and trains each with ``executor``."""

    def __init__(self, store: RunStore, *, executor: Executor, threads: int | None = None, name: str | None = None,
                 exit_with_parent: bool = False, poll_seconds: float = POLL_SECONDS):
        self.store = store
        self.executor = executor
        self.threads = threads
        self.name = name or worker_name()
        self.poll_seconds = poll_seconds
        self.parent = os.getppid() if exit_with_parent else None
        self.terminating = False
        self._threads_set = False

    def run_once(self) -> bool:
        """Claim and train one run; False when none was waiting."""
        self.store.mark_interrupted()  # runs of workers that died: interrupted, checkpoints kept
        run = self.store.claim_next(self.name, executor=getattr(self.executor, "kind", "local"))
        if run is None:
            return False
        if not self._threads_set:  # at the first run, so an idle worker never loads torch
            set_torch_threads(self.threads)
            self._threads_set = True
        log.info("worker %s trains run %s", self.name, run.id)
        beating = threading.Event()
        beat = threading.Thread(target=self._beat, args=(run.id, beating), name=f"cnnviz-heartbeat-{run.id}",
                                daemon=True)
        beat.start()
        try:
            self.executor.run(run, run.config, store=self.store, should_stop=lambda: self.store.stop_requested(run.id))
        except KeyboardInterrupt:
            if not self.terminating:
                raise
        except Exception:  # noqa: BLE001 - the run is marked failed; the worker carries on with the next
            log.exception("run %s failed", run.id)
        finally:
            beating.set()
            beat.join()
            self._settle(run.id)
        return True

    def run_forever(self) -> None:
        """Train queued runs until SIGTERM, Ctrl-C or (``exit_with_parent``) the parent's exit."""
        previous = self._handle_sigterm()
        try:
            while not self.terminating and not self._orphaned():
                if not self.run_once():
                    time.sleep(self.poll_seconds)
        except KeyboardInterrupt:
            pass
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    # -- inside ----------------------------------------------------------------------------------

    def _beat(self, run_id: int, done: threading.Event) -> None:
        while not done.wait(HEARTBEAT_SECONDS):
            try:
                self.store.heartbeat(run_id, self.name)
            except Exception:  # noqa: BLE001 - a busy database: the next beat is soon
                log.exception("heartbeat of run %s failed", run_id)
            if self._orphaned():  # the app that started us is gone: end the run as on SIGTERM
                os.kill(os.getpid(), signal.SIGTERM)

    def _settle(self, run_id: int) -> None:
        """A run the executor left ``running`` (shut down, or an executor that crashed) is given its true status."""
        run = self.store.get(run_id)
        if self.terminating and run.status in ("running", "stopped") and not run.stop_requested:
            self.store.set_status(run_id, "interrupted", "the workers shut down while it trained (the app "
                                  "stopped); finished epochs and checkpoints are kept: Resume continues it")
        elif run.status == "running":
            self.store.set_status(run_id, "failed", "the executor ended without recording a result")

    def _orphaned(self) -> bool:
        return self.parent is not None and os.getppid() != self.parent

    def _handle_sigterm(self):
        def handler(signum, frame):
            if self.terminating:
                return
            self.terminating = True
            raise KeyboardInterrupt  # the loop treats it as Stop: the run ends within one batch

        try:
            return signal.signal(signal.SIGTERM, handler)
        except ValueError:  # not the main thread (a test): no handler
            return None
