"""Building blocks shared by the architectures: squeeze-and-excitation and diagram stages."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation (Hu et al., 2018): rescale each channel by a gate learned from
    the channel's global average.

    ``fc1``/``fc2`` are 1x1 convolutions, which equal the paper's fully connected layers on
    the pooled vector and avoid reshapes. The hidden width is ``channels // reduction``.
    """

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.gate(self.fc2(self.relu(self.fc1(self.pool(x)))))
        return x * scale


def se_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every squeeze-and-excitation block in ``model`` with its name, in order (the Learn page reads their gates)."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, SqueezeExcitation)]


@dataclass(frozen=True)
class Stage:
    """One box of a block diagram.

    ``shortcut`` labels the skip connection around the box (None: no shortcut);
    ``se`` is None, ``"inside"`` (SE inside every block, before the addition) or
    ``"after"`` (one SE block after this box).
    """

    name: str
    label: str
    shortcut: str | None = None
    se: str | None = None
    blocks: int = 1  # residual blocks in the box, each with its own skip (the first takes ``shortcut``)
