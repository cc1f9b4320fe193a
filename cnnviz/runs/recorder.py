"""The listener that writes a run's training events into the run store."""

from __future__ import annotations

import time

from cnnviz.training import Callback


class StoreRecorder(Callback):
    """Writes run start, per-batch losses (buffered), each epoch and the run's end status.

    Batch losses are flushed every ``flush_seconds`` or ``flush_batches`` batches, so
    the live loss trace moves without a SQLite write per batch. The full results
    (confusion matrix, checkpoint) come from ``RunStore.record_end(result)``, which
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

    def on_run_start(self, state) -> None:
        self.store.record_start(
            self.run_id, params=getattr(state, "params", None), flops=getattr(state, "flops", None),
            classes=list(getattr(state, "classes", None) or []),
            trainable_params=getattr(state, "trainable_params", None) or None,
            image_size=getattr(state, "image_size", None) or None, device=getattr(state, "device", None) or None)

    def on_batch_end(self, state) -> None:
        self.step += 1
        loss = getattr(state, "loss", None)
        self._buffer.append((self.step, None if loss is None else float(loss), getattr(state, "epoch", None)))
        if len(self._buffer) >= self.flush_batches or time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def on_epoch_end(self, state) -> None:
        self.flush()
        history = list(getattr(state, "history", None) or [])
        # Write every row not yet written (normally exactly one), so a skipped event loses nothing.
        for row in history[self._epochs_written:]:
            self.store.record_epoch(self.run_id, row)
        self._epochs_written = len(history)

    def on_run_end(self, state) -> None:
        self.flush()

    def flush(self) -> None:
        """Write the buffered batch losses now."""
        rows, self._buffer = self._buffer, []
        self._last_flush = time.monotonic()
        if rows:
            self.store.record_batches(self.run_id, rows)
