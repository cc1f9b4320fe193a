"""The training loop. It knows nothing about the model: a ``Learner`` (``modes.py``) says what
trains, batch sources (``features.py``) say what goes in, and callbacks (``callbacks.py``) listen.

    result = train(config, callbacks=[BestCheckpoint("best.pt"), MyProgress()], stop=stop_event)

The loop emits named events (before/after fit, epoch, batch, validate; see ``callbacks.py``) and
keeps its state on a ``TrainState`` that callbacks read. Keeping the best epoch, divergence,
gradient norms, throughput and the confusion matrix are callbacks the trainer always adds; the
run store's recorder, the best-checkpoint writer and progress bars are the caller's. Setting the
``stop`` event, or raising ``StopTraining`` from a callback, ends the run within one batch as
``stopped``. Any other error in a callback ends the run as ``failed`` naming the callback.
An out-of-memory error restarts the loop with half the batch size.
"""

from __future__ import annotations

import math
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Iterable

import torch

from cnnviz.checkpoint import Checkpoint
from cnnviz.data import load_splits, load_test, no_test_reason, split_warnings
from cnnviz.device import pick_device
from cnnviz.models import resolve_options

from .callbacks import (BestCheckpoint, Callback, CallbackError, ConfusionMatrix, Diverged, DivergenceCheck,
                        GradNorms, KeepBest, Lookahead, StopTraining, Throughput, WeightAverage, WhitenFirstLayer,
                        confusion_matrix, per_class_accuracy)
from .config import TrainConfig
from .features import ImageBatches, TensorBatches, extract_features, feature_key, load_cached, save_cached
from .modes import Learner, ProbeModel, build_learner, resolve_image_size
from .messages import error_text
from .parts import (_flops, _loss, _normalization, _optimizer, _predict, _scheduler, autocast_for,
                    evaluation_logits, wants_channels_last)

__all__ = ["BestCheckpoint", "Callback", "CallbackError", "Diverged", "RunResult", "StopTraining", "TrainState",
           "Trainer", "train"]

_PASS_THROUGH = (StopTraining, Diverged, KeyboardInterrupt, torch.OutOfMemoryError)  # not a callback's bug


@dataclass
class TrainState:
    """What callbacks read while a run trains (read it, do not change it). ``epoch`` and ``batch`` are 1-based."""

    config: TrainConfig
    device: str = ""
    params: int = 0
    trainable_params: int = 0
    flops: int = 0
    classes: list[str] = field(default_factory=list)
    image_size: int = 0
    epoch: int = 0
    epochs: int = 0
    batch: int = 0
    batches: int = 0
    step: int = 0  # batches trained so far in the whole run
    batch_images: int = 0  # pictures in the last batch
    loss: float | None = None  # the last batch's training loss
    lr: float | None = None
    train_loss: float | None = None  # the epoch's mean training loss and accuracy (from before_validate on)
    train_acc: float | None = None
    row: dict[str, Any] = field(default_factory=dict)  # the epoch's metrics (from after_validate on)
    history: list[dict[str, Any]] = field(default_factory=list)
    status: str = "running"
    message: str = ""
    phase: str = "setup"  # setup | data (decoding) | features (frozen features) | train | val | test | done
    started_at: float = 0.0
    images_per_sec: float | None = None
    grad_norms: dict[str, float] | None = None
    val_labels: torch.Tensor | None = None
    val_predictions: torch.Tensor | None = None  # this epoch's (from after_validate on)
    best_val_acc: float | None = None  # the best epoch, as KeepBest keeps it
    best_epoch: int | None = None
    best_row: dict[str, Any] | None = None
    best_snapshot: dict[str, torch.Tensor] | None = None
    best_predictions: torch.Tensor | None = None
    confusion: list[list[int]] = field(default_factory=list)  # the best epoch's, from ConfusionMatrix
    per_class_acc: list[float] = field(default_factory=list)
    # The test set, evaluated once after the last epoch on the best-validation weights (None: no test set).
    test_loss: float | None = None
    test_acc: float | None = None
    test_confusion: list[list[int]] | None = None
    test_per_class_acc: list[float] | None = None
    splits: dict[str, Any] = field(default_factory=dict)  # split -> {"images": n, "from": words}, or test: None
    checkpoint_file: str | None = None  # where BestCheckpoint last wrote
    model: torch.nn.Module | None = None  # the network being trained
    learner: Learner | None = None
    optimizer: torch.optim.Optimizer | None = None
    scheduler: Any = None
    generators: dict[str, torch.Generator] = field(default_factory=dict)
    layout: dict[str, Any] = field(default_factory=dict)  # the checkpoint fields fixed at build time
    train_source: Any = None  # the training batches; .get(index, train=False) gives model inputs, unaugmented
    result: "RunResult | None" = None  # set just before after_fit
    # callbacks whose own state a resume needs (weight averages): name -> callback with state_dict()
    resumable: dict[str, Any] = field(default_factory=dict)

    def checkpoint(self, *, training_state: bool = True) -> Checkpoint:
        """A checkpoint of the model as it is now (with the optimiser, scheduler and RNG states unless told not)."""
        weights = self.learner.full_state(self.learner.snapshot())
        return self._checkpoint(weights, epoch=self.epoch, metrics=self.row, training_state=training_state)

    def best_checkpoint(self) -> Checkpoint | None:
        """The best epoch's checkpoint, weights only (None before an epoch finished)."""
        if self.best_snapshot is None:
            return None
        weights = self.learner.full_state(self.best_snapshot)
        return self._checkpoint(weights, epoch=self.best_epoch, metrics=self.best_row or {}, training_state=False)

    def _checkpoint(self, weights, *, epoch, metrics, training_state: bool) -> Checkpoint:
        ckpt = Checkpoint(**self.layout, state_dict=weights, epoch=epoch, config=self.config.to_dict(),
                          metrics={**metrics, "best_val_acc": self.best_val_acc}, extra={"loss": self.config.loss})
        if training_state:
            ckpt.optimizer_state = self.optimizer.state_dict()
            ckpt.scheduler_state = self.scheduler.state_dict() if self.scheduler is not None else None
            ckpt.rng_state = {"torch": torch.get_rng_state(),
                              **{name: g.get_state() for name, g in self.generators.items()}}
            ckpt.extra["callbacks"] = {name: c.state_dict() for name, c in self.resumable.items()}
        return ckpt


