"""Softmax regression on raw pixels: one linear layer, the baseline of the linear probes.

The layer reads a ``pixels`` x ``pixels`` RGB image. Inputs of another size are first
area-averaged to that side (``AdaptiveAvgPool2d``); averaging is itself linear in the
pixels, so the whole model stays a linear map of the raw image followed by softmax. At the
default 32 px on CIFAR the layer sees exactly the raw pixels.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import Stage
from .registry import ModelSpec, Option, register


class SoftmaxRegression(nn.Module):
    """(optional area resize) -> flatten -> Linear(3 * pixels^2, num_classes)."""

    def __init__(self, *, num_classes: int, pixels: int = 32):
        super().__init__()
        self.resize = nn.AdaptiveAvgPool2d((pixels, pixels))
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(3 * pixels * pixels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.resize(x)))


def build_softmax(*, num_classes: int, pixels: int = 32) -> nn.Module:
    """Softmax regression on ``pixels`` x ``pixels`` RGB images."""
    return SoftmaxRegression(num_classes=num_classes, pixels=pixels)


register(ModelSpec(
    name="softmax",
    label="Softmax regression (raw pixels)",
    builder=build_softmax,
    options=(Option("pixels", "int", 32, "Pixels per side",
                    "The layer reads pixels x pixels x 3 values; other input sizes are area-averaged to this.",
                    choices=(16, 32, 64)),),
    default_size=32,
    min_size=16,
    head="fc",
    probe_points={},  # it is itself the probe on raw pixels
    family="linear",  # no convolution, so no cam_layer
    paper="Softmax (multinomial logistic) regression; see e.g. Goodfellow, Bengio and Courville (2016), Deep Learning, 6.2.2.3.",
    description="A single linear layer from the raw pixels to the class scores, then softmax: no features at all.\n"
                "The baseline every convolutional network and every linear probe should beat.",
    diagram=lambda options: [Stage("pixels", f"resize to {options.get('pixels', 32)}x{options.get('pixels', 32)}\nflatten"),
                             Stage("fc", "FC to classes\nsoftmax")],
))
