"""The four training modes as a ``Learner``: which part of the network trains, which part is frozen.

The trainer never looks inside a model. It asks a ``Learner`` for two modules:

- ``frozen``: runs without gradients, in eval mode, between the normalised
  images and the trainable part (None when everything trains). Because it never
  changes, its outputs can be computed once and cached (``cnnviz.training.features``).
- ``trainable``: maps the frozen part's output (or the images) to class scores;
  the optimiser updates its parameters.

Mode by mode:

- ``scratch``: random initialisation; ``trainable`` is the whole network.
- ``finetune``: weights from ``config.init``, a new head, everything trains.
- ``freeze``: weights from ``config.init``, a new head, only the head trains;
  ``frozen`` is the network up to the head's input (the head itself is skipped).
- ``probe``: softmax regression (one ``nn.Linear``) on the features at a probe
  point of the network, or on the raw pixels (``probe_layer="input"``).

``freeze`` and ``probe`` accept any ``init``, ``none`` included: a random
network's features are the baseline that shows what pretraining bought.

Probe features are pooled and standardised as ``cnnviz.models.probe`` explains.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cnnviz.checkpoint import build_model
from cnnviz.data import get_dataset_spec
from cnnviz.inspect import min_input_size
from cnnviz.models import (INPUT, PROBE_FEATURES, ProbeModel, freeze_backbone, get_model, get_spec, head_module,
                           pool_features, probe_grid, probe_module, replace_head, resolve_options, run_until)

__all__ = ["INPUT", "PROBE_FEATURES", "HeadInput", "Learner", "ProbeModel", "build_learner", "pool_features",
           "probe_grid", "probe_model_from_payload", "resolve_image_size", "run_until"]

class HeadInput(nn.Module):
    """The frozen body of a network: what its head receives (the head and anything after it are skipped)."""

    def __init__(self, model: nn.Module, head: nn.Module):
        super().__init__()
        self.model = model
        self._head = [head]  # a list, so the head is not registered twice as a submodule

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return run_until(self.model, self._head[0], x, take="input")


class _ProbeFeatures(nn.Module):
    """The frozen half of a ProbeModel, as a module of its own."""

    def __init__(self, probe_model: ProbeModel):
        super().__init__()
        self.probe_model = probe_model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.probe_model.features(x)


@dataclass
class Learner:
    """What one run trains. ``predictor`` maps normalised images to scores (it is what gets checkpointed)."""

    mode: str
    predictor: nn.Module
    trainable: nn.Module
    frozen: nn.Module | None = None
    probe_layer: str | None = None
    probe_grid: int | None = None
    probe_features: int | None = None

    def train_mode(self) -> None:
        """Trainable part in train mode; a frozen body stays in eval mode (its batch-norm statistics do not move)."""
        if self.frozen is None:
            self.trainable.train()
        else:
            self.predictor.eval()
            self.trainable.train()

    def eval_mode(self) -> None:
        self.predictor.eval()

    def parameters(self) -> list[nn.Parameter]:
        """The parameters the optimiser updates."""
        return [p for p in self.trainable.parameters() if p.requires_grad]

    def snapshot(self) -> dict[str, torch.Tensor]:
        """A CPU copy of everything training changes (the whole state when nothing is frozen)."""
        module = self.trainable if self.frozen is not None else self.predictor
        return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}

    def full_state(self, snapshot: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The predictor's full state_dict (on the CPU) with ``snapshot`` put back in."""
        if self.frozen is None:
            return dict(snapshot)
        prefix = _prefix_of(self.predictor, self.trainable)
        state = {k: v.detach().to("cpu", copy=True) for k, v in self.predictor.state_dict().items()}
        state.update({prefix + k: v for k, v in snapshot.items()})
        return state

    def conv_and_linear(self) -> list[tuple[str, nn.Parameter]]:
        """(module path, weight) of every trainable conv/linear layer: the layers whose gradients are tracked."""
        return [(name, module.weight) for name, module in self.predictor.named_modules()
                if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear)) and module.weight.requires_grad]