@dataclass
class RunResult:
    """The outcome of ``train``. Weights are those of the best epoch (None if no epoch finished)."""

    status: str  # finished | stopped | diverged | failed
    message: str
    epochs: list[dict[str, Any]]
    best_val_acc: float | None
    best_epoch: int | None
    train_seconds: float
    params: int
    flops: int
    classes: list[str]
    confusion: list[list[int]]  # rows: true class, columns: predicted class (validation split, best epoch)
    per_class_acc: list[float]
    best_state_dict: dict[str, torch.Tensor] | None
    checkpoint: dict[str, Any] | None  # the best epoch's Checkpoint as a payload dict (weights only)
    val_predictions: list[int]
    trainable_params: int = 0
    image_size: int = 0
    config: TrainConfig | None = None  # as trained (batch_size halved after an out-of-memory retry)
    # The test set, evaluated once at the end on the best-validation weights; None where there is none.
    test_acc: float | None = None
    test_loss: float | None = None
    test_confusion: list[list[int]] | None = None
    test_per_class_acc: list[float] | None = None
    splits: dict[str, Any] = field(default_factory=dict)  # train/val/test: {"images": n, "from": words} or None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary (no weights)."""
        skip = {"best_state_dict", "checkpoint", "config"}
        out = {k: v for k, v in self.__dict__.items() if k not in skip}
        out["config"] = self.config.to_dict() if self.config else None
        return out


def train(config: TrainConfig, *, callbacks: Iterable[Any] = (), stop: threading.Event | None = None,
          resume_from: Checkpoint | None = None) -> RunResult:
    """Train ``config`` and return its ``RunResult``; never raises for a failed run (see ``RunResult.status``).

    ``resume_from`` (a checkpoint with training state, e.g. ``LastCheckpoint``'s) continues that
    run at the epoch after the checkpoint's.
    """
    return Trainer(config, callbacks=callbacks, stop=stop, resume_from=resume_from).run()


