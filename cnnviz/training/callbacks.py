"""Listeners of the training loop: the events, the exceptions that end a run, and the built-in callbacks.

Events, in order (fastai's names)::

    before_fit                      model built, params and FLOPs known (again after an out-of-memory retry)
      before_epoch
        before_batch / after_batch  per training batch (state.loss, state.batch_images)
      before_validate               the training pass is over (state.train_loss, state.train_acc)
      after_validate                state.row holds the epoch's metrics; callbacks may add columns to it
      after_epoch                   the row is in state.history, the scheduler has stepped
    after_fit                       always, however the run ended, with state.result

Each event method gets the ``TrainState``. Raising ``StopTraining`` ends the run as ``stopped``,
``Diverged`` as ``diverged``; any other exception fails the run, naming the callback.

The trainer always runs ``Throughput``, ``GradNorms`` (when ``config.track_grad_norms``),
``DivergenceCheck``, ``KeepBest`` and ``ConfusionMatrix``, in that order, before the caller's
callbacks; ``BestCheckpoint(path)`` is the caller's to add. ``WhitenFirstLayer`` (first, for
models with a ``WhiteningConv``), ``Lookahead`` (when ``config.lookahead``) and ``WeightAverage``
(when ``config.ema_decay``) are the fast-training tricks of airbench (Jordan 2024).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch

from cnnviz.checkpoint import save_checkpoint
from cnnviz.models.airbench import WhiteningConv

EVENTS = ("before_fit", "before_epoch", "before_batch", "after_batch", "before_validate", "after_validate",
          "after_epoch", "after_fit")
EXPLOSION_FACTOR = 1e3  # a training loss this many times the first epoch's (and above chance level) has exploded
EXPLOSION_BOUND = 1e4  # times log(classes): a batch loss above it has exploded whatever the first epoch did


class StopTraining(Exception):
    """Raise from a callback to end the run cleanly as ``stopped`` (everything so far is kept)."""


class Diverged(Exception):
    """The loss became NaN or infinite, or exploded."""


class CallbackError(RuntimeError):
    """A callback raised; the message names it and the event."""


class Callback:
    """Base class for listeners: override the events you need (each gets the ``TrainState``)."""

    def before_fit(self, state) -> None: ...

    def before_epoch(self, state) -> None: ...

    def before_batch(self, state) -> None: ...

    def after_batch(self, state) -> None: ...

    def before_validate(self, state) -> None: ...

    def after_validate(self, state) -> None: ...

    def after_epoch(self, state) -> None: ...

    def after_fit(self, state) -> None: ...


class Throughput(Callback):
    """Training images per second in the current epoch: ``state.images_per_sec`` and the row's column."""

    def before_epoch(self, state) -> None:
        self.began, self.seen = time.perf_counter(), 0

    def after_batch(self, state) -> None:
        self.seen += state.batch_images
        state.images_per_sec = self.seen / max(time.perf_counter() - self.began, 1e-9)

    def after_validate(self, state) -> None:
        state.row["images_per_sec"] = state.images_per_sec


class GradNorms(Callback):
    """The mean gradient norm per conv/linear layer over each epoch: ``state.grad_norms`` and the row's column.

    Read after the optimiser step: the gradients are still there (cleared only before the next
    backward) and a GradScaler has already unscaled them in place.
    """

    def before_fit(self, state) -> None:
        self.tracked = state.learner.conv_and_linear()

    def before_epoch(self, state) -> None:
        self.total = None
        self.batches = 0

    def after_batch(self, state) -> None:
        if not self.tracked:
            return
        grads = [w.grad if w.grad is not None else torch.zeros((), device=w.device) for _, w in self.tracked]
        norms = torch.stack(torch._foreach_norm(grads)).float()  # one kernel for all layers, no sync per layer
        self.total = norms if self.total is None else self.total + norms
        self.batches += 1

    def after_validate(self, state) -> None:
        if self.total is None:
            return
        means = (self.total / max(self.batches, 1)).tolist()
        state.row["grad_norms"] = state.grad_norms = dict(zip([name for name, _ in self.tracked], means))


