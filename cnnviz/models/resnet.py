"""ResNets: torchvision's ImageNet ResNet-18/34/50 with per-stage residual and SE toggles,
and He et al.'s CIFAR ResNets (depth 6n+2) with shortcut option A or B.

The ImageNet ResNets keep torchvision's module names (``conv1``, ``layer1.0.bn2``,
``layer2.0.downsample.0`` ...) so its ImageNet weights load. Turning ``residual_k`` off
removes every skip connection of stage k, including its downsample projection: the result
is the "plain" network of the same depth from the degradation experiment.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import SqueezeExcitation, Stage
from .registry import ModelSpec, Option, register

RESNET_PAPER = "He, Zhang, Ren and Sun (2016). Deep Residual Learning for Image Recognition. CVPR."
SE_PAPER = "Hu, Shen and Sun (2018). Squeeze-and-Excitation Networks. CVPR."


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs (ResNet-18/34). ``residual=False`` drops the skip; ``se`` adds SE before the sum."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, *, residual: bool = True,
                 se_reduction: int | None = None):
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.se = SqueezeExcitation(planes, se_reduction) if se_reduction else None
        self.residual = residual
        self.downsample = _downsample(inplanes, planes * self.expansion, stride) if residual else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(_finish(self, x, out))


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 bottleneck (ResNet-50), stride on the 3x3 as in torchvision."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, *, residual: bool = True,
                 se_reduction: int | None = None):
        super().__init__()
        width = planes
        self.conv1 = _conv1x1(inplanes, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.se = SqueezeExcitation(planes * self.expansion, se_reduction) if se_reduction else None
        self.residual = residual
        self.downsample = _downsample(inplanes, planes * self.expansion, stride) if residual else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(_finish(self, x, out))


def _downsample(inplanes: int, outplanes: int, stride: int) -> nn.Sequential | None:
    """torchvision's projection shortcut (1x1 conv + BN), only where the shape changes."""
    if stride == 1 and inplanes == outplanes:
        return None
    return nn.Sequential(_conv1x1(inplanes, outplanes, stride), nn.BatchNorm2d(outplanes))


def _finish(block: nn.Module, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """SE (Hu et al.: on the residual branch, before the sum), then the skip connection."""
    if block.se is not None:
        out = block.se(out)
    if block.residual:
        out = out + (block.downsample(x) if block.downsample is not None else x)
    return out


class ResNet(nn.Module):
    """torchvision's ResNet layout; ``stem="cifar"`` is a 3x3 stride-1 conv with no max pool."""

    def __init__(self, block: type[nn.Module], layers: list[int], *, num_classes: int, stem: str = "imagenet",
                 residual: tuple[bool, ...] = (True,) * 4, se: tuple[bool, ...] = (False,) * 4,
                 se_reduction: int = 16):
        super().__init__()
        self.inplanes = 64
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:  # for 32 px inputs a stride-4 stem would leave layer4 with 1x1 maps
            self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        for k, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers)):
            layer = self._make_layer(block, planes, blocks, stride=1 if k == 0 else 2, residual=residual[k],
                                     se_reduction=se_reduction if se[k] else None)
            setattr(self, f"layer{k + 1}", layer)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        _init_like_torchvision(self)

    def _make_layer(self, block, planes: int, blocks: int, *, stride: int, residual: bool,
                    se_reduction: int | None) -> nn.Sequential:
        layers = []
        for i in range(blocks):
            layers.append(block(self.inplanes, planes, stride if i == 0 else 1, residual=residual,
                                se_reduction=se_reduction))
            self.inplanes = planes * block.expansion
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _init_like_torchvision(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)


RESNET_LAYOUTS = {"resnet18": (BasicBlock, [2, 2, 2, 2]), "resnet34": (BasicBlock, [3, 4, 6, 3]),
                  "resnet50": (Bottleneck, [3, 4, 6, 3])}


def _resnet_builder(arch: str):
    block, layers = RESNET_LAYOUTS[arch]

    def build(*, num_classes: int, stem: str = "imagenet", residual_1: bool = True, residual_2: bool = True,
              residual_3: bool = True, residual_4: bool = True, se_1: bool = False, se_2: bool = False,
              se_3: bool = False, se_4: bool = False, se_reduction: int = 16) -> nn.Module:
        return ResNet(block, layers, num_classes=num_classes, stem=stem,
                      residual=(residual_1, residual_2, residual_3, residual_4),
                      se=(se_1, se_2, se_3, se_4), se_reduction=se_reduction)

    build.__name__ = f"build_{arch}"
    build.__doc__ = f"{arch} in torchvision's layout with per-stage residual/SE toggles."
    return build


