"""The learning-rate finder: a short sweep of exponentially growing learning rates (Smith 2015).

    result = lr_find(config)          # about a hundred mini-batches of the training split
    result.suggested_lr               # a learning rate to put in the form

Smith, "Cyclical Learning Rates for Training Neural Networks" (2015), trains for a few
hundred batches while the learning rate grows, and reads a good rate off the loss curve;
fastai's ``lr_find`` made it a habit. The sweep builds the data and the model exactly as a
run of ``config`` would (the trainer's own set-up), takes one optimiser step per batch at
``start * (end / start) ** (i / (steps - 1))``, and stops when the smoothed loss exceeds
``stop_factor`` times the best one seen. Nothing is saved: the model is thrown away.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .config import TrainConfig
from .parts import _loss
from .trainer import Trainer

SMOOTHING = 0.98  # weight of the past in the loss's running mean (fastai's), bias-corrected
SKIP_START = 0.1  # fraction of the sweep ignored when picking: the running mean is still settling there


@dataclass(frozen=True)
class LrFindResult:
    """The learning rates tried, the smoothed loss after each, and the suggestion (None: no clear descent)."""

    lrs: list[float]
    losses: list[float]
    suggested_lr: float | None

    def to_dict(self) -> dict:
        return {"suggested_lr": self.suggested_lr, "lrs": self.lrs, "losses": self.losses}


def lr_find(config: TrainConfig, *, start: float = 1e-7, end: float = 10.0, steps: int = 100,
            stop_factor: float = 4.0) -> LrFindResult:
    """Sweep the learning rate from ``start`` to ``end`` over ``steps`` mini-batches of ``config``'s training split.

    The optimiser, loss, mode (frozen parts stay frozen), precision and batch size are the run's;
    its scheduler is not used (the sweep sets the rate itself). See ``suggest_lr`` for the pick.
    """
    if not 0 < start < end or steps < 2:
        raise ValueError("lr_find needs 0 < start < end and at least 2 steps")
    trainer = Trainer(config)
    trainer._setup()  # the data, normalisation, model and optimiser a run of this config starts from
    learner, optimizer, scaler, source = trainer.learner, trainer.optimizer, trainer.scaler, trainer.train_source
    learner.train_mode()
    shuffle = torch.Generator().manual_seed(config.seed)
    batches: list[torch.Tensor] = []
    lrs: list[float] = []
    losses: list[float] = []
    mean, best = 0.0, math.inf
    for step in range(steps):
        if not batches:  # another pass over the training split, in a new order
            batches = trainer._batches(torch.randperm(len(source), generator=shuffle))[::-1]
        lr = start * (end / start) ** (step / (steps - 1))
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = source.get(batches.pop(), train=True)
        with trainer.autocast():
            logits = learner.trainable(x)
        loss = _loss(logits, y, kind=config.loss, smoothing=config.label_smoothing)
        value = loss.item()
        if not math.isfinite(value):
            break
        mean = SMOOTHING * mean + (1 - SMOOTHING) * value
        smoothed = mean / (1 - SMOOTHING ** (step + 1))
        lrs.append(lr)
        losses.append(smoothed)
        if step > 0 and smoothed > stop_factor * best:
            break
        best = min(best, smoothed)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
    return LrFindResult(lrs=lrs, losses=losses, suggested_lr=suggest_lr(lrs, losses))


def suggest_lr(lrs: list[float], losses: list[float]) -> float | None:
    """The learning rate where the smoothed loss falls fastest against log(lr), before its minimum.

    Steepest descent rather than fastai's other rule, the minimum's lr / 10: the steepest point is
    where a step of training improves the loss most, read straight off the curve, while the
    minimum sits at the edge of divergence and dividing it by ten is a guess of a margin. Points
    after the minimum (the loss climbing) and the first tenth of the sweep (the running mean still
    settling) are ignored; with fewer than three points left, the minimum / 10 is the fallback.
    None when the loss never went down.
    """
    finite = [(lr, loss) for lr, loss in zip(lrs, losses) if math.isfinite(loss)]
    if len(finite) < 2:
        return None
    lowest = min(range(len(finite)), key=lambda i: finite[i][1])
    if lowest == 0:
        return None
    first = int(len(finite) * SKIP_START)
    window = finite[first:lowest + 1]
    if len(window) < 3:
        return finite[lowest][0] / 10
    slopes = [(window[i + 1][1] - window[i - 1][1]) / math.log(window[i + 1][0] / window[i - 1][0])
              for i in range(1, len(window) - 1)]
    steepest = min(range(len(slopes)), key=slopes.__getitem__)
    return window[steepest + 1][0]