class DivergenceCheck(Callback):
    """Ends the run as ``diverged`` when the loss is NaN/inf or has exploded, with advice on the learning rate.

    Exploded: a batch above ``EXPLOSION_BOUND`` x log(classes) (chance level is log(classes)), or an
    epoch's mean training loss above ``EXPLOSION_FACTOR`` x the first epoch's and above chance level.
    """

    def before_fit(self, state) -> None:
        self.first: float | None = None
        self.chance = math.log(max(len(state.classes), 2))

    def after_batch(self, state) -> None:
        loss = state.loss
        if not math.isfinite(loss):
            raise Diverged(f"loss became {loss} at epoch {state.epoch}, batch {state.batch} — "
                           f"{self._advice(state)}")
        if loss > EXPLOSION_BOUND * self.chance:
            raise Diverged(f"the loss exploded to {loss:.3g} at epoch {state.epoch}, batch {state.batch} "
                           f"(chance level is {self.chance:.2f}) — {self._advice(state)}")

    def before_validate(self, state) -> None:
        loss = state.train_loss
        if self.first is None:
            self.first = loss
        elif loss > EXPLOSION_FACTOR * self.first and loss > self.chance:
            raise Diverged(f"the loss exploded from {self.first:.3g} (epoch 1) to {loss:.3g} (epoch {state.epoch}) "
                           f"— {self._advice(state)}")

    @staticmethod
    def _advice(state) -> str:
        # The configured rate, not the schedule's current one (a warm-up is far below it): that is what to change.
        return f"lower the learning rate (lr {state.config.lr:g}) and try again"


class KeepBest(Callback):
    """Remembers the epoch with the best validation accuracy: its weights (CPU copy) and predictions."""

    def before_fit(self, state) -> None:
        state.best_val_acc = state.best_epoch = None
        state.best_snapshot = state.best_predictions = state.best_row = None

    def after_epoch(self, state) -> None:
        acc = state.row["val_acc"]
        if state.best_val_acc is None or acc > state.best_val_acc:
            state.best_val_acc, state.best_epoch, state.best_row = acc, state.epoch, dict(state.row)
            state.best_snapshot = state.learner.snapshot()
            state.best_predictions = state.val_predictions


class ConfusionMatrix(Callback):
    """The best epoch's validation confusion matrix (rows: true class) and per-class accuracy."""

    def before_fit(self, state) -> None:
        state.confusion, state.per_class_acc = [], []

    def after_epoch(self, state) -> None:
        if state.best_epoch != state.epoch:
            return
        state.confusion = confusion_matrix(state.val_labels, state.val_predictions, len(state.classes))
        state.per_class_acc = per_class_accuracy(state.confusion)


def confusion_matrix(labels: torch.Tensor, predictions: torch.Tensor, k: int) -> list[list[int]]:
    """Counts of (true class, predicted class) as a k x k list (rows: true class)."""
    labels, predictions = labels.cpu(), predictions.cpu()
    return torch.bincount(labels * k + predictions, minlength=k * k).view(k, k).tolist()


def per_class_accuracy(matrix: list[list[int]]) -> list[float]:
    """The diagonal of a confusion matrix over its row sums (0 for a class without images)."""
    m = torch.tensor(matrix, dtype=torch.float64)
    return (m.diag() / m.sum(1).clamp(min=1)).tolist()