def _resnet_diagram(arch: str):
    block, layers = RESNET_LAYOUTS[arch]

    def diagram(options: dict) -> list[Stage]:
        stem = ("conv 7x7/2, 64 + BN\nmax pool 3/2" if options.get("stem", "imagenet") == "imagenet"
                else "conv 3x3, 64 + BN\n(no max pool)")
        stages = [Stage("stem", f"stem\n{stem}")]
        kind = "3x3, 3x3" if block is BasicBlock else "1x1, 3x3, 1x1"
        for k, (planes, n) in enumerate(zip((64, 128, 256, 512), layers), start=1):
            width = planes * block.expansion
            shortcut = None
            if options.get(f"residual_{k}", True):
                shortcut = "identity" if k == 1 and block is BasicBlock else "1x1 projection"
            stages.append(Stage(f"layer{k}", f"layer{k}: {n} blocks\n[{kind}] x {n}, {width}" + ("" if k == 1 else ", /2"),
                                shortcut=shortcut, se="inside" if options.get(f"se_{k}") else None, blocks=n))
        stages.append(Stage("head", "global avg pool\nFC"))
        return stages

    return diagram


def _resnet_options(stages: int) -> tuple[Option, ...]:
    return (
        Option("stem", "choice", "imagenet", "Stem",
               "imagenet: 7x7 stride-2 conv + max pool (224 px); cifar: 3x3 stride-1 conv, no max pool (32 px).",
               choices=("imagenet", "cifar")),
        *(Option(f"residual_{k}", "bool", True, f"Residual stage {k}",
                 "Off: remove every skip connection of this stage (the plain network of the same depth).",
                 group=f"stage {k}") for k in range(1, stages + 1)),
        *(Option(f"se_{k}", "bool", False, f"SE in stage {k}",
                 "Squeeze-and-excitation inside every block of this stage, before the addition (SE-ResNet).",
                 group=f"stage {k}") for k in range(1, stages + 1)),
        Option("se_reduction", "int", 16, "SE reduction ratio", "SE hidden width = channels / ratio.",
               choices=(4, 8, 16, 32)),
    )


_RESNET_WEIGHTS_OPTIONS = {"stem": "imagenet", **{f"residual_{k}": True for k in range(1, 5)},
                           **{f"se_{k}": False for k in range(1, 5)}}
_RESNET_PROBES = {"stem": "maxpool", "layer1": "layer1", "layer2": "layer2", "layer3": "layer3", "layer4": "layer4"}
_RESNET_INFO = {
    "resnet18": ("ResNet-18", "ResNet18_Weights.IMAGENET1K_V1",
                 "18 layers: a 7x7 stem, four stages of two basic blocks (two 3x3 convs), global pooling, one FC.\n"
                 "Each block adds its input to its output: the skip connection that lets deep networks train."),
    "resnet34": ("ResNet-34", "ResNet34_Weights.IMAGENET1K_V1",
                 "34 layers: four stages of 3, 4, 6 and 3 basic blocks.\n"
                 "Deeper than ResNet-18 at the same width; the skips keep it trainable."),
    "resnet50": ("ResNet-50", "ResNet50_Weights.IMAGENET1K_V1",
                 "50 layers of bottleneck blocks (1x1 reduce, 3x3, 1x1 expand x4).\n"
                 "Bottlenecks make depth cheap: four times the channels for about twice ResNet-34's FLOPs."),
}

for _arch, (_label, _weights, _description) in _RESNET_INFO.items():
    register(ModelSpec(
        name=_arch,
        label=_label,
        builder=_resnet_builder(_arch),
        options=_resnet_options(4),
        default_size=224,
        min_size=16,  # any size fits the geometry (adaptive pooling); 16 px is a floor for meaningful images
        head="fc",
        probe_points=dict(_RESNET_PROBES),
        family="resnet",
        cam_layer="layer4",  # the last stage, after its residual addition
        weights=_weights,
        weights_options=dict(_RESNET_WEIGHTS_OPTIONS),
        paper=f"{RESNET_PAPER} SE blocks: {SE_PAPER}",
        description=_description,
        diagram=_resnet_diagram(_arch),
    ))


