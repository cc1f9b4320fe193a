"""Training: ``TrainConfig`` -> ``train`` -> ``RunResult``, with events for listeners (``callbacks.py``).

    from cnnviz.training import TrainConfig, train
    result = train(TrainConfig(arch="resnet18", dataset="hymenoptera", mode="freeze", init="imagenet"))

The config names import without torch (a page can build a config cheaply);
``train`` and the other names load the trainer, and torch, on first use.
"""

from __future__ import annotations

from .config import AUGMENTS, LOSSES, MODES, OPTIMIZERS, PRECISIONS, SCHEDULERS, TrainConfig

_TRAINER_NAMES = ("train", "Trainer", "RunResult", "TrainState", "Callback", "StopTraining", "CallbackError",
                  "Diverged", "BestCheckpoint")

__all__ = ["AUGMENTS", "LOSSES", "MODES", "OPTIMIZERS", "PRECISIONS", "SCHEDULERS", "TrainConfig",
           *_TRAINER_NAMES]


def __getattr__(name: str):
    if name in _TRAINER_NAMES:
        from . import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