class BestCheckpoint(Callback):
    """Writes the best epoch's checkpoint to ``path`` at every improvement, atomically (``save_checkpoint``).

    The file holds the optimiser, scheduler and random-number states too (to resume later), and
    ``extra`` entries (e.g. ``run_id``). A run killed later still leaves its best epoch on disk.
    Sets ``state.checkpoint_file`` once written.
    """

    def __init__(self, path: Path | str, *, extra: dict[str, Any] | None = None):
        self.path = Path(path)
        self.extra = dict(extra or {})

    def after_epoch(self, state) -> None:
        if getattr(state, "best_epoch", None) != state.epoch:  # a stand-in trainer may keep no best epoch
            return
        ckpt = state.checkpoint(training_state=True)
        ckpt.extra.update(self.extra)
        save_checkpoint(ckpt, self.path)
        state.checkpoint_file = str(self.path)


class LastCheckpoint(Callback):
    """Writes the latest epoch to ``path`` after every epoch (atomically), to resume an unfinished run from.

    Beside the weights, optimiser, scheduler and random states it keeps what the trainer needs to
    carry on as if never stopped (``extra["resume"]``: the history, the best epoch, its confusion
    matrix and predictions). The file is removed when the run finishes or diverges: only a run
    that ended early (stopped, failed, killed) has something to resume.
    """

    def __init__(self, path: Path | str, *, extra: dict[str, Any] | None = None):
        self.path = Path(path)
        self.extra = dict(extra or {})

    def after_epoch(self, state) -> None:
        if not hasattr(state, "checkpoint"):  # a stand-in trainer holds no model to save
            return
        ckpt = state.checkpoint(training_state=True)
        ckpt.extra.update(self.extra)
        ckpt.extra["resume"] = {
            "history": list(state.history), "best_val_acc": state.best_val_acc, "best_epoch": state.best_epoch,
            "best_row": state.best_row, "best_predictions": state.best_predictions,
            "confusion": state.confusion, "per_class_acc": state.per_class_acc, "step": state.step}
        save_checkpoint(ckpt, self.path)

    def after_fit(self, state) -> None:
        if getattr(state, "status", None) in ("finished", "diverged"):
            self.path.unlink(missing_ok=True)


WHITEN_IMAGES = 5000  # airbench whitens from 5,000 training images
WHITEN_BIAS_EPOCHS = 3  # airbench trains the whitening layer's bias for its first 3 epochs only


class WhitenFirstLayer(Callback):
    """Sets each ``WhiteningConv`` of a randomly initialised model from the training images before the first epoch.

    The filters whiten the 2x2 patches of ``WHITEN_IMAGES`` evenly spread training pictures, as the
    model sees them (normalised); the bias trains for ``WHITEN_BIAS_EPOCHS`` epochs, then freezes.
    Loaded weights keep their filters, and a frozen body is not trained here at all.
    """

    def before_fit(self, state) -> None:
        config = state.config
        random = config.mode == "scratch" or config.init == "none"
        layers = [m for m in state.model.modules() if isinstance(m, WhiteningConv)]
        self.layers = layers if random and state.learner.frozen is None else []
        if not self.layers:
            return
        source = state.train_source
        index = torch.linspace(0, len(source) - 1, min(WHITEN_IMAGES, len(source))).long().unique()
        images = torch.cat([source.get(part, train=False)[0] for part in index.split(500)])
        for layer in self.layers:
            layer.fit(images)

    def before_epoch(self, state) -> None:
        for layer in self.layers:
            layer.bias.requires_grad_(state.epoch <= WHITEN_BIAS_EPOCHS)


def _float_state(model: torch.nn.Module) -> list[torch.Tensor]:
    """The model's floating-point state-dict tensors (weights and batch-norm statistics), live."""
    return [t for t in model.state_dict().values() if t.is_floating_point()]


def _saved(tensors: list[torch.Tensor] | None) -> list[torch.Tensor] | None:
    """CPU copies of ``tensors`` for a checkpoint."""
    return None if tensors is None else [t.detach().cpu().clone() for t in tensors]


def _restored(tensors: list[torch.Tensor] | None, like: list[torch.Tensor]) -> list[torch.Tensor] | None:
    """Saved ``tensors`` back on the devices of ``like``."""
    return None if tensors is None else [t.to(live.device) for t, live in zip(tensors, like)]


