"""VGG (Simonyan and Zisserman, 2015) in torchvision's layout, built from its layout list.

Architecture as data: a VGG is a list of conv output channels with ``"M"`` for a 2x2 max
pool. ``VGG_LAYOUTS`` is that list, so a page can show it; ``vgg_probe_points`` finds
the pooling layers that end each of the five blocks and ``vgg_cam_layer`` the last ReLU.
"""

from __future__ import annotations

from torch import nn
from torchvision.models.vgg import VGG, make_layers

from .blocks import Stage
from .registry import ModelSpec, Option, register

VGG_PAPER = ("Simonyan and Zisserman (2015). Very Deep Convolutional Networks for Large-Scale Image "
             "Recognition. ICLR.")

# torchvision's configurations "A" (VGG-11) and "D" (VGG-16).
VGG_LAYOUTS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


def vgg_probe_points(layout: list[int | str], *, batchnorm: bool) -> dict[str, str]:
    """``{"block1": "features.4", ...}``: the max pool closing each block, as module paths."""
    points, index = {}, 0
    for item in layout:
        if item == "M":
            points[f"block{len(points) + 1}"] = f"features.{index}"
            index += 1
        else:
            index += 3 if batchnorm else 2  # conv, [bn], relu
    return points


def vgg_cam_layer(layout: list[int | str], *, batchnorm: bool) -> str:
    """The last convolution's ReLU (``features.29`` in VGG-16): the rectified maps Grad-CAM reads, before pool 5."""
    modules = sum(1 if item == "M" else 3 if batchnorm else 2 for item in layout)
    return f"features.{modules - 2}"  # the layout ends with a pool; the ReLU comes right before it


class CnnvizVGG(VGG):
    """torchvision's VGG, remembering its layout list so a page can show it."""

    def __init__(self, layout: list[int | str], *, num_classes: int, batchnorm: bool):
        super().__init__(make_layers(list(layout), batch_norm=batchnorm), num_classes=num_classes)
        self.layout = list(layout)


def _vgg_builder(arch: str):
    def build(*, num_classes: int, batchnorm: bool = False) -> nn.Module:
        return CnnvizVGG(VGG_LAYOUTS[arch], num_classes=num_classes, batchnorm=batchnorm)

    build.__name__ = f"build_{arch}"
    build.__doc__ = f"{arch} in torchvision's layout."
    return build


def _vgg_diagram(arch: str):
    def diagram(options: dict) -> list[Stage]:
        bn = " + BN" if options.get("batchnorm") else ""
        stages, convs = [], []
        for item in VGG_LAYOUTS[arch]:
            if item == "M":
                k = len(stages) + 1
                stages.append(Stage(f"block{k}", f"block {k}\n{len(convs)} x conv 3x3, {convs[0]}{bn}\nmax pool 2/2"))
                convs = []
            else:
                convs.append(item)
        stages.append(Stage("classifier", "avg pool 7x7\nFC 4096, FC 4096 (dropout)"))
        return stages

    return diagram


_VGG_INFO = {
    "vgg11": ("VGG-11", "VGG11_Weights.IMAGENET1K_V1", "VGG11_BN_Weights.IMAGENET1K_V1",
              "Eight 3x3 convolutions in five blocks, each closed by a 2x2 max pool, then three FC layers.\n"
              "Only 3x3 kernels: two stacked see as far as one 5x5 with fewer parameters."),
    "vgg16": ("VGG-16", "VGG16_Weights.IMAGENET1K_V1", "VGG16_BN_Weights.IMAGENET1K_V1",
              "Thirteen 3x3 convolutions in five blocks and three FC layers: 138 million parameters.\n"
              "Deep and uniform; most parameters sit in the first fully connected layer."),
}

for _arch, (_label, _weights, _bn_weights, _description) in _VGG_INFO.items():
    register(ModelSpec(
        name=_arch,
        label=_label,
        builder=_vgg_builder(_arch),
        options=(Option("batchnorm", "bool", False, "Batch norm",
                        "Batch norm after every convolution (torchvision's *_bn variants, with their own weights)."),),
        default_size=224,
        min_size=32,  # five 2x2 pools need 32 px
        head="classifier.6",
        probe_points=vgg_probe_points(VGG_LAYOUTS[_arch], batchnorm=False),
        family="vgg",
        cam_layer=lambda options, layout=VGG_LAYOUTS[_arch]: vgg_cam_layer(layout, batchnorm=bool(options.get("batchnorm"))),
        weights=_weights,
        weights_options={"batchnorm": False},
        more_weights=((_bn_weights, {"batchnorm": True}),),
        paper=VGG_PAPER,
        description=_description,
        diagram=_vgg_diagram(_arch),
    ))