# --- He et al. 2016, section 4.2: ResNets for CIFAR-10 ---------------------------------------

class ShortcutA(nn.Module):
    """Option A: identity with stride-2 subsampling and zero-padded extra channels (no parameters)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.stride = stride
        self.extra = out_channels - in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))

    def extra_repr(self) -> str:
        return f"stride={self.stride}, zero_channels={self.extra}"


class CifarBlock(nn.Module):
    """Basic block of the CIFAR ResNets; ``shortcut`` is None when ``residual`` is off."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, *, residual: bool, shortcut: str):
        super().__init__()
        self.conv1 = _conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.residual = residual
        self.shortcut: nn.Module | None = None
        if residual and (stride != 1 or in_channels != out_channels):
            self.shortcut = (ShortcutA(in_channels, out_channels, stride) if shortcut == "A" else
                             nn.Sequential(_conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels)))
        elif residual:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.relu(out)


class CifarResNet(nn.Module):
    """3x3 conv (16) -> three stages of n blocks (16, 32, 64 channels) -> global pool -> FC."""

    def __init__(self, *, num_classes: int, depth: int = 20, shortcut: str = "A", residual: bool = True):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        self.stem = nn.Sequential(OrderedDict(conv=_conv3x3(3, 16), bn=nn.BatchNorm2d(16), relu=nn.ReLU(inplace=True)))
        channels = 16
        for k, width in enumerate((16, 32, 64)):
            blocks = []
            for i in range(n):
                stride = 2 if k > 0 and i == 0 else 1
                blocks.append(CifarBlock(channels, width, stride, residual=residual, shortcut=shortcut))
                channels = width
            setattr(self, f"layer{k + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():  # He et al. initialisation, as the paper uses
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def build_cifar_resnet(*, num_classes: int, depth: int = 20, shortcut: str = "A", residual: bool = True) -> nn.Module:
    """He et al.'s CIFAR ResNet of ``depth`` = 6n+2 layers."""
    return CifarResNet(num_classes=num_classes, depth=depth, shortcut=shortcut, residual=residual)


def _cifar_resnet_diagram(options: dict) -> list[Stage]:
    n = (int(options.get("depth", 20)) - 2) // 6
    residual = options.get("residual", True)
    down = "zero-pad identity (A)" if options.get("shortcut", "A") == "A" else "1x1 projection (B)"
    stages = [Stage("stem", "stem\nconv 3x3, 16 + BN")]
    for k, width in enumerate((16, 32, 64), start=1):
        shortcut = None
        if residual:
            shortcut = "identity" if k == 1 else down
        stages.append(Stage(f"stage{k}", f"stage {k}: {n} blocks\n[3x3, 3x3] x {n}, {width}" + ("" if k == 1 else ", /2"),
                            shortcut=shortcut, blocks=n))
    stages.append(Stage("head", "global avg pool\nFC"))
    return stages


register(ModelSpec(
    name="cifar_resnet",
    label="CIFAR ResNet (He et al., 6n+2)",
    builder=build_cifar_resnet,
    options=(
        Option("depth", "int", 20, "Depth", "6n+2 layers: n blocks in each of the three stages.",
               choices=(20, 32, 44, 56, 110)),
        Option("shortcut", "choice", "A", "Shortcut where the shape changes",
               "A: identity with zero-padded channels (no parameters); B: 1x1 projection + BN.",
               choices=("A", "B")),
        Option("residual", "bool", True, "Residual",
               "Off: the plain network of the same depth (the degradation experiment)."),
    ),
    default_size=32,
    min_size=16,  # any size fits the geometry (global pooling); 16 px is a floor for meaningful images
    head="fc",
    probe_points={"stem": "stem", "stage1": "layer1", "stage2": "layer2", "stage3": "layer3"},
    family="resnet",
    cam_layer="layer3",  # the last of its three stages
    paper=RESNET_PAPER + " (Section 4.2, CIFAR-10)",
    description="The small ResNets of He et al. for 32x32 images: 16, 32 and 64 channels, depth 20 to 110.\n"
                "Switch residual off to see deeper plain networks train worse: the degradation problem.",
    diagram=_cifar_resnet_diagram,
))