LOOKAHEAD_EVERY = 5  # batches between lookahead steps (airbench)
LOOKAHEAD_DECAY = 0.95 ** 5  # the slow weights' decay at the end of the run; it grows as (t / T) ** 3 before


class Lookahead(Callback):
    """airbench's lookahead (Jordan 2024, after Zhang et al. 2019): slow weights that the trained ones return to.

    Every ``LOOKAHEAD_EVERY`` batches ``slow <- d * slow + (1 - d) * weights`` and then ``weights <- slow``
    (every floating-point tensor of the state dict, batch-norm statistics too), with
    ``d = LOOKAHEAD_DECAY * (t / T) ** 3`` after ``t`` of the run's ``T`` batches: near 0 early, so
    the weights train freely, and up to 0.77 at the end, where it damps the last steps' noise. After
    the last batch the model holds the slow weights. They start from the weights the first batch
    trained; checkpoints keep them (``state_dict``), so a resumed run goes on as if never stopped.
    """

    def before_fit(self, state) -> None:
        self.live = _float_state(state.learner.trainable)
        self.slow: list[torch.Tensor] | None = None

    @torch.no_grad()
    def after_batch(self, state) -> None:
        if self.slow is None:
            self.slow = [t.detach().clone() for t in self.live]
        total = state.epochs * state.batches
        if state.step % LOOKAHEAD_EVERY == 0:
            self._pull(LOOKAHEAD_DECAY * min(state.step / total, 1.0) ** 3)
        if state.step >= total:
            self._pull(1.0)  # the run ends on the slow weights

    def _pull(self, decay: float) -> None:
        torch._foreach_lerp_(self.slow, self.live, 1 - decay)
        torch._foreach_copy_(self.live, self.slow)

    def state_dict(self) -> dict[str, Any]:
        return {"slow": _saved(self.slow)}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        self.slow = _restored(saved.get("slow"), self.live)


class WeightAverage(Callback):
    """Validates an exponential moving average of the weights (Polyak averaging) instead of the trained weights.

    After each batch ``average <- d * average + (1 - d) * weights`` over every floating-point
    tensor of the state dict (batch-norm statistics too), with ``d = min(decay, (1 + t) / (10 + t))``
    after ``t`` batches, so the random start fades quickly (TensorFlow's ExponentialMovingAverage).
    ``before_validate`` swaps the average in, so validation, the kept best epoch and checkpoints all
    hold it; ``before_epoch`` swaps the trained weights back. After the last epoch the model holds
    the average. Checkpoints keep the average and the trained weights (``state_dict``), so a resumed
    run goes on as if never stopped.
    """

    def __init__(self, decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"the weight-average decay must be between 0 and 1, got {decay}")
        self.decay = decay

    def before_fit(self, state) -> None:
        self.live = _float_state(state.learner.trainable)
        self.average = [t.detach().clone() for t in self.live]
        self.trained: list[torch.Tensor] | None = None
        self.updates = 0

    @torch.no_grad()
    def after_batch(self, state) -> None:
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(self.average, self.live, 1 - decay)
        self.updates += 1

    @torch.no_grad()
    def before_validate(self, state) -> None:
        self.trained = [t.clone() for t in self.live]
        torch._foreach_copy_(self.live, self.average)

    @torch.no_grad()
    def before_epoch(self, state) -> None:
        if self.trained is not None:
            torch._foreach_copy_(self.live, self.trained)
            self.trained = None

    def state_dict(self) -> dict[str, Any]:
        """The average, the trained weights (the model holds the average after validation) and the count."""
        return {"average": _saved(self.average), "trained": _saved(self.trained), "updates": self.updates}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        self.average, self.trained = _restored(saved["average"], self.live), _restored(saved["trained"], self.live)
        self.updates = saved["updates"]