def _prefix_of(root: nn.Module, child: nn.Module) -> str:
    for name, module in root.named_modules():
        if module is child:
            return f"{name}." if name else ""
    raise ValueError("the trainable module is not part of the predictor")


def build_learner(config, *, num_outputs: int, image_size: int, device: torch.device) -> Learner:
    """The model of ``config`` for its mode, on ``device``, with the head replaced after the weights are loaded."""
    init = "none" if config.mode == "scratch" else config.init  # scratch means random, whatever init says
    if config.mode == "probe" and config.probe_layer == INPUT:
        model = None
    else:
        # A weights file or an earlier run supplies its own options unless the config names some.
        from_file = init not in ("none", "imagenet")
        options = (config.options or None) if from_file else config.options
        model = get_model(config.arch, num_classes=num_outputs, options=options, init=init)
        if init != "none":
            replace_head(model, num_outputs)  # always a fresh head, even when the loaded one had the right size
        model.to(device)
    if config.mode in ("scratch", "finetune"):
        return Learner(config.mode, model, model)
    if config.mode == "freeze":
        freeze_backbone(model)
        head = head_module(model)
        return Learner("freeze", model, head, frozen=HeadInput(model, head))
    return _probe_learner(model, config.probe_layer, num_outputs=num_outputs, image_size=image_size, device=device)


def _probe_learner(model: nn.Module | None, point: str, *, num_outputs: int, image_size: int,
                   device: torch.device) -> Learner:
    if model is not None:
        model.requires_grad_(False)
        model.eval()
    shape = (3, image_size, image_size) if model is None else _raw_shape(model, point, image_size, device)
    grid = probe_grid(shape)
    in_features = pool_features(torch.zeros(1, *shape), grid).shape[1]
    probe = ProbeModel(model, point, grid, in_features, num_outputs).to(device)
    return Learner("probe", probe, probe.probe, frozen=_ProbeFeatures(probe), probe_layer=point,
                   probe_grid=grid, probe_features=in_features)


def _raw_shape(model: nn.Module, point: str, image_size: int, device: torch.device) -> tuple[int, ...]:
    """The (C, H, W) shape of the features at ``point``, from one tiny forward pass."""
    with torch.no_grad():
        out = run_until(model, probe_module(model, point), torch.zeros(1, 3, image_size, image_size, device=device))
    return tuple(out.shape[1:])


def probe_model_from_payload(payload: dict[str, Any]) -> ProbeModel:
    """Rebuild the eval-mode ProbeModel a probe-mode checkpoint payload describes, weights loaded."""
    return build_model(payload)


def resolve_image_size(config) -> int:
    """The side length a run trains at: ``config.image_size``, else the dataset's native size when the
    architecture accepts it and it is not bigger than the architecture's default, else that default.

    Small native datasets (shapes, CIFAR at 32 px) thus train at their own size on models that allow it
    (ResNet-18 at 32 px) and are upsampled only where the architecture needs it (AlexNet: 63 px minimum).
    ValueError names the minimum when the size is too small.
    """
    spec = get_spec(config.arch)
    size = config.image_size
    if not size:
        native = _native_size(config.dataset)
        fits = native is not None and native >= _min_size(config.arch, resolve_options(config.arch, config.options))
        size = min(native, spec.default_size) if fits else spec.default_size
    _check_input_size(config.arch, size, config.options)
    return int(size)


def _native_size(dataset: str) -> int | None:
    try:
        return get_dataset_spec(dataset).native_size
    except Exception:  # noqa: BLE001 - an unknown dataset is reported when it is loaded
        return None


def _min_size(arch: str, options: dict[str, Any]) -> int:
    """The smallest input the architecture takes with these options (AlexNet's stem can raise the floor)."""
    return min_input_size(arch, options)


def _check_input_size(arch: str, size: int, options: dict[str, Any]) -> None:
    minimum = _min_size(arch, options)
    if size < minimum:
        raise ValueError(f"{arch} needs images of at least {minimum}x{minimum} pixels; got {size}x{size}"
                         + (" (an architecture made for 32 px, such as alexnet_cifar, takes small images)"
                            if minimum > 32 else ""))
