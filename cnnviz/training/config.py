"""``TrainConfig``: everything that defines a run, stored with it as JSON."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

MODES = ("scratch", "finetune", "freeze", "probe")
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("none", "step", "plateau", "cosine", "onecycle")
LOSSES = ("ce", "bce")
AUGMENTS = ("none", "standard", "cifar", "alexnet")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # added by the training helper (see ``precision`` below)


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Defaults suit a one-minute ``shapes`` run on a CPU.

    ``init`` is ``none`` (random), ``imagenet`` (torchvision weights),
    ``run:<id>`` (an earlier run's best checkpoint) or a path to a weights file
    (a torchvision state_dict or a cnnviz checkpoint).
    """

    arch: str = "alexnet_cifar"
    options: dict[str, Any] = field(default_factory=dict)  # architecture options; missing keys take the spec defaults
    dataset: str = "shapes"
    data_root: str | None = None  # None: cnnviz.paths.data_root()
    data_path: str | None = None  # the folder or .zip for dataset="folder"
    labels: str = "fine"  # cifar100 only: "fine" (100) or "coarse" (20 superclasses)
    mode: str = "scratch"
    probe_layer: str | None = None  # probe mode: a probe point name of the arch, or "input" for raw pixels
    init: str = "none"
    epochs: int = 3
    batch_size: int = 64
    lr: float = 0.01  # per batch of batch_size; SGD default for small CNNs from scratch
    optimizer: str = "sgd"
    momentum: float = 0.9  # AlexNet paper
    weight_decay: float = 5e-4  # AlexNet paper
    scheduler: str = "none"
    step_size: int = 7  # step scheduler: epochs between lr /= 10 (the PyTorch tutorial's choice)
    label_smoothing: float = 0.0
    loss: str = "ce"  # "bce": BCE-with-logits on a single logit, two-class tasks only
    augment: str = "none"
    image_size: int | None = None  # None: the architecture's default size (capped by the dataset's native size where sensible)
    subset: int | None = None  # images per class in the training split; None: all
    val_subset: int | None = None  # images per class in the validation split; None: all (quick class sessions, tests)
    val_split: str = "official"  # "official" where the dataset has one, else/or "random" (stratified 80/20, seeded)
    seed: int = 0
    device: str = "auto"
    track_grad_norms: bool = False  # record per-layer gradient norms each epoch (degradation experiment)
    # auto: mixed precision on a GPU (bf16, or fp16 with loss scaling); fp32 on a CPU unless it has AMX,
    # because bf16 autocast measured slower on AVX512-BF16 CPUs without AMX (benchmarks/README.md).
    precision: str = "auto"
    name: str = ""

    def __post_init__(self):
        checks = {"mode": MODES, "optimizer": OPTIMIZERS, "scheduler": SCHEDULERS, "loss": LOSSES, "augment": AUGMENTS,
                  "precision": PRECISIONS}
        for attr, allowed in checks.items():
            if getattr(self, attr) not in allowed:
                raise ValueError(f"{attr} must be one of {', '.join(allowed)}; got {getattr(self, attr)!r}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1; got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1; got {self.batch_size}")
        if not self.lr > 0:
            raise ValueError(f"lr must be a positive number; got {self.lr}")
        if self.mode == "probe" and not self.probe_layer:
            raise ValueError("probe mode needs probe_layer (a probe point of the architecture, or 'input')")
        object.__setattr__(self, "options", dict(self.options))

    def replace(self, **changes) -> "TrainConfig":
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """Build from a dict, ignoring keys this version does not know (older/newer run cards)."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_json(cls, text: str) -> "TrainConfig":
        return cls.from_dict(json.loads(text))

    def describe(self) -> str:
        """A one-line human summary, e.g. ``resnet18 finetune on hymenoptera, 3 ep, lr 0.001``."""
        opts = ",".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        arch = f"{self.arch}[{opts}]" if opts else self.arch
        probe = f"@{self.probe_layer}" if self.mode == "probe" else ""
        return f"{arch} {self.mode}{probe} on {self.dataset}, {self.epochs} ep, lr {self.lr:g}"