class Trainer:
    """One run: set up data and model, loop over epochs, emit events.

    ``cache_features=False`` makes freeze/probe runs push every batch through the frozen
    body even without augmentation (the slow path, kept for tests and benchmarks).
    """

    def __init__(self, config: TrainConfig, *, callbacks: Iterable[Any] = (), stop: threading.Event | None = None,
                 cache_features: bool = True, resume_from: Checkpoint | None = None):
        self.config = config
        self.resume_from = resume_from
        builtin = [WhitenFirstLayer(), Throughput(), *([GradNorms()] if config.track_grad_norms else []),
                   DivergenceCheck(), *([Lookahead()] if config.lookahead else []),
                   *([WeightAverage(config.ema_decay)] if config.ema_decay else []), KeepBest(),
                   ConfusionMatrix()]
        self.callbacks = [*builtin, *callbacks]
        self.stop = stop
        self.cache_features = cache_features
        self.state = TrainState(config=config, epochs=config.epochs)
        self.state.resumable = {type(c).__name__: c for c in builtin if isinstance(c, (Lookahead, WeightAverage))}
        self.notes: list[str] = []
        self.learner: Learner | None = None

    # -- the run --------------------------------------------------------------------------------

    def run(self) -> RunResult:
        """Train and return the result; the status says how it ended."""
        state = self.state
        state.started_at = time.time()
        began = time.perf_counter()
        try:
            self._setup()
            self._fit_retrying_on_oom()
            self._test()
            state.status, state.message = "finished", self._summary()
        except (StopTraining, KeyboardInterrupt):
            state.status = "stopped"
            state.message = f"stopped by request after {len(state.history)} finished epoch(s)"
        except Diverged as exc:
            state.status, state.message = "diverged", str(exc)
        except Exception as exc:  # noqa: BLE001 - reported as a failed run, with the traceback on stderr
            traceback.print_exc(file=sys.stderr)
            state.status, state.message = "failed", error_text(exc)
        state.message = "; ".join([state.message, *self.notes])
        state.phase = "done"
        result = self._result(time.perf_counter() - began)
        state.result = result
        try:
            self._emit("after_fit")
        except Exception as exc:  # noqa: BLE001 - the run is over; say so loudly but keep its result
            traceback.print_exc(file=sys.stderr)
            result.message += f"; {exc}"
        return result

    def _emit(self, event: str) -> None:
        for callback in self.callbacks:
            method = getattr(callback, event, None)
            if method is None:
                continue
            try:
                method(self.state)
            except _PASS_THROUGH:
                raise
            except Exception as exc:
                raise CallbackError(f"{type(callback).__name__}.{event} failed: {error_text(exc)}") from exc

    def _check_stop(self) -> None:
        if self.stop is not None and self.stop.is_set():
            raise StopTraining

    # -- setup ----------------------------------------------------------------------------------

    def _setup(self) -> None:
        """Device, data, normalisation; then the model (``_build``)."""
        config, state = self.config, self.state
        self._check_stop()
        self.device = pick_device(config.device)
        state.device = str(self.device)
        self.image_size = state.image_size = resolve_image_size(config)
        state.phase = "data"
        self.train_data, self.val_data = load_splits(config, image_size=self.image_size,
                                                     progress=lambda done, total: self._check_stop())
        self.classes = state.classes = list(self.train_data.classes)
        state.val_labels = self.val_data.labels
        state.splits = {name: {"images": len(part), "from": part.origin}
                        for name, part in (("train", self.train_data), ("val", self.val_data))}
        self.notes += split_warnings(self.val_data)
        if config.loss == "bce" and len(self.classes) != 2:
            raise ValueError(f"loss 'bce' (binary cross-entropy with one output) needs exactly two classes; "
                             f"{config.dataset} has {len(self.classes)}: use loss 'ce'")
        self.num_outputs = 1 if config.loss == "bce" else len(self.classes)
        self.mean, self.std = _normalization(config, self.train_data)
        self.autocast, self.scaler = autocast_for(config.precision, self.device)
        self._build()

    def _build(self) -> None:
        """Model, batch sources, optimiser and scheduler (again after an out-of-memory retry)."""
        config, state = self.config, self.state
        torch.manual_seed(config.seed)  # the same seed gives the same initial weights and dropout masks
        self.learner = state.learner = learner = build_learner(config, num_outputs=self.num_outputs,
                                                               image_size=self.image_size, device=self.device)
        state.model = learner.predictor
        self.channels_last = wants_channels_last(learner.predictor, self.device)
        if self.channels_last:
            learner.predictor.to(memory_format=torch.channels_last)
        self.shuffle_gen = torch.Generator().manual_seed(config.seed)
        self.augment_gen = torch.Generator().manual_seed(config.seed + 1)
        state.generators = {"shuffle": self.shuffle_gen, "augment": self.augment_gen}
        state.params = sum(p.numel() for p in learner.predictor.parameters())
        state.trainable_params = sum(p.numel() for p in learner.parameters())
        state.flops = _flops(config.arch, self._options(), self.image_size, self.num_outputs)
        state.layout = self._layout()
        self._make_sources()
        state.train_source = self.train_source
        self.batch_index = self._batches(torch.arange(len(self.train_source)))  # fixed count per epoch
        state.batches = len(self.batch_index)
        self.optimizer = state.optimizer = _optimizer(config, learner.parameters())
        self.scheduler, self.per_batch = _scheduler(config, self.optimizer, steps=config.epochs * state.batches)
        state.scheduler = self.scheduler

    def _make_sources(self) -> None:
        """Image batches, or cached frozen features where the frozen body sees fixed pictures."""
        config, learner = self.config, self.learner
        common = dict(device=self.device, mean=self.mean, std=self.std, image_size=self.image_size,
                      frozen=learner.frozen, channels_last=self.channels_last, autocast=self.autocast)
        train = ImageBatches(self.train_data.images, self.train_data.labels, augment=config.augment,
                             generator=self.augment_gen, alternate_flip=config.alternate_flip, **common)
        val = ImageBatches(self.val_data.images, self.val_data.labels, **common)
        if learner.frozen is not None and self.cache_features:
            # Validation never augments, so its features are always fixed; training's only without augmentation.
            fixed = {"val": val} if config.augment != "none" else {"train": train, "val": val}
            cached = self._frozen_features(fixed)
            val = TensorBatches(cached["val"], self.val_data.labels, device=self.device)
            if "train" in cached:
                train = TensorBatches(cached["train"], self.train_data.labels, device=self.device)
        self.train_source, self.val_source = train, val

    def _frozen_features(self, sources: dict[str, ImageBatches]) -> dict[str, torch.Tensor]:
        """The frozen body's outputs for each source: from the disk cache, or computed once (and cached)."""
        learner, state = self.learner, self.state
        learner.eval_mode()
        description = {"arch": self.config.arch, "options": self._options(), "mode": learner.mode,
                       "probe": learner.probe_layer, "grid": learner.probe_grid, "size": self.image_size, "mean": self.mean, "std": self.std,
                       "precision": self.config.precision, "device": self.device.type,
                       "channels_last": self.channels_last}
        key = feature_key(learner.frozen, [s.images for s in sources.values()],
                          description={**description, "splits": sorted(sources)})
        found = load_cached(key)
        if found is not None and set(found) == set(sources):
            self.notes.append("frozen features loaded from the cache")
            return found
        state.phase = "features"
        done = 0

        def check(index: int, total: int) -> None:
            state.batch = done + index
            self._check_stop()

        features = {}
        for name, source in sources.items():
            features[name] = extract_features(source, batch_size=self.config.batch_size, check=check)
            done += len(source)
        save_cached(key, features)
        return features

    def _batches(self, order: torch.Tensor) -> list[torch.Tensor]:
        chunks = list(order.split(self.config.batch_size))
        if len(chunks) > 1 and len(chunks[-1]) == 1:
            chunks.pop()  # batch norm cannot train on a batch of one image
        return chunks

    # -- the loop -------------------------------------------------------------------------------

    def _fit_retrying_on_oom(self) -> None:
        while True:
            try:
                return self._fit()
            except torch.OutOfMemoryError:
                size = self.config.batch_size
                if size <= 1:
                    raise
                note = f"out of memory at batch size {size}; retried from the start with batch size {size // 2}"
                print(f"cnnviz: {note}", file=sys.stderr)
                self.notes.append(note)
                state = self.state
                self.learner = self.optimizer = self.scheduler = self.train_source = self.val_source = None
                state.model = state.learner = state.optimizer = state.scheduler = None
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                self.config = state.config = self.config.replace(batch_size=size // 2)
                state.history.clear()
                state.step = 0  # the run starts again, in batches of the new size
                self._build()

    def _fit(self) -> None:
        """The epochs: train, validate, step the scheduler; callbacks hear every step."""
        state = self.state
        self._emit("before_fit")
        first = self._resume(self.resume_from) if self.resume_from is not None else 1
        for epoch in range(first, self.config.epochs + 1):
            state.epoch, state.row, state.grad_norms = epoch, {}, None
            state.lr = lr = self.optimizer.param_groups[0]["lr"]
            began = time.perf_counter()
            self._emit("before_epoch")
            state.train_loss, state.train_acc = self._train_epoch()
            state.phase = "val"
            self._emit("before_validate")
            val_loss, val_acc, val_top5, state.val_predictions = self._evaluate(self.val_source)
            state.row = {"epoch": epoch, "train_loss": state.train_loss, "train_acc": state.train_acc,
                         "val_loss": val_loss, "val_acc": val_acc, "val_top5": val_top5, "lr": lr,
                         "seconds": time.perf_counter() - began}
            self._emit("after_validate")
            state.history.append(state.row)
            if self.config.scheduler == "plateau":
                self.scheduler.step(1.0 - val_acc)  # the validation error, as in the AlexNet paper
            elif self.scheduler is not None and not self.per_batch:
                self.scheduler.step()
            self._emit("after_epoch")

    def _resume(self, ckpt: Checkpoint) -> int:
        """Put back a saved epoch: weights, optimiser, scheduler, random states and history; returns the next epoch."""
        state = self.state
        self.learner.predictor.load_state_dict(ckpt.state_dict)
        self.optimizer.load_state_dict(ckpt.optimizer_state)
        if self.scheduler is not None and ckpt.scheduler_state is not None:
            self.scheduler.load_state_dict(ckpt.scheduler_state)
        rng = dict(ckpt.rng_state or {})
        if "torch" in rng:
            torch.set_rng_state(rng.pop("torch"))
        for name, value in rng.items():
            state.generators[name].set_state(value)
        saved = ckpt.extra.get("resume") or {}  # LastCheckpoint's record of the epochs so far
        state.history[:] = list(saved.get("history") or [])
        state.best_val_acc, state.best_epoch = saved.get("best_val_acc"), saved.get("best_epoch")
        state.best_row = saved.get("best_row")
        state.best_predictions = saved.get("best_predictions")
        state.confusion, state.per_class_acc = saved.get("confusion") or [], saved.get("per_class_acc") or []
        if state.best_epoch == ckpt.epoch:
            state.best_snapshot = self.learner.snapshot()  # else the best weights stay in the best checkpoint file
        state.step = int(saved.get("step") or 0)
        kept = ckpt.extra.get("callbacks") or {}
        for name, callback in state.resumable.items():
            if name in kept:
                callback.load_state_dict(kept[name])
        return int(ckpt.epoch or 0) + 1

    def _train_epoch(self) -> tuple[float, float]:
        """One pass over the training split; returns (mean loss, accuracy)."""
        config, state, learner = self.config, self.state, self.learner
        state.phase, state.batch = "train", 0
        learner.train_mode()
        if isinstance(self.train_source, ImageBatches):
            self.train_source.epoch = state.epoch  # which way each picture faces, under alternate_flip
        order = torch.randperm(len(self.train_source), generator=self.shuffle_gen)
        loss_sum, correct, seen = 0.0, torch.zeros((), dtype=torch.long, device=self.device), 0
        for batch, index in enumerate(self._batches(order), start=1):
            self._check_stop()
            state.batch = batch
            self._emit("before_batch")
            x, y = self.train_source.get(index, train=True)
            with self.autocast():
                logits = learner.trainable(x)
            loss = _loss(logits, y, kind=config.loss, smoothing=config.label_smoothing)
            value = loss.item()
            if math.isfinite(value):  # a NaN step would poison the weights; DivergenceCheck ends the run
                self._step(loss)
            loss_sum += value * len(y)
            correct += (_predict(logits, config.loss) == y).sum()
            seen += len(y)
            state.loss, state.batch_images, state.step = value, len(y), state.step + 1
            state.lr = self.optimizer.param_groups[0]["lr"]
            self._emit("after_batch")
        return loss_sum / max(seen, 1), correct.item() / max(seen, 1)

    def _step(self, loss: torch.Tensor) -> None:
        """Backward, optimiser and per-batch scheduler step."""
        optimizer, scaler = self.optimizer, self.scaler
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)  # unscales the gradients in place first (GradNorms reads them unscaled)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if self.per_batch:
            self.scheduler.step()

    @torch.inference_mode()
    def _evaluate(self, source) -> tuple[float, float, float | None, torch.Tensor]:
        """(loss, accuracy, top-5 accuracy or None, predictions) on ``source``; the loss has no label smoothing."""
        config = self.config
        self.learner.eval_mode()
        topk = self.num_outputs >= 5
        pictures = self.learner.frozen is None  # a frozen body's features are no pictures to mirror or shift
        flip, shift = config.tta_flip and pictures, config.tta_shift and pictures
        loss_sum, correct, top5, predictions = 0.0, 0, 0, []
        # Evaluation batches as big as training's: bigger ones measured no faster on CPU (cache misses).
        for index in torch.arange(len(source)).split(config.batch_size if isinstance(source, ImageBatches) else 4096):
            self._check_stop()
            x, y = source.get(index, train=False)
            with self.autocast():
                logits = evaluation_logits(self.learner.trainable, x, flip=flip, shift=shift)
            loss_sum += _loss(logits, y, kind=config.loss, smoothing=0.0, reduction="sum").item()
            predicted = _predict(logits, config.loss)
            correct += (predicted == y).sum().item()
            if topk:
                top5 += (logits.topk(5, dim=1).indices == y[:, None]).any(dim=1).sum().item()
            predictions.append(predicted.cpu())
        n = max(len(source), 1)
        return loss_sum / n, correct / n, (top5 / n if topk else None), torch.cat(predictions)

    def _test(self) -> None:
        """The test set, once, on the best-validation weights: after the last epoch, so it chooses nothing."""
        state, learner = self.state, self.learner
        if state.best_snapshot is None:
            return
        state.phase = "test"
        # Training is over: its gradients are not needed again, and freeing them before the test
        # pictures are decoded keeps the run's peak memory what training itself needed.
        learner.predictor.zero_grad(set_to_none=True)
        test = load_test(self.config, image_size=self.image_size, progress=lambda done, total: self._check_stop())
        if test is None:
            state.splits["test"] = None
            return
        (learner.trainable if learner.frozen is not None else learner.predictor).load_state_dict(state.best_snapshot)
        source = ImageBatches(test.images, test.labels, device=self.device, mean=self.mean, std=self.std,
                              image_size=self.image_size, frozen=learner.frozen, channels_last=self.channels_last,
                              autocast=self.autocast)
        state.test_loss, state.test_acc, _, predictions = self._evaluate(source)
        state.test_confusion = confusion_matrix(test.labels, predictions, len(self.classes))
        state.test_per_class_acc = per_class_accuracy(state.test_confusion)
        state.splits["test"] = {"images": len(test), "from": test.origin}

    # -- the result -----------------------------------------------------------------------------

    def _summary(self) -> str:
        state = self.state
        if not state.best_epoch:
            return "no epoch finished"
        # Percentages, as the pages show them; no parentheses, since the pages put the message in some.
        test = (f"; test accuracy {state.test_acc:.1%}, measured once on that epoch's weights"
                if state.test_acc is not None else f"; {no_test_reason(self.config)}")
        return (f"best validation accuracy {state.best_val_acc:.1%} at epoch {state.best_epoch} of "
                f"{len(state.history)}{test}")

    def _result(self, seconds: float) -> RunResult:
        state = self.state
        weights, payload, predictions = None, None, []
        best = state.best_checkpoint() if self.learner is not None else None
        if best is not None:
            weights, payload = best.state_dict, best.to_payload()
        if state.best_predictions is not None:  # also when a resumed run's best epoch came before the resume
            predictions = state.best_predictions.tolist()
        return RunResult(
            status=state.status, message=state.message, epochs=list(state.history), best_val_acc=state.best_val_acc,
            best_epoch=state.best_epoch, train_seconds=seconds, params=state.params, flops=state.flops,
            classes=list(state.classes), confusion=list(state.confusion), per_class_acc=list(state.per_class_acc),
            best_state_dict=weights, checkpoint=payload, val_predictions=predictions,
            trainable_params=state.trainable_params, image_size=state.image_size, config=self.config,
            test_acc=state.test_acc, test_loss=state.test_loss, test_confusion=state.test_confusion,
            test_per_class_acc=state.test_per_class_acc, splits=dict(state.splits))

    def _options(self) -> dict[str, Any]:
        """The architecture options as built (a checkpoint init may have supplied them)."""
        predictor = self.learner.predictor
        model = predictor.backbone if isinstance(predictor, ProbeModel) else predictor
        options = getattr(model, "cnnviz_options", None)
        return dict(options) if options is not None else resolve_options(self.config.arch, self.config.options)

    def _layout(self) -> dict[str, Any]:
        """The checkpoint fields fixed once the model is built; probes add their layout."""
        config, learner = self.config, self.learner
        layout = {"arch": config.arch, "options": self._options(), "num_classes": self.num_outputs,
                  "classes": list(self.classes), "mean": list(self.mean), "std": list(self.std),
                  "image_size": self.image_size, "mode": config.mode, "probe_layer": learner.probe_layer}
        if learner.mode == "probe":
            layout.update(probe_grid=learner.probe_grid, probe_features=learner.probe_features)
        return layout

