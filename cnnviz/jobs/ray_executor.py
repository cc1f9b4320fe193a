"""Training on a Ray cluster: each claimed run becomes one Ray task; the store stays with the app.

    python -m cnnviz worker --executor ray --address ray://head:10001    (or CNNVIZ_EXECUTOR=ray, RAY_ADDRESS)

The task is a thin shell around ``cnnviz.training.train``: a callback relays the loop's events
(the start info, batch losses, epoch rows, the best checkpoint's bytes at each improvement) through
a ``ray.util.queue.Queue``; on this side they go through the store's own recorder, the same code
path as a local run, and the checkpoint is written atomically where the app reads it, so the
cluster needs no shared disk. Stop travels the other way through a second queue, which the task
reads between batches and answers with the loop's own ``StopTraining``: the run ends ``stopped``
within about a second, with its epochs and best checkpoint. A task that does not answer within
``CANCEL_AFTER_SECONDS`` (busy outside the batch loop) is cancelled with ``ray.cancel``, which raises
KeyboardInterrupt in it; the loop treats that as Stop too. (``ray.cancel`` alone was not enough: a
test on a loaded machine saw a cancelled 30-epoch run train to its end.)

Ray is optional (``pip install -r requirements-ray.txt``) and imported only when a run is handed
over. The cluster's nodes need cnnviz and its requirements installed, and their own data folder.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

from cnnviz.runs.store import Run, RunStore

POLL_SECONDS = 0.2  # how often the app side drains events and asks whether Stop was pressed
FLUSH_SECONDS = 0.5  # batch losses travel in bundles, not one queue call per batch; Stop is read as often
CANCEL_AFTER_SECONDS = 15.0  # Stop unanswered this long: ray.cancel the task
RESULT_FIELDS = ("status", "message", "epochs", "best_val_acc", "best_epoch", "train_seconds", "params", "flops",
                 "classes", "confusion", "per_class_acc", "val_predictions", "trainable_params", "image_size")


def _ray():
    try:
        import ray
    except ImportError:
        raise RuntimeError("the Ray executor needs Ray: pip install -r requirements-ray.txt") from None
    return ray


def wants_ray(env: dict | None = None) -> bool:
    """Whether ``CNNVIZ_EXECUTOR=ray`` asks for this executor."""
    return (env if env is not None else os.environ).get("CNNVIZ_EXECUTOR", "").strip().lower() == "ray"


def write_atomically(data: bytes, path: Path) -> Path:
    """Write ``data`` to ``path`` as ``save_checkpoint`` does: a temp file in the same folder, fsync, replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# -- the cluster side ---------------------------------------------------------------------------


def _relay_callback(queue, checkpoint_file: Path, control):
    """A training callback that puts the loop's events into ``queue`` and ends the run with ``StopTraining``
    once the app puts anything into ``control`` (built in the task: torch is there)."""
    from cnnviz.training.callbacks import Callback, StopTraining

    ray = _ray()

    class RelayEvents(Callback):
        def before_fit(self, state) -> None:
            self.batches: list[tuple] = []
            self.flushed = self.checked = time.monotonic()
            info = {name: getattr(state, name, None) for name in
                    ("params", "flops", "classes", "trainable_params", "image_size", "device")}
            info["device"] = f"{state.device} on {socket.gethostname()}"  # which node of the cluster
            queue.put(("before_fit", info))

        def after_batch(self, state) -> None:
            self.batches.append((state.loss, state.epoch))
            if time.monotonic() - self.flushed >= FLUSH_SECONDS:
                self.flush()
            if time.monotonic() - self.checked >= FLUSH_SECONDS:
                self.check_stop()

        def after_epoch(self, state) -> None:
            self.flush()
            improved = state.checkpoint_file is not None and state.best_epoch == state.epoch
            # A reference in a list travels as a reference; the app side fetches the bytes.
            weights = [ray.put(checkpoint_file.read_bytes())] if improved else None
            queue.put(("after_epoch", {"row": dict(state.history[-1]), "best_epoch": state.best_epoch,
                                       "best_val_acc": state.best_val_acc, "checkpoint": weights}))
            self.check_stop()  # epochs shorter than the batch timer are checked here

        def after_fit(self, state) -> None:
            self.flush()
            result = state.result
            queue.put(("after_fit", {name: getattr(result, name, None) for name in RESULT_FIELDS}))

        def check_stop(self) -> None:
            self.checked = time.monotonic()
            if not control.empty():
                raise StopTraining

        def flush(self) -> None:
            if getattr(self, "batches", None):
                queue.put(("batches", self.batches))
                self.batches, self.flushed = [], time.monotonic()

    return RelayEvents()


def train_in_task(config_json: str, run_id: int, queue, control) -> dict[str, Any]:
    """The Ray task: train the config with the relay and a best-checkpoint writer; returns the last best bytes.

    Anything put into ``control`` stops the run at the next bundle of batches."""
    from cnnviz.training import train
    from cnnviz.training.callbacks import BestCheckpoint
    from cnnviz.training.config import TrainConfig

    folder = Path(tempfile.mkdtemp(prefix=f"cnnviz-run-{run_id}-"))
    try:
        checkpoint_file = folder / "best.pt"
        best = BestCheckpoint(checkpoint_file, extra={"run_id": int(run_id)})
        result = train(TrainConfig.from_json(config_json), callbacks=(best, _relay_callback(queue, checkpoint_file, control)))
        data = checkpoint_file.read_bytes() if checkpoint_file.is_file() else None
        return {"best_epoch": result.best_epoch, "checkpoint": data}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -- the app side -------------------------------------------------------------------------------


