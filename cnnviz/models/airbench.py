"""airbench: Keller Jordan's fast CIFAR-10 network (arXiv:2404.00498, github.com/KellerJordan/cifar10-airbench).

    stem: conv 2x2 (24 filters, no padding) -> GELU      whitened from the training images, never trained
    group k (k = 1, 2, 3): conv 3x3 -> max pool 2 -> BN -> GELU -> conv 3x3 -> BN -> GELU
    global max pool -> FC -> x 1/9

airbench94 has groups of 64, 256 and 256 channels; airbench93 of 64, 128 and 128 (``width`` 64,
``width_factor`` 2, the default here: it trains in minutes on a CPU). As in airbench, the
batch-norm scales stay at 1 (only the shifts train), the 3x3 convolutions start as identities
on their first input channels, and the logits are divided by 9. The stem's filters are the
eigenvectors of the 2x2-patch covariance of the training images, scaled by 1/sqrt(eigenvalue),
and their negatives (``whitening_filters``); the trainer computes them before the first epoch
(``cnnviz.training.callbacks.WhitenFirstLayer``). ``whiten=False`` makes the stem an ordinary
trainable convolution, to see what whitening is worth.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import Stage
from .registry import ModelSpec, Option, register

AIRBENCH_PAPER = ("Jordan (2024). 94% on CIFAR-10 in 3.29 Seconds on a Single GPU. arXiv:2404.00498; "
                  "code: github.com/KellerJordan/cifar10-airbench.")
WHITEN_KERNEL = 2
WHITEN_EPS = 5e-4  # airbench's eps added to the eigenvalues
BN_MOMENTUM = 0.4  # PyTorch's convention (airbench writes 0.6 for the share of the old running statistics)
BN_EPS = 1e-12
SHIFT_SCALE = 8.0  # sqrt of airbench's bias_scaler 64 (see ShiftNorm)
LOGIT_SCALE = 1 / 9  # airbench's "scaling_factor": small logits at the start, so large learning rates work


class WhiteningConv(nn.Conv2d):
    """A conv whose filters are computed from data (``fit``), not trained: its weight is a buffer.

    The bias is a parameter (airbench trains it for the first epochs). The weight stays in the
    state dict under ``weight``, so checkpoints keep the filters.
    """

    def __init__(self, in_channels: int = 3, kernel_size: int = WHITEN_KERNEL):
        super().__init__(in_channels, 2 * in_channels * kernel_size ** 2, kernel_size, padding=0, bias=True)
        weight = self.weight.detach()
        del self.weight
        self.register_buffer("weight", weight)

    @torch.no_grad()
    def fit(self, images: torch.Tensor) -> None:
        """Set the filters to ``whitening_filters(images)`` (normalised model inputs, N x C x H x W)."""
        self.weight.copy_(whitening_filters(images, kernel_size=self.kernel_size[0]).to(self.weight))


@torch.no_grad()
def whitening_filters(images: torch.Tensor, *, kernel_size: int = WHITEN_KERNEL, eps: float = WHITEN_EPS,
                      chunk: int = 500) -> torch.Tensor:
    """The 2 x C*k*k whitening filters of ``images``' k x k patches: eigenvectors / sqrt(eigenvalue + eps), then
    their negatives, largest eigenvalue first. Shape (2*C*k*k, C, k, k); the patch covariance is accumulated in
    chunks of images, so thousands of images need little memory."""
    c = images.shape[1]
    dim = c * kernel_size ** 2
    moment = torch.zeros(dim, dim, dtype=torch.float64, device=images.device)
    count = 0
    for part in images.split(chunk):
        patches = F.unfold(part.float(), kernel_size).transpose(1, 2).reshape(-1, dim).double()  # (c, kh, kw) order
        moment += patches.T @ patches
        count += patches.shape[0]
    eigenvalues, eigenvectors = torch.linalg.eigh(moment / max(count, 1))  # ascending
    eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.T.flip(0)  # rows: eigenvectors, largest first
    scaled = (eigenvectors / torch.sqrt(eigenvalues.clamp(min=0) + eps)[:, None]).float()
    return torch.cat((scaled, -scaled)).view(2 * dim, c, kernel_size, kernel_size)


class ShiftNorm(nn.BatchNorm2d):
    """Batch norm whose scale stays 1 (a buffer): only the shift trains, as in airbench.

    airbench trains the shifts with 64 times the learning rate of the other weights (its
    ``bias_scaler``). Storing shift / 8 and multiplying by 8 here does the same with one optimiser
    group: under SGD the gradient of the stored value is 8 times larger and each step moves the
    shift 8 times further, while weight decay shrinks it at the same rate as every other weight.
    """

    def __init__(self, channels: int):
        super().__init__(channels, eps=BN_EPS, momentum=BN_MOMENTUM)
        weight = self.weight.detach()
        del self.weight
        self.register_buffer("weight", weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias * SHIFT_SCALE,
                            self.training, self.momentum, self.eps)


class IdentityConv(nn.Conv2d):
    """3x3 'same' conv without bias that starts as the identity on its first input channels (airbench's init)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, 3, padding=1, bias=False)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        with torch.no_grad():
            nn.init.dirac_(self.weight[:min(self.in_channels, self.out_channels)])


class ConvGroup(nn.Sequential):
    """conv 3x3 -> max pool 2 -> BN -> GELU -> conv 3x3 -> BN -> GELU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(OrderedDict(
            conv1=IdentityConv(in_channels, out_channels), pool=nn.MaxPool2d(2), norm1=ShiftNorm(out_channels),
            act1=nn.GELU(), conv2=IdentityConv(out_channels, out_channels), norm2=ShiftNorm(out_channels),
            act2=nn.GELU()))


class Scale(nn.Module):
    """Multiply by a constant."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor

    def extra_repr(self) -> str:
        return f"factor={self.factor:.4g}"


class Airbench(nn.Module):
    """stem -> group1..3 -> global max pool -> fc -> x 1/9."""

    def __init__(self, *, num_classes: int, width: int = 64, width_factor: int = 2, whiten: bool = True):
        super().__init__()
        stem = WhiteningConv() if whiten else nn.Conv2d(3, 2 * 3 * WHITEN_KERNEL ** 2, WHITEN_KERNEL)
        self.stem = nn.Sequential(OrderedDict(conv=stem, act=nn.GELU()))
        widths = _widths(width, width_factor)
        self.group1 = ConvGroup(stem.out_channels, widths[0])
        self.group2 = ConvGroup(widths[0], widths[1])
        self.group3 = ConvGroup(widths[1], widths[2])
        self.pool = nn.AdaptiveMaxPool2d(1)  # airbench's MaxPool2d(3) on its 3x3 maps, for any input size
        self.fc = nn.Linear(widths[2], num_classes)
        self.scale = Scale(LOGIT_SCALE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.group3(self.group2(self.group1(self.stem(x))))
        return self.scale(self.fc(torch.flatten(self.pool(x), 1)))


def _widths(width: int, factor: int) -> tuple[int, int, int]:
    return width, factor * width, factor * width


def build_airbench(*, num_classes: int, width: int = 64, width_factor: int = 2, whiten: bool = True) -> nn.Module:
    """airbench with groups of ``width``, ``width_factor * width`` and ``width_factor * width`` channels."""
    return Airbench(num_classes=num_classes, width=width, width_factor=width_factor, whiten=whiten)


def _airbench_diagram(options: dict) -> list[Stage]:
    widths = _widths(int(options.get("width", 64)), int(options.get("width_factor", 2)))
    stem = "whitened from the data, frozen" if options.get("whiten", True) else "trained"
    stages = [Stage("stem", f"stem\nconv 2x2, 24 + GELU\n({stem})")]
    for k, width in enumerate(widths, start=1):
        stages.append(Stage(f"group{k}", f"group {k}: {width}, /2\nconv 3x3, max pool, BN, GELU\nconv 3x3, BN, GELU"))
    stages.append(Stage("head", "global max pool\nFC, x 1/9"))
    return stages


register(ModelSpec(
    name="airbench",
    label="airbench (fast CIFAR-10 network)",
    builder=build_airbench,
    options=(
        Option("width", "int", 64, "Width", "Channels of the first group (airbench93 and 94: 64).",
               choices=(16, 32, 48, 64, 96, 128)),
        Option("width_factor", "int", 2, "Width factor of groups 2 and 3",
               "Groups 2 and 3 have width x this many channels (airbench93: 2, airbench94: 4).", choices=(1, 2, 3, 4)),
        Option("whiten", "bool", True, "Whitened first layer",
               "On: the 2x2 stem's filters whiten the training images' patches and never train. "
               "Off: an ordinary trained convolution."),
    ),
    default_size=32,
    min_size=16,  # three halvings after the 2x2 stem leave 1x1 maps at 16 px
    head="fc",
    probe_points={"stem": "stem", "group1": "group1", "group2": "group2", "group3": "group3"},
    family="airbench",
    cam_layer="group3",  # the last group's rectified maps, before the global max pool
    paper=AIRBENCH_PAPER,
    description="A small network tuned to train CIFAR-10 fast: a whitened 2x2 stem and three conv groups.\n"
                "Its tricks (whitening, label smoothing, flip TTA, weight averaging) can each be turned off.",
    diagram=_airbench_diagram,
))
