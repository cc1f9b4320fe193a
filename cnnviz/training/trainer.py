"""The training loop. It knows nothing about the model: a ``Learner`` (``modes.py``) says what
trains, batch sources (``features.py``) say what goes in, and callbacks listen to four events.

    result = train(config, callbacks=[MyProgress()], stop=stop_event)

Events, in order (fastai's ``before_fit``/``after_batch``/``after_epoch``/``after_fit``):
``on_run_start`` (params and FLOPs known) -> ``on_batch_end`` per batch -> ``on_epoch_end``
per epoch (its row appended to ``state.history``) -> ``on_run_end`` (always, with
``state.result``). Callbacks read the ``TrainState``; raising ``StopTraining`` from one, or
setting the ``stop`` event, ends the run within one batch as ``stopped``. Any other error in
a callback ends the run as ``failed`` naming the callback: nothing is swallowed.
"""

from __future__ import annotations

import contextlib
import functools
import math
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch
import torch.nn.functional as F

from .config import TrainConfig
from .features import ImageBatches, TensorBatches, extract_features, feature_key, load_cached, save_cached
from .modes import INPUT, Learner, ProbeModel, build_learner, resolve_image_size

CHECKPOINT_FORMAT = "cnnviz-checkpoint/1"
PLATEAU_PATIENCE = 2  # epochs without a better validation error before lr /= 10 (AlexNet's "stopped improving")


class StopTraining(Exception):
    """Raise from a callback to end the run cleanly as ``stopped`` (everything so far is kept)."""


class Diverged(Exception):
    """The loss became NaN or infinite."""


class CallbackError(RuntimeError):
    """A callback raised; the message names it and the event."""


class Callback:
    """Base class for listeners: override the events you need (each gets the ``TrainState``)."""

    def on_run_start(self, state: "TrainState") -> None: ...

    def on_batch_end(self, state: "TrainState") -> None: ...

    def on_epoch_end(self, state: "TrainState") -> None: ...

    def on_run_end(self, state: "TrainState") -> None: ...


@dataclass
class TrainState:
    """What callbacks read while a run trains. ``epoch`` and ``batch`` are 1-based."""

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
    loss: float | None = None  # the last batch's training loss
    lr: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    status: str = "running"
    message: str = ""
    phase: str = "setup"  # setup | data (decoding) | features (computing frozen features) | train | val | done
    started_at: float = 0.0
    best_val_acc: float | None = None
    best_epoch: int | None = None
    images_per_sec: float | None = None
    grad_norms: dict[str, float] | None = None
    model: torch.nn.Module | None = None  # the network being trained (read it, do not change it)
    result: "RunResult | None" = None  # set just before on_run_end


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
    checkpoint: dict[str, Any] | None
    val_predictions: list[int]
    trainable_params: int = 0
    image_size: int = 0
    config: TrainConfig | None = None  # as trained (batch_size halved after an out-of-memory retry)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary (no weights)."""
        skip = {"best_state_dict", "checkpoint", "config"}
        out = {k: v for k, v in self.__dict__.items() if k not in skip}
        out["config"] = self.config.to_dict() if self.config else None
        return out


def train(config: TrainConfig, *, callbacks: Iterable[Any] = (), stop: threading.Event | None = None) -> RunResult:
    """Train ``config`` and return its ``RunResult``; never raises for a failed run (see ``RunResult.status``)."""
    return Trainer(config, callbacks=callbacks, stop=stop).run()


