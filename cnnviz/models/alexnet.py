"""AlexNet (Krizhevsky, Sutskever and Hinton, 2012) and the course's AlexNet hybrids.

``alexnet`` keeps torchvision's module layout so its ImageNet weights load: the options
only swap parameter-free modules (LRN, dropout) or add batch norm into the slot after each
convolution, so the convolution and linear keys (``features.0.weight`` ...) never move.

``alexnet_cifar``, ``alex_resnet`` and ``alex_se`` are presets of one configurable AlexNet
made of three conv blocks (block 1 = conv1, block 2 = conv2, block 3 = conv3..conv5), each
of which can get a projection shortcut and/or a squeeze-and-excitation block after it. The
presets differ only in their toggles, so comparing them is a fair experiment.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .blocks import SqueezeExcitation, Stage
from .registry import ModelSpec, Option, register

ALEXNET_PAPER = (
    "Krizhevsky, Sutskever and Hinton (2012). ImageNet Classification with Deep "
    "Convolutional Neural Networks. NeurIPS."
)
SE_PAPER = "Hu, Shen and Sun (2018). Squeeze-and-Excitation Networks. CVPR."
RESNET_PAPER = "He, Zhang, Ren and Sun (2016). Deep Residual Learning for Image Recognition. CVPR."


def _lrn() -> nn.LocalResponseNorm:
    # The paper's k=2, n=5, alpha=1e-4, beta=0.75. PyTorch divides alpha by the window size
    # (alpha/n * sum a^2), the paper does not, so the paper's alpha is passed as 1e-4 * 5.
    return nn.LocalResponseNorm(size=5, alpha=1e-4 * 5, beta=0.75, k=2.0)


def _after_conv(channels: int, *, batchnorm: bool, lrn: bool = False) -> nn.Module:
    """The slot after a convolution: ReLU, with batch norm before it and LRN after it if asked."""
    if not batchnorm and not lrn:
        return nn.ReLU(inplace=True)
    parts: OrderedDict[str, nn.Module] = OrderedDict()
    if batchnorm:
        parts["bn"] = nn.BatchNorm2d(channels)
    parts["relu"] = nn.ReLU(inplace=True)
    if lrn:
        parts["lrn"] = _lrn()
    return nn.Sequential(parts)


def _classifier(in_features: int, hidden: int, num_classes: int, *, dropout: bool) -> nn.Sequential:
    """AlexNet's three fully connected layers; the head is ``classifier.6``."""

    def drop() -> nn.Module:
        return nn.Dropout(p=0.5) if dropout else nn.Identity()

    return nn.Sequential(
        drop(), nn.Linear(in_features, hidden), nn.ReLU(inplace=True),
        drop(), nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
        nn.Linear(hidden, num_classes),
    )


