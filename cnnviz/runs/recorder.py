"""The listener that writes a run's training events into the run store."""

from __future__ import annotations

import time

from cnnviz.training.callbacks import Callback


class StoreRecorder(Callback):
    """Writes run start, per-batch losses (buffered), each epoch, the best checkpoint's path and the end.

    Batch losses are flushed every ``flush_seconds`` or ``flush_batches`` batches, so
    the live loss trace moves without a SQLite write per batch. When a ``BestCheckpoint``
    callback (listed before this one) has written the best epoch, its path is recorded at
    once, so a run killed later still points to its best weights. The full results
    (confusion matrix, per-class accuracy) come from ``RunStore.record_end(result)``, which
    the job runner calls with the ``RunResult`` once ``train`` returns.
    """

    def __init__(self, store, run_id: int, *, flush_seconds: float = 0.5, flush_batches: int = 50):
        self.store = store
        self.run_id = int(run_id)
        self.flush_seconds = flush_seconds
        self.flush_batches = flush_batches
        self.step = 0
        self._buffer: list[tuple[int, float, int | None]] = []
        self._last_flush = time.monotonic()
        self._epochs_written = 0
        self._checkpoint_recorded: tuple | None = None

    def before_fit(self, state) -> None:
        self._epochs_written = 0  # again after an out-of-memory retry: the history starts over
        self.store.record_start(
            self.run_id, params=getattr(state, "params", None), flops=getattr(state, "flops", None),
            classes=list(getattr(state, "classes", None) or []),
            trainable_params=getattr(state, "trainable_params", None) or None,
            image_size=getattr(state, "image_size", None) or None, device=getattr(state, "device", None) or None)

    def after_batch(self, state) -> None:
        self.step += 1
        loss = getattr(state, "loss", None)
        self._buffer.append((self.step, None if loss is None else float(loss), getattr(state, "epoch", None)))
        if len(self._buffer) >= self.flush_batches or time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def after_epoch(self, state) -> None:
        self.flush()
        history = list(getattr(state, "history", None) or [])
        # Write every row not yet written (normally exactly one), so a skipped event loses nothing.
        for row in history[self._epochs_written:]:
            self.store.record_epoch(self.run_id, row)
        self._epochs_written = len(history)
        path = getattr(state, "checkpoint_file", None)
        best = (path, getattr(state, "best_epoch", None))
        if path and best != self._checkpoint_recorded:
            self.store.record_checkpoint(self.run_id, path, best_epoch=best[1],
                                         best_val_acc=getattr(state, "best_val_acc", None))
            self._checkpoint_recorded = best

    def after_fit(self, state) -> None:
        self.flush()

    def flush(self) -> None:
        """Write the buffered batch losses now."""
        rows, self._buffer = self._buffer, []
        self._last_flush = time.monotonic()
        if rows:
            self.store.record_batches(self.run_id, rows)