class Trainer:
    """One run: set up data and model, loop over epochs, emit events, keep the best epoch.

    ``cache_features=False`` makes freeze/probe runs push every batch through the frozen
    body even without augmentation (the slow path, kept for tests and benchmarks).
    """

    def __init__(self, config: TrainConfig, *, callbacks: Iterable[Any] = (), stop: threading.Event | None = None,
                 cache_features: bool = True):
        self.config = config
        self.callbacks = list(callbacks)
        self.stop = stop
        self.cache_features = cache_features
        self.state = TrainState(config=config, epochs=config.epochs)
        self.notes: list[str] = []
        self.learner: Learner | None = None
        self.best: dict[str, Any] = {}

    # -- the run --------------------------------------------------------------------------------

    def run(self) -> RunResult:
        """Train and return the result; the status says how it ended."""
        state = self.state
        state.started_at = time.time()
        began = time.perf_counter()
        try:
            self._setup()
            self._emit("on_run_start")
            self._fit_retrying_on_oom()
            state.status, state.message = "finished", self._summary()
        except (StopTraining, KeyboardInterrupt):
            state.status = "stopped"
            state.message = f"stopped by request after {len(state.history)} finished epoch(s)"
        except Diverged as exc:
            state.status, state.message = "diverged", str(exc)
        except Exception as exc:  # noqa: BLE001 - reported as a failed run, with the traceback on stderr
            traceback.print_exc(file=sys.stderr)
            state.status, state.message = "failed", _error_text(exc)
        state.message = "; ".join([state.message, *self.notes])
        state.phase = "done"
        result = self._result(time.perf_counter() - began)
        state.result = result
        try:
            self._emit("on_run_end")
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
            except (StopTraining, KeyboardInterrupt, torch.OutOfMemoryError):
                raise
            except Exception as exc:
                raise CallbackError(f"{type(callback).__name__}.{event} failed: {_error_text(exc)}") from exc

    def _check_stop(self) -> None:
        if self.stop is not None and self.stop.is_set():
            raise StopTraining

    # -- setup ----------------------------------------------------------------------------------

    def _setup(self) -> None:
        """Device, data, normalisation; then the model (``_build``)."""
        from cnnviz.data import load_splits
        from cnnviz.device import pick_device

        config, state = self.config, self.state
        self._check_stop()
        self.device = pick_device(config.device)
        state.device = str(self.device)
        self.image_size = state.image_size = resolve_image_size(config)
        state.phase = "data"
        self.train_data, self.val_data = load_splits(config, image_size=self.image_size,
                                                     progress=lambda done, total: self._check_stop())
        self.classes = state.classes = list(self.train_data.classes)
        if config.loss == "bce" and len(self.classes) != 2:
            raise ValueError(f"loss 'bce' (binary cross-entropy with one output) needs exactly two classes; "
                             f"{config.dataset} has {len(self.classes)}: use loss 'ce'")
        self.num_outputs = 1 if config.loss == "bce" else len(self.classes)
        self.mean, self.std = _normalization(config, self.train_data)
        self.autocast, self.scaler = _precision(config.precision, self.device)
        self._build()

    def _build(self) -> None:
        """Model, batch sources, optimiser and scheduler (again after an out-of-memory retry)."""
        config, state = self.config, self.state
        torch.manual_seed(config.seed)  # the same seed gives the same initial weights and dropout masks
        self.learner = learner = build_learner(config, num_outputs=self.num_outputs, image_size=self.image_size,
                                               device=self.device)
        state.model = learner.predictor
        self.channels_last = _wants_channels_last(learner.predictor, self.device)
        if self.channels_last:
            learner.predictor.to(memory_format=torch.channels_last)
        self.shuffle_gen = torch.Generator().manual_seed(config.seed)
        self.augment_gen = torch.Generator().manual_seed(config.seed + 1)
        state.params = sum(p.numel() for p in learner.predictor.parameters())
        state.trainable_params = sum(p.numel() for p in learner.parameters())
        state.flops = _flops(config.arch, self._options(), self.image_size, self.num_outputs)
        self._make_sources()
        self.batch_index = self._batches(torch.arange(len(self.train_source)))  # fixed count per epoch
        state.batches = len(self.batch_index)
        self.optimizer = _optimizer(config, learner.parameters())
        self.scheduler, self.per_batch = _scheduler(config, self.optimizer, steps=config.epochs * state.batches)

    def _make_sources(self) -> None:
        """Image batches, or cached frozen features where the frozen body sees fixed pictures."""
        config, learner = self.config, self.learner
        common = dict(device=self.device, mean=self.mean, std=self.std, image_size=self.image_size,
                      frozen=learner.frozen, channels_last=self.channels_last, autocast=self.autocast)
        train = ImageBatches(self.train_data.images, self.train_data.labels, augment=config.augment,
                             generator=self.augment_gen, **common)
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
                self.learner = self.optimizer = self.scheduler = self.train_source = self.val_source = None
                self.state.model = None
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                self.config = self.state.config = self.config.replace(batch_size=size // 2)
                self.state.history.clear()
                self.best = {}
                self.state.best_val_acc = self.state.best_epoch = None
                self._build()

    def _fit(self) -> None:
        state = self.state
        for epoch in range(1, self.config.epochs + 1):
            state.epoch = epoch
            lr = self.optimizer.param_groups[0]["lr"]
            began = time.perf_counter()
            train_loss, train_acc, grad_norms = self._train_epoch(epoch)
            state.phase = "val"
            val_loss, val_acc, val_top5, predictions = self._evaluate(self.val_source)
            row = {"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc, "val_loss": val_loss,
                   "val_acc": val_acc, "val_top5": val_top5, "lr": lr, "seconds": time.perf_counter() - began,
                   "images_per_sec": state.images_per_sec}
            if grad_norms is not None:
                row["grad_norms"] = state.grad_norms = grad_norms
            state.history.append(row)
            if state.best_val_acc is None or val_acc > state.best_val_acc:
                state.best_val_acc, state.best_epoch = val_acc, epoch
                self.best = {"snapshot": self.learner.snapshot(), "predictions": predictions}
            if self.config.scheduler == "plateau":
                self.scheduler.step(1.0 - val_acc)  # the validation error, as in the AlexNet paper
            elif self.scheduler is not None and not self.per_batch:
                self.scheduler.step()
            self._emit("on_epoch_end")

    def _train_epoch(self, epoch: int) -> tuple[float, float, dict[str, float] | None]:
        """One pass over the training split; returns (mean loss, accuracy, mean grad norm per layer or None)."""
        config, state, learner = self.config, self.state, self.learner
        state.phase, state.batch = "train", 0
        learner.train_mode()
        order = torch.randperm(len(self.train_source), generator=self.shuffle_gen)
        tracked = learner.conv_and_linear() if config.track_grad_norms else []
        norm_sum = torch.zeros(len(tracked), device=self.device) if tracked else None
        loss_sum, correct, seen = 0.0, torch.zeros((), dtype=torch.long, device=self.device), 0
        began = time.perf_counter()
        for batch, index in enumerate(self._batches(order), start=1):
            self._check_stop()
            x, y = self.train_source.get(index, train=True)
            with self.autocast():
                logits = learner.trainable(x)
            loss = _loss(logits, y, kind=config.loss, smoothing=config.label_smoothing)
            value = loss.item()
            if not math.isfinite(value):
                raise Diverged(f"loss became {value} at epoch {epoch}, batch {batch} — lower the learning rate "
                               f"(now {self.optimizer.param_groups[0]['lr']:g}) and try again")
            self._step(loss, tracked, norm_sum)
            loss_sum += value * len(y)
            correct += (_predict(logits, config.loss) == y).sum()
            seen += len(y)
            state.batch, state.loss, state.step = batch, value, state.step + 1
            state.lr = self.optimizer.param_groups[0]["lr"]
            state.images_per_sec = seen / max(time.perf_counter() - began, 1e-9)
            self._emit("on_batch_end")
        norms = None
        if norm_sum is not None:
            norms = dict(zip([name for name, _ in tracked], (norm_sum / max(state.batch, 1)).tolist()))
        return loss_sum / max(seen, 1), correct.item() / max(seen, 1), norms

    def _step(self, loss: torch.Tensor, tracked: list, norm_sum: torch.Tensor | None) -> None:
        """Backward, (gradient norms), optimiser and per-batch scheduler step."""
        optimizer, scaler = self.optimizer, self.scaler
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            if tracked:
                scaler.unscale_(optimizer)
        else:
            loss.backward()
        if tracked:
            grads = [w.grad if w.grad is not None else torch.zeros((), device=w.device) for _, w in tracked]
            norm_sum += torch.stack(torch._foreach_norm(grads)).to(norm_sum.dtype)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        if self.per_batch:
            self.scheduler.step()

    @torch.inference_mode()
    def _evaluate(self, source) -> tuple[float, float, float | None, torch.Tensor]:
        """(loss, accuracy, top-5 accuracy or None, predictions) on ``source``; the loss has no label smoothing."""
        config = self.config
        self.learner.eval_mode()
        topk = self.num_outputs >= 5
        loss_sum, correct, top5, predictions = 0.0, 0, 0, []
        # Evaluation batches as big as training's: bigger ones measured no faster on CPU (cache misses).
        for index in torch.arange(len(source)).split(config.batch_size if isinstance(source, ImageBatches) else 4096):
            self._check_stop()
            x, y = source.get(index, train=False)
            with self.autocast():
                logits = self.learner.trainable(x)
            loss_sum += _loss(logits, y, kind=config.loss, smoothing=0.0, reduction="sum").item()
            predicted = _predict(logits, config.loss)
            correct += (predicted == y).sum().item()
            if topk:
                top5 += (logits.topk(5, dim=1).indices == y[:, None]).any(dim=1).sum().item()
            predictions.append(predicted.cpu())
        n = max(len(source), 1)
        return loss_sum / n, correct / n, (top5 / n if topk else None), torch.cat(predictions)

    # -- the result -----------------------------------------------------------------------------

    def _summary(self) -> str:
        state = self.state
        return (f"best val acc {state.best_val_acc:.3f} at epoch {state.best_epoch} of {len(state.history)}"
                if state.best_epoch else "no epoch finished")

    def _result(self, seconds: float) -> RunResult:
        state, best = self.state, self.best
        confusion, per_class, predictions, weights, payload = [], [], [], None, None
        if best and self.learner is not None:
            labels = self.val_data.labels.cpu()
            predictions = best["predictions"]
            k = len(self.classes)
            matrix = torch.bincount(labels * k + predictions, minlength=k * k).view(k, k)
            confusion = matrix.tolist()
            per_class = (matrix.diag().double() / matrix.sum(1).clamp(min=1)).tolist()
            predictions = predictions.tolist()
            weights = self.learner.full_state(best["snapshot"])
            payload = self._checkpoint(weights)
        return RunResult(
            status=state.status, message=state.message, epochs=list(state.history), best_val_acc=state.best_val_acc,
            best_epoch=state.best_epoch, train_seconds=seconds, params=state.params, flops=state.flops,
            classes=list(state.classes), confusion=confusion, per_class_acc=per_class, best_state_dict=weights,
            checkpoint=payload, val_predictions=predictions, trainable_params=state.trainable_params,
            image_size=state.image_size, config=self.config)

    def _options(self) -> dict[str, Any]:
        """The architecture options as built (a checkpoint init may have supplied them)."""
        from cnnviz.models import resolve_options

        predictor = self.learner.predictor
        model = predictor.backbone if isinstance(predictor, ProbeModel) else predictor
        options = getattr(model, "cnnviz_options", None)
        return dict(options) if options is not None else resolve_options(self.config.arch, self.config.options)

    def _checkpoint(self, state_dict: dict[str, torch.Tensor]) -> dict[str, Any]:
        """The cnnviz checkpoint payload of the best epoch (see ``cnnviz.runs``); probes add their layout."""
        config, learner = self.config, self.learner
        payload = {
            "format": CHECKPOINT_FORMAT, "arch": config.arch, "options": self._options(),
            "num_classes": self.num_outputs, "classes": list(self.classes), "mean": list(self.mean),
            "std": list(self.std), "image_size": self.image_size, "state_dict": state_dict,
            "config": config.to_json(), "epoch": self.state.best_epoch, "best_val_acc": self.state.best_val_acc,
            "mode": config.mode, "probe_layer": learner.probe_layer, "loss": config.loss,
        }
        if learner.mode == "probe":
            payload.update(probe_grid=learner.probe_grid, probe_features=learner.probe_features)
        return payload


# -- helpers --------------------------------------------------------------------------------------


def _loss(logits: torch.Tensor, y: torch.Tensor, *, kind: str, smoothing: float, reduction: str = "mean"
          ) -> torch.Tensor:
    logits = logits.float()
    if kind == "bce":  # one logit: the score of class 1; smoothing pulls targets towards 0.5
        target = y.float() * (1 - smoothing) + 0.5 * smoothing
        return F.binary_cross_entropy_with_logits(logits.squeeze(1), target, reduction=reduction)
    return F.cross_entropy(logits, y, label_smoothing=smoothing, reduction=reduction)


def _predict(logits: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "bce":
        return (logits.squeeze(1) > 0).long()
    return logits.argmax(1)


def _optimizer(config: TrainConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    if not params:
        raise ValueError("nothing to train: every parameter is frozen")
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def _scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer, *, steps: int):
    """(scheduler or None, stepped per batch?) for ``config.scheduler``."""
    sched = torch.optim.lr_scheduler
    if config.scheduler == "step":
        return sched.StepLR(optimizer, step_size=config.step_size, gamma=0.1), False
    if config.scheduler == "plateau":  # lr /= 10 when the validation error stops improving (AlexNet)
        return sched.ReduceLROnPlateau(optimizer, mode="min", factor=0.1, patience=PLATEAU_PATIENCE), False
    if config.scheduler == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=max(steps, 1)), True
    if config.scheduler == "onecycle":  # config.lr is the peak
        return sched.OneCycleLR(optimizer, max_lr=config.lr, total_steps=max(steps, 1)), True
    return None, False


def _precision(precision: str, device: torch.device) -> tuple[Callable[[], Any], Any]:
    """(autocast context factory, GradScaler or None) for ``precision`` on ``device``."""
    if precision == "auto":
        if device.type == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        elif device.type == "cpu" and _cpu_has_amx():
            precision = "bf16"
        else:
            precision = "fp32"
    if precision == "fp32":
        return contextlib.nullcontext, None
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision 'fp16' needs a CUDA GPU; use 'bf16' or 'fp32' on this device")
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None  # fp16 gradients underflow unscaled
    return functools.partial(torch.autocast, device.type, dtype=dtype), scaler


@functools.lru_cache(maxsize=1)
def _cpu_has_amx() -> bool:
    """AMX tiles make bf16 convolutions fast; AVX512-BF16 alone measured slower than fp32 (benchmarks/README.md)."""
    from cnnviz.device import cpu_bf16_is_fast

    try:
        with open("/proc/cpuinfo") as fh:
            return cpu_bf16_is_fast() and "amx_bf16" in fh.read()
    except OSError:
        return False


def _wants_channels_last(model: torch.nn.Module, device: torch.device) -> bool:
    """channels_last for conv nets on CPU and CUDA: oneDNN/cuDNN run NHWC convolutions faster (measured)."""
    return device.type in ("cpu", "cuda") and any(isinstance(m, torch.nn.Conv2d) for m in model.modules())


def _normalization(config: TrainConfig, train_data) -> tuple[list[float], list[float]]:
    """Mean and std the weights expect: ImageNet's for pretrained weights, the checkpoint's own for an
    earlier run or cnnviz file, the dataset's for random initialisation."""
    from cnnviz.data import IMAGENET_MEAN, IMAGENET_STD

    init = "none" if config.mode == "scratch" else config.init
    if config.mode == "probe" and config.probe_layer == INPUT:
        init = "none"  # raw pixels: no weights expect anything
    if init == "imagenet":
        return list(IMAGENET_MEAN), list(IMAGENET_STD)
    if init != "none":
        found = _checkpoint_normalization(init)
        return found if found else (list(IMAGENET_MEAN), list(IMAGENET_STD))
    try:
        from cnnviz.data import dataset_stats

        mean, std = dataset_stats(config.dataset)
    except Exception:  # noqa: BLE001 - a user's folder has no stored statistics: measure them
        from cnnviz.data.augment import channel_stats

        mean, std = channel_stats(train_data.images)
    return [float(v) for v in mean], [float(v) for v in std]


def _checkpoint_normalization(init: str) -> tuple[list[float], list[float]] | None:
    """The mean/std stored in a cnnviz checkpoint named by ``init`` (None for a plain state_dict)."""
    try:
        if init.startswith("run:"):
            from cnnviz.runs import checkpoint_path

            path = checkpoint_path(int(init[4:]))
        else:
            path = init
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - get_model reports unreadable weights with a proper message
        return None
    if isinstance(payload, dict) and "mean" in payload and "std" in payload:
        return [float(v) for v in payload["mean"]], [float(v) for v in payload["std"]]
    return None


def _flops(arch: str, options: dict[str, Any], image_size: int, num_outputs: int) -> int:
    try:
        from cnnviz.inspect import model_cost

        return int(model_cost(arch, options=options, num_classes=num_outputs, image_size=image_size)[1])
    except Exception as exc:  # noqa: BLE001 - FLOPs are informative; a failure must not stop training
        print(f"cnnviz: could not count FLOPs ({exc})", file=sys.stderr)
        return 0


def _error_text(exc: BaseException) -> str:
    # ValueError/RuntimeError/OSError carry messages written for the user (DatasetUnavailable,
    # WeightsUnavailable, a bad image size); anything else is a bug, so name its type.
    text = str(exc).strip()
    if isinstance(exc, (ValueError, RuntimeError, OSError)) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