class _Receiver:
    """Applies relayed events to the store through its recorder; writes checkpoint bytes where the app reads."""

    def __init__(self, store: RunStore, run_id: int):
        self.store, self.run_id = store, int(run_id)
        self.recorder = store.recorder(run_id)
        self.path = store.checkpoint_path(run_id)
        self.history: list[dict] = []
        self.written_epoch: int | None = None
        self.result: dict | None = None

    def apply(self, event: str, data: Any) -> None:
        if event == "before_fit":  # again after an out-of-memory retry: the history starts over
            self.history = []
            self.recorder.before_fit(SimpleNamespace(**data))
        elif event == "batches":
            for loss, epoch in data:
                self.recorder.after_batch(SimpleNamespace(loss=loss, epoch=epoch))
        elif event == "after_epoch":
            self.history.append(data["row"])
            if data["checkpoint"]:
                self.write_checkpoint(_ray().get(data["checkpoint"][0]), data["best_epoch"])
            self.recorder.after_epoch(SimpleNamespace(
                history=self.history, best_epoch=data["best_epoch"], best_val_acc=data["best_val_acc"],
                checkpoint_file=str(self.path) if self.written_epoch is not None else None))
        elif event == "after_fit":
            self.recorder.after_fit(None)
            self.result = data

    def write_checkpoint(self, data: bytes | None, epoch: int | None) -> None:
        if data and epoch is not None and epoch != self.written_epoch:
            write_atomically(data, self.path)
            self.written_epoch = epoch
            self.store.record_checkpoint(self.run_id, self.path, best_epoch=epoch)

    def finish(self, returned: dict | None) -> None:
        """Store the end: the task's last best checkpoint (if newer than the last written) and its result."""
        if returned:
            self.write_checkpoint(returned.get("checkpoint"), returned.get("best_epoch"))
        self.recorder.flush()
        self.store.record_end(self.run_id, SimpleNamespace(**self.result, checkpoint=None))


class RayExecutor:
    """Hands each claimed run to an existing Ray cluster as one task with its CPU/GPU request."""

    def __init__(self, address: str | None = None, *, num_cpus: float = 1, num_gpus: float = 0,
                 poll_seconds: float = POLL_SECONDS):
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.num_cpus, self.num_gpus, self.poll_seconds = num_cpus, num_gpus, poll_seconds

    def connect(self):
        """Ray, connected to the cluster (``address``, ``RAY_ADDRESS``, or one already initialised here)."""
        ray = _ray()
        if not ray.is_initialized():
            ray.init(address=self.address, ignore_reinit_error=True, log_to_driver=False)
        return ray

    def run(self, run: Run, config, *, store: RunStore, should_stop: Callable[[], bool]) -> None:
        """Train the claimed run on the cluster to its end, recording everything into the store."""
        ray = self.connect()
        from ray.util.queue import Empty, Queue

        queue, control = Queue(), Queue()
        store.set_status(run.id, "running", "waiting for a place on the Ray cluster")
        task = ray.remote(train_in_task).options(num_cpus=self.num_cpus, num_gpus=self.num_gpus,
                                                 max_retries=0)  # a retried run would start over silently
        ref = task.remote(config.to_json(), int(run.id), queue, control)
        receiver, cancelled, asked_at = _Receiver(store, run.id), False, None
        try:
            while True:
                done = bool(ray.wait([ref], timeout=self.poll_seconds)[0])
                try:
                    for event, data in queue.get_nowait_batch(queue.qsize()):
                        receiver.apply(event, data)
                except Empty:
                    pass
                if done and queue.empty():
                    break
                if asked_at is None and should_stop():
                    control.put("stop")  # read between batches: StopTraining, the run ends stopped
                    asked_at = time.monotonic()
                elif asked_at is not None and not cancelled and time.monotonic() - asked_at > CANCEL_AFTER_SECONDS:
                    ray.cancel(ref)  # KeyboardInterrupt in the task: the loop ends the run as stopped
                    cancelled = True
            self._finish(ray, ref, receiver, store, run.id, asked_at is not None)
        finally:
            ray.kill(queue.actor)
            ray.kill(control.actor)

    @staticmethod
    def _finish(ray, ref, receiver: _Receiver, store: RunStore, run_id: int, cancelled: bool) -> None:
        try:
            returned = ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            returned = None
        except ray.exceptions.RayError as exc:
            if receiver.result is None:
                store.set_status(run_id, "failed", f"the Ray task failed: {str(exc).strip().splitlines()[0][:300]}")
                return
            returned = None
        if receiver.result is None:  # cancelled before the loop began or while it sent its end
            receiver.recorder.flush()
            done = len(receiver.history)
            store.set_status(run_id, "stopped" if cancelled else "failed",
                             f"stopped by request after {done} finished epoch(s)" if cancelled
                             else "the Ray task ended without a result")
            return
        receiver.finish(returned)
