"""The pieces the training loop is built from: losses, predictions, optimisers, schedules,
precision, memory layout, normalisation, FLOPs and error texts. Plain functions of a config,
so ``trainer.py`` holds only the loop and the learning-rate finder can reuse the same parts.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from typing import Any, Callable

import torch
import torch.nn.functional as F

from cnnviz.checkpoint import load_state_dict_file, resolve_init
from cnnviz.data import IMAGENET_MEAN, IMAGENET_STD, dataset_stats
from cnnviz.data.augment import channel_stats
from cnnviz.device import cpu_bf16_is_fast
from cnnviz.inspect import model_cost

from .config import TrainConfig
from .modes import INPUT

PLATEAU_PATIENCE = 2  # epochs without a better validation error before lr /= 10 (AlexNet's "stopped improving")
# airbench's "linear" schedule (lib_airbench94.train: lr_peak 0.23, lr_end 0.07, warm-up from 0.2): fractions of lr
LINEAR_PEAK_AT, LINEAR_START, LINEAR_END = 0.23, 0.2, 0.07


def evaluation_logits(model: torch.nn.Module, x: torch.Tensor, *, flip: bool = False, shift: bool = False
                      ) -> torch.Tensor:
    """``model(x)`` with test-time augmentation (airbench's levels, Jordan 2024).

    ``flip``: the mean logits of ``x`` and its mirror image. ``shift``: half of that, plus a quarter each
    of the same for ``x`` shifted one pixel up-left and one pixel down-right (the border reflected).
    """
    def views(batch: torch.Tensor) -> torch.Tensor:
        logits = model(batch)
        return (logits + model(batch.flip(-1))) / 2 if flip else logits

    logits = views(x)
    if not shift:
        return logits
    h, w = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    shifted = views(padded[..., :h, :w]) + views(padded[..., 2:, 2:])
    return logits / 2 + shifted / 4


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
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                               nesterov=config.nesterov)
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
    if config.scheduler == "linear":  # airbench's triangle: 0.2 lr -> lr over 23% of the steps -> 0.07 lr
        return sched.OneCycleLR(optimizer, max_lr=config.lr, total_steps=max(steps, 1), pct_start=LINEAR_PEAK_AT,
                                anneal_strategy="linear", cycle_momentum=False, div_factor=1 / LINEAR_START,
                                final_div_factor=LINEAR_START / LINEAR_END, three_phase=False), True
    return None, False


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision ``"auto"`` stands for on ``device``: bf16 (or fp16) on a GPU, bf16 on a CPU with AMX, else
    fp32. Other values are returned as they are."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if device.type == "cpu" and cpu_bf16_is_fast() else "fp32"


def autocast_for(precision: str, device: torch.device) -> tuple[Callable[[], Any], Any]:
    """(autocast context factory, GradScaler or None) for ``precision`` on ``device``."""
    precision = resolve_precision(precision, device)
    if precision == "fp32":
        return contextlib.nullcontext, None
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision 'fp16' needs a CUDA GPU; use 'bf16' or 'fp32' on this device")
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None  # fp16 gradients underflow unscaled
    return functools.partial(torch.autocast, device.type, dtype=dtype), scaler


def wants_channels_last(model: torch.nn.Module, device: torch.device) -> bool:
    """channels_last for conv nets on CPU and CUDA: oneDNN/cuDNN run NHWC convolutions faster (measured)."""
    return device.type in ("cpu", "cuda") and any(isinstance(m, torch.nn.Conv2d) for m in model.modules())


def _normalization(config: TrainConfig, train_data) -> tuple[list[float], list[float]]:
    """Mean and std the weights expect: ImageNet's for pretrained weights, the checkpoint's own for an
    earlier run or cnnviz file, the dataset's for random initialisation."""
    init = "none" if config.mode == "scratch" else config.init
    if config.mode == "probe" and config.probe_layer == INPUT:
        init = "none"  # raw pixels: no weights expect anything
    if init == "imagenet":
        return list(IMAGENET_MEAN), list(IMAGENET_STD)
    if init != "none":
        found = _checkpoint_normalization(init)
        return found if found else (list(IMAGENET_MEAN), list(IMAGENET_STD))
    try:
        mean, std = dataset_stats(config.dataset)
    except Exception:  # noqa: BLE001 - a user's folder has no stored statistics: measure them
        mean, std = channel_stats(train_data.images)
    return [float(v) for v in mean], [float(v) for v in std]


def _checkpoint_normalization(init: str) -> tuple[list[float], list[float]] | None:
    """The mean/std stored in a cnnviz checkpoint named by ``init`` (None for a plain state_dict)."""
    try:
        _, meta = load_state_dict_file(resolve_init(init))
    except Exception:  # noqa: BLE001 - get_model reports unreadable weights with a proper message
        return None
    if "mean" in meta and "std" in meta:
        return [float(v) for v in meta["mean"]], [float(v) for v in meta["std"]]
    return None


def _flops(arch: str, options: dict[str, Any], image_size: int, num_outputs: int) -> int:
    try:
        return int(model_cost(arch, options=options, num_classes=num_outputs, image_size=image_size)[1])
    except Exception as exc:  # noqa: BLE001 - FLOPs are informative; a failure must not stop training
        print(f"cnnviz: could not count FLOPs ({exc})", file=sys.stderr)
        return 0