class AlexNet(nn.Module):
    """torchvision's AlexNet layout (``features``, ``avgpool``, ``classifier``) with the
    paper's optional local response normalisation and an optional batch norm."""

    def __init__(self, *, num_classes: int = 1000, lrn: bool = False, dropout: bool = True, batchnorm: bool = False):
        super().__init__()
        bias = not batchnorm  # batch norm's shift makes a conv bias redundant
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2, bias=bias),
            _after_conv(64, batchnorm=batchnorm, lrn=lrn),  # the paper: LRN after conv1 and conv2
            nn.MaxPool2d(kernel_size=3, stride=2),  # overlapping pooling, as in the paper
            nn.Conv2d(64, 192, kernel_size=5, padding=2, bias=bias),
            _after_conv(192, batchnorm=batchnorm, lrn=lrn),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1, bias=bias),
            _after_conv(384, batchnorm=batchnorm),
            nn.Conv2d(384, 256, kernel_size=3, padding=1, bias=bias),
            _after_conv(256, batchnorm=batchnorm),
            nn.Conv2d(256, 256, kernel_size=3, padding=1, bias=bias),
            _after_conv(256, batchnorm=batchnorm),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = _classifier(256 * 6 * 6, 4096, num_classes, dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


# Per block, the convolutions as (out_channels, kernel, stride, padding).
ALEX_BLOCKS = {
    # The paper's geometry (torchvision's channel counts), for 224 px inputs.
    "imagenet": ([(64, 11, 4, 2)], [(192, 5, 1, 2)], [(384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1)]),
    # For 32 px CIFAR images: a 5x5 stride-1 first layer instead of 11x11 stride 4.
    "cifar": ([(64, 5, 1, 2)], [(192, 5, 1, 2)], [(384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1)]),
}
ALEX_POOL_SIDE = {"imagenet": 6, "cifar": 3}  # feature map side fed to the classifier
ALEX_HIDDEN = {"imagenet": 4096, "cifar": 1024}  # 4096-wide FC layers would dwarf a 32 px network


class AlexBlock(nn.Module):
    """One AlexNet conv block: convs (+BN) -> [+ projection shortcut] -> ReLU -> max pool -> [SE].

    The shortcut is a 1x1 convolution (+BN) preceded, when the block's first conv has a
    stride, by an average pool with that conv's kernel/stride/padding, so both paths give
    the same shape at any input size. Without it the block is the plain AlexNet block.
    """

    def __init__(self, in_channels: int, convs: list[tuple[int, int, int, int]], *, first_index: int,
                 batchnorm: bool, residual: bool, se: bool, se_reduction: int):
        super().__init__()
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        channels = in_channels
        for offset, (out, kernel, stride, padding) in enumerate(convs):
            i = first_index + offset  # name convs as AlexNet does: conv1 ... conv5
            layers[f"conv{i}"] = nn.Conv2d(channels, out, kernel, stride, padding, bias=not batchnorm)
            if batchnorm:
                layers[f"bn{i}"] = nn.BatchNorm2d(out)
            if offset < len(convs) - 1:  # the last ReLU comes after the addition
                layers[f"relu{i}"] = nn.ReLU(inplace=True)
            channels = out
        self.body = nn.Sequential(layers)
        self.residual = residual
        self.shortcut = _projection(in_channels, channels, convs[0], batchnorm=batchnorm) if residual else None
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2)
        self.se = SqueezeExcitation(channels, se_reduction) if se else None
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        out = self.pool(self.relu(out))
        if self.se is not None:
            out = self.se(out)
        return out


def _projection(in_channels: int, out_channels: int, first_conv: tuple[int, int, int, int], *, batchnorm: bool) -> nn.Sequential:
    """A projection shortcut whose output shape matches the block body's."""
    _, kernel, stride, padding = first_conv
    parts: OrderedDict[str, nn.Module] = OrderedDict()
    if stride > 1 or 2 * padding != kernel - 1:
        parts["pool"] = nn.AvgPool2d(kernel, stride, padding)
    parts["conv"] = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=not batchnorm)
    if batchnorm:
        parts["bn"] = nn.BatchNorm2d(out_channels)
    return nn.Sequential(parts)


