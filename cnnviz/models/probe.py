"""Linear probes: softmax regression on the features at a probe point of a network, or on raw pixels.

A conv feature map at 224 px is far too big for a linear probe (ResNet-18 layer1: 64x56x56 =
200,704 numbers), so it is average-pooled first: a map of at most ``PROBE_FEATURES`` numbers is
flattened as it is; a bigger one is adaptively average-pooled to the largest s x s grid with
channels x s x s <= ``PROBE_FEATURES`` (ResNet-18 layer4 at 224 px: 512x2x2; layer1: 64x8x8; raw
pixels at 224 px: 3x36x36; raw pixels at 32 px: all 3,072). Pooling keeps every channel and some
layout, and is itself linear. The probe then standardises each feature with a batch norm that has
no learnable scale or shift (the linear probe of He et al., 2022, "Masked Autoencoders Are Scalable
Vision Learners"): features of a random or a deep network come on any scale, and SGD on unscaled
features diverges or crawls. At prediction time that standardisation is a fixed affine map, so the
probe is still softmax regression on the features.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .build import probe_module

PROBE_FEATURES = 4096  # most numbers a linear probe reads per image (see the module docstring)
INPUT = "input"  # the probe point that means "the raw (normalised) pixels"


class _Captured(Exception):
    """Carries a tensor out of a forward pass, which stops the rest of the network from running."""

    def __init__(self, value: torch.Tensor):
        super().__init__()
        self.value = value


def run_until(model: nn.Module, module: nn.Module, x: torch.Tensor, *, take: str = "output") -> torch.Tensor:
    """Run ``model`` on ``x`` only as far as ``module`` and return its ``take`` ("input" or "output").

    The layers after ``module`` never run: a hook raises once it has the tensor.
    """
    if take == "input":
        def pre_hook(_module, args):
            raise _Captured(args[0])
        handle = module.register_forward_pre_hook(pre_hook)
    else:
        def hook(_module, _args, output):
            raise _Captured(output)
        handle = module.register_forward_hook(hook)
    try:
        model(x)
    except _Captured as captured:
        return captured.value
    finally:
        handle.remove()
    raise RuntimeError(f"{type(module).__name__} never ran in the forward pass of {type(model).__name__}")


def probe_grid(shape: tuple[int, ...]) -> int | None:
    """The pooled grid side for a (C, H, W) feature map, or None to flatten it as it is."""
    if len(shape) != 3 or math.prod(shape) <= PROBE_FEATURES:
        return None
    channels, height, width = shape
    return max(1, min(height, width, math.isqrt(PROBE_FEATURES // channels)))


def pool_features(x: torch.Tensor, grid: int | None) -> torch.Tensor:
    """Flatten a batch of feature maps, average-pooled to ``grid`` x ``grid`` first when ``grid`` is set."""
    if grid is not None and x.dim() == 4:
        x = nn.functional.adaptive_avg_pool2d(x, grid)
    return x.flatten(1)


class ProbeModel(nn.Module):
    """A linear probe: ``probe(pool(features at point))``; ``backbone`` is None for a probe on the raw pixels.

    ``probe`` is a BatchNorm1d without affine parameters (standardises the features) and a Linear.
    Its ``state_dict`` holds ``backbone.*`` (the frozen network, when there is one) and
    ``probe.0.*`` (feature statistics), ``probe.1.weight`` / ``probe.1.bias``;
    ``cnnviz.checkpoint.build_model`` rebuilds it.
    """

    def __init__(self, backbone: nn.Module | None, point: str, grid: int | None, in_features: int, num_classes: int):
        super().__init__()
        self.backbone = backbone
        self.point = point
        self.grid = grid
        self.probe = nn.Sequential(nn.BatchNorm1d(in_features, affine=False), nn.Linear(in_features, num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled, flattened features the probe reads."""
        if self.backbone is not None:
            x = run_until(self.backbone, probe_module(self.backbone, self.point), x)
        return pool_features(x, self.grid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.probe(self.features(x))