class AlexBlocksNet(nn.Module):
    """AlexNet as three blocks (``features.block1`` .. ``features.block3``) with per-block
    shortcut and SE toggles; ``stem`` picks the 224 px or the 32 px geometry."""

    def __init__(self, *, num_classes: int, stem: str = "cifar", batchnorm: bool = True, dropout: bool = True,
                 residual: tuple[bool, ...] = (False, False, False), se: tuple[bool, ...] = (False, False, False),
                 se_reduction: int = 16):
        super().__init__()
        blocks: OrderedDict[str, nn.Module] = OrderedDict()
        channels, first_index = 3, 1
        for k, convs in enumerate(ALEX_BLOCKS[stem]):
            block = AlexBlock(channels, list(convs), first_index=first_index, batchnorm=batchnorm,
                              residual=residual[k], se=se[k], se_reduction=se_reduction)
            blocks[f"block{k + 1}"] = block
            channels, first_index = block.out_channels, first_index + len(convs)
        self.features = nn.Sequential(blocks)
        side = ALEX_POOL_SIDE[stem]
        self.avgpool = nn.AdaptiveAvgPool2d((side, side))
        self.classifier = _classifier(channels * side * side, ALEX_HIDDEN[stem], num_classes, dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def build_alexnet(*, num_classes: int, lrn: bool = False, dropout: bool = True, batchnorm: bool = False) -> nn.Module:
    """torchvision-layout AlexNet."""
    return AlexNet(num_classes=num_classes, lrn=lrn, dropout=dropout, batchnorm=batchnorm)


def build_alex_blocks(*, num_classes: int, stem: str = "cifar", batchnorm: bool = True, dropout: bool = True,
                      residual_1: bool = False, residual_2: bool = False, residual_3: bool = False,
                      se_1: bool = False, se_2: bool = False, se_3: bool = False, se_reduction: int = 16) -> nn.Module:
    """The configurable AlexNet behind alexnet_cifar, alex_resnet and alex_se."""
    return AlexBlocksNet(num_classes=num_classes, stem=stem, batchnorm=batchnorm, dropout=dropout,
                         residual=(residual_1, residual_2, residual_3), se=(se_1, se_2, se_3),
                         se_reduction=se_reduction)


def _alexnet_diagram(options: dict) -> list[Stage]:
    lrn = " + LRN" if options.get("lrn") else ""
    bn = " + BN" if options.get("batchnorm") else ""
    return [
        Stage("conv1", f"conv1 11x11/4, 64{bn}{lrn}\nmax pool 3/2"),
        Stage("conv2", f"conv2 5x5, 192{bn}{lrn}\nmax pool 3/2"),
        Stage("conv3_5", f"conv3 3x3, 384{bn}\nconv4 3x3, 256{bn}\nconv5 3x3, 256{bn}\nmax pool 3/2"),
        Stage("classifier", "avg pool 6x6\nFC 4096, FC 4096" + (" (dropout)" if options.get("dropout") else "")),
    ]


def _alex_blocks_diagram(options: dict) -> list[Stage]:
    stem = options.get("stem", "cifar")
    bn = " + BN" if options.get("batchnorm") else ""
    stages = []
    index = 1
    for k, convs in enumerate(ALEX_BLOCKS[stem], start=1):
        lines = []
        for out, kernel, stride, _ in convs:
            step = f"/{stride}" if stride > 1 else ""
            lines.append(f"conv{index} {kernel}x{kernel}{step}, {out}{bn}")
            index += 1
        lines.append("max pool 3/2")
        stages.append(Stage(f"block{k}", f"block {k}\n" + "\n".join(lines),
                            shortcut="1x1 projection" if options.get(f"residual_{k}") else None,
                            se="after" if options.get(f"se_{k}") else None))
    side, hidden = ALEX_POOL_SIDE[stem], ALEX_HIDDEN[stem]
    stages.append(Stage("classifier", f"avg pool {side}x{side}\nFC {hidden}, FC {hidden}"))
    return stages


register(ModelSpec(
    name="alexnet",
    label="AlexNet (torchvision, 224 px)",
    builder=build_alexnet,
    options=(
        Option("lrn", "bool", False, "Local response normalisation",
               "The paper's LRN after conv1 and conv2 (k=2, n=5, alpha=1e-4, beta=0.75)."),
        Option("dropout", "bool", True, "Dropout", "Dropout 0.5 before the first two fully connected layers."),
        Option("batchnorm", "bool", False, "Batch norm",
               "Batch norm after every convolution (not in the paper; the ImageNet weights have none)."),
    ),
    default_size=224,
    min_size=63,
    head="classifier.6",
    probe_points={"conv1": "features.2", "conv2": "features.5", "conv3": "features.7",
                  "conv4": "features.9", "conv5": "features.12"},
    family="alexnet",
    cam_layer="features.11",  # the slot after conv5 (ReLU, or BN + ReLU): 13x13 maps before the last pool
    weights="AlexNet_Weights.IMAGENET1K_V1",
    weights_options={"lrn": False, "dropout": True, "batchnorm": False},
    paper=ALEXNET_PAPER,
    description="Five convolutions and three fully connected layers: the 2012 network that started deep learning "
                "for vision.\nReLU, overlapping max pooling, dropout and (optionally) local response normalisation.",
    diagram=_alexnet_diagram,
))

_ALEX_BLOCK_OPTIONS = (
    Option("stem", "choice", "cifar", "Geometry",
           "cifar: 5x5 stride-1 first conv for 32 px inputs; imagenet: the paper's 11x11 stride-4 conv for 224 px.",
           choices=("cifar", "imagenet")),
    Option("batchnorm", "bool", True, "Batch norm", "Batch norm after every convolution."),
    Option("dropout", "bool", True, "Dropout", "Dropout 0.5 before the first two fully connected layers."),
    *(Option(f"residual_{k}", "bool", False, f"Shortcut around block {k}",
             "A 1x1 projection shortcut added before the block's last ReLU (He et al., 2016).", group=f"block {k}")
      for k in (1, 2, 3)),
    *(Option(f"se_{k}", "bool", False, f"SE after block {k}",
             "A squeeze-and-excitation block after the block's pooling (Hu et al., 2018).", group=f"block {k}")
      for k in (1, 2, 3)),
    Option("se_reduction", "int", 16, "SE reduction ratio", "SE hidden width = channels / ratio.",
           choices=(4, 8, 16, 32)),
)
_ALEX_BLOCK_PROBES = {"block1": "features.block1", "block2": "features.block2", "block3": "features.block3"}


def _register_alex_blocks(name: str, label: str, *, paper: str, description: str, presets: dict) -> None:
    """Register one preset of the configurable AlexNet: same builder and options, other defaults."""
    register(ModelSpec(
        name=name,
        label=label,
        builder=build_alex_blocks,
        options=_ALEX_BLOCK_OPTIONS,
        default_size=32,
        min_size=16,  # the geometry needs 15 px with stem=cifar (63 with stem=imagenet); 16 px is the floor
        head="classifier.6",
        probe_points=_ALEX_BLOCK_PROBES,
        family="alexnet",
        cam_layer="features.block3.relu",  # after the shortcut's addition, before the last pool
        paper=paper,
        description=description,
        presets=presets,
        diagram=_alex_blocks_diagram,
    ))


_register_alex_blocks(
    "alexnet_cifar", "AlexNet for 32 px (CIFAR)", paper=ALEXNET_PAPER, presets={},
    description="AlexNet's five convolutions shaped for 32x32 images: 5x5 then 3x3 kernels, with batch norm.\n"
                "The same network as AlexResNet and AlexSE with every shortcut and SE block switched off.")
_register_alex_blocks(
    "alex_resnet", "AlexResNet (AlexNet + shortcuts)", paper=f"{ALEXNET_PAPER} Shortcuts: {RESNET_PAPER}",
    presets={"residual_1": True, "residual_2": True},
    description="AlexNet with 1x1 projection shortcuts around conv blocks 1 and 2 (toggle any block).\n"
                "Does a residual path help a shallow network? Compare with alexnet_cifar.")
_register_alex_blocks(
    "alex_se", "AlexSE (AlexNet + squeeze-and-excitation)", paper=f"{ALEXNET_PAPER} SE: {SE_PAPER}",
    presets={"se_2": True},
    description="AlexNet with a squeeze-and-excitation block after conv block 2 (toggle any block).\n"
                "SE learns to reweight channels; where does it help most: after block 1, 2, or both?")
