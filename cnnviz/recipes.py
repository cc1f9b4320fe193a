"""Sensible starting hyperparameters per architecture, dataset and mode; named one-click recipes; the
epoch-time estimate.

Pure functions (no torch at import time, no Streamlit): the Train page shows
these defaults and says why; a teacher can read every choice here in one pass.
``default_config`` is the one source of defaults: the command line's ``train``
and the Train page's initial form both start from it. ``NAMED_RECIPES`` are full
configurations with a name (``python -m cnnviz recipes``, ``train --recipe NAME``,
the Train page's Recipe box).
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from cnnviz.jobs.estimates import split_sizes  # noqa: F401  (re-exported: its home is the estimates)
from cnnviz.training.config import FROZEN_MODES, TrainConfig, evaluation_views

# Epochs that finish in minutes on a laptop CPU; the course runs used 10-25. Shapes: five epochs of
# one-cycle take ResNet-20 past 90% (benchmarks/README.md, "Default runs").
EPOCHS = {"shapes": 5, "hymenoptera": 5, "cifar10": 3, "cifar100": 3, "folder": 5}
# Images per class, so a class of thirty laptops finishes in minutes (CIFAR-10 has 5,000 per
# class; shapes has 300 and uses them all; 0 in the form uses them all).
SUBSET = {"cifar10": 1000, "cifar100": 100}
# Validation images per class: all 10,000 CIFAR test images every epoch would cost more than training.
VAL_SUBSET = {"shapes": 50, "cifar10": 200, "cifar100": 20}
PRETRAINED_MODES = ("finetune", "freeze", "probe")
SMALL_IMAGES = ("shapes", "cifar10", "cifar100")  # 32 px datasets a small network trains on from scratch
# What a dataset starts with when no architecture is named: (architecture, mode). On small images a
# network made for 32 px from scratch; on photos, ImageNet features fine-tuned (few pictures, big images).
STARTS = {"shapes": ("cifar_resnet", "scratch"), "cifar10": ("cifar_resnet", "scratch"),
          "cifar100": ("cifar_resnet", "scratch"), "hymenoptera": ("resnet18", "finetune"),
          "folder": ("resnet18", "finetune")}


@dataclass(frozen=True)
class Recipe:
    """Default hyperparameters for one (architecture, dataset, mode) and the reasons for them."""

    values: dict[str, Any]
    why: list[str] = field(default_factory=list)


def default_image_size(*, default_size: int, min_size: int, native_size: int | None, pretrained: bool) -> int:
    """The input size to train at: the dataset's own size when the architecture can take it.

    Upscaling 32 px CIFAR to 224 px (as the course's fine-tuning runs do) costs
    ~50x the compute; on a CPU we upscale only as far as the architecture needs,
    and to 64 px for ImageNet features, which lose too much at 32 px.
    """
    if not native_size:
        return default_size
    size = max(native_size, min_size)
    if pretrained and default_size >= 224:
        size = max(size, 64)
    # An architecture shaped for small inputs (alexnet_cifar) stays small on big photos.
    return max(min(size, default_size), min_size)


def recipe(*, arch: str, dataset: str, mode: str, default_size: int = 224, min_size: int = 32,
           native_size: int | None = None, num_classes: int | None = None) -> Recipe:
    """Starting hyperparameters for training ``arch`` on ``dataset`` in ``mode``, with the reasons."""
    from cnnviz.models import get_spec  # deferred: the module stays torch-free at import

    pretrained, alexnet_family = mode in PRETRAINED_MODES, get_spec(arch).family == "alexnet"
    why: list[str] = []
    values: dict[str, Any] = {
        "epochs": EPOCHS.get(dataset, 5), "batch_size": 64, "optimizer": "sgd", "momentum": 0.9,
        "weight_decay": 5e-4, "nesterov": False, "scheduler": "none", "augment": "none", "label_smoothing": 0.0,
        "loss": "ce",
        "subset": SUBSET.get(dataset), "val_subset": VAL_SUBSET.get(dataset), "seed": 0, "val_split": "official",
    }
    values["image_size"] = default_image_size(default_size=default_size, min_size=min_size,
                                              native_size=native_size, pretrained=pretrained)
    if mode == "scratch" and dataset in SMALL_IMAGES:
        # Measured on shapes: SGD at a flat 0.01 ended 3 epochs at 23% (alexnet_cifar); Adam under
        # one-cycle took ResNet-20 to 94-96% in 5 (benchmarks/README.md).
        values.update(optimizer="adam", lr=0.01, weight_decay=0.0, scheduler="onecycle")
        why.append("from scratch in a few epochs: Adam with a one-cycle schedule peaking at lr 0.01 (Smith 2018: "
                   "warm up, then anneal), which learns far faster than SGD at a flat rate")
        if dataset.startswith("cifar"):
            values["augment"] = "cifar"
            why.append("CIFAR from scratch: random crops and flips fight overfitting")
    elif mode == "scratch":
        values["lr"] = 0.01
        why.append("from scratch: SGD lr 0.01, momentum 0.9, weight decay 5e-4 (AlexNet paper's optimiser)")
        if dataset in ("hymenoptera", "folder"):
            values["augment"] = "alexnet" if alexnet_family else "standard"
            why.append("photos from scratch: crop/flip augmentation (PCA colour noise for AlexNet)")
        if alexnet_family and values["epochs"] >= 5:
            values["scheduler"] = "plateau"
            why.append("AlexNet divided its learning rate by 10 when validation stopped improving")
    elif mode == "probe":
        values.update(lr=0.01, weight_decay=0.0, epochs=max(values["epochs"], 10), augment="none")
        why.append("linear probe: a convex problem on fixed features, so more epochs are cheap and no augmentation")
    else:
        values["lr"] = 0.001
        why.append(f"{'fine-tuning' if mode == 'finetune' else 'frozen backbone'}: lr 0.001 as in the "
                   "PyTorch transfer-learning tutorial, small enough not to wreck pretrained features")
        if dataset in ("hymenoptera", "folder"):
            values["augment"] = "standard"
            why.append("photos: random crops and flips, as in the tutorial")
    if values["image_size"] >= 160:
        values["batch_size"] = 32
        why.append("large inputs: batch 32 keeps memory modest")
    elif dataset.startswith("cifar") and values["image_size"] <= 64:
        values["batch_size"] = 128
    if values["subset"]:
        why.append(f"{values['subset']} training and {values['val_subset']} validation images per class so an epoch "
                   "takes minutes (0 uses them all)")
    if num_classes == 2:
        why.append("two classes: cross-entropy; try binary cross-entropy (BCE) to compare")
    return Recipe(values=values, why=why)


def registry_recipe(*, arch: str, dataset: str, mode: str, num_classes: int | None = None) -> Recipe:
    """``recipe`` with the input sizes (and the class count, unless given) read from the registries."""
    from cnnviz.data import get_dataset_spec  # lazy: the registries import torch
    from cnnviz.models import get_spec

    spec, data = get_spec(arch), get_dataset_spec(dataset)
    return recipe(arch=arch, dataset=dataset, mode=mode, default_size=spec.default_size, min_size=spec.min_size,
                  native_size=data.native_size, num_classes=num_classes or data.num_classes)


def default_probe_layer(arch: str) -> str:
    """The probe point a linear probe reads unless told otherwise: the deepest one (raw pixels if none)."""
    from cnnviz.models import get_spec

    points = list(get_spec(arch).probe_points)
    return points[-1] if points else "input"


def default_start(dataset: str) -> tuple[str, str]:
    """The (architecture, mode) a run on ``dataset`` starts with when none is named (see ``STARTS``)."""
    return STARTS.get(dataset, (TrainConfig().arch, TrainConfig().mode))


def default_init(arch: str, mode: str) -> str:
    """ImageNet weights for a pretrained mode when the architecture has them; random weights otherwise."""
    from cnnviz.models import get_spec

    return "imagenet" if mode in PRETRAINED_MODES and get_spec(arch).weights else "none"


def default_config(*, arch: str | None = None, dataset: str | None = None, mode: str | None = None,
                   **changes: Any) -> TrainConfig:
    """The config to start from for (arch, dataset, mode): ``TrainConfig``'s defaults, the recipe's values,
    then ``changes``; what ``python -m cnnviz train`` runs and what the Train page first shows.

    Without ``arch`` the dataset's start (``STARTS``) names the architecture, and its mode unless
    ``mode`` is given; a named architecture trains from scratch unless told otherwise.
    """
    dataset = dataset or TrainConfig().dataset
    start_arch, start_mode = default_start(dataset)
    mode = mode or (start_mode if arch in (None, start_arch) else TrainConfig().mode)
    arch = arch or start_arch
    values = dict(registry_recipe(arch=arch, dataset=dataset, mode=mode).values)
    values["init"] = default_init(arch, mode)
    if mode == "probe":
        values["probe_layer"] = default_probe_layer(arch)
    return TrainConfig().replace(arch=arch, dataset=dataset, mode=mode, **{**values, **changes})


# -- named recipes: one click (or one flag) for a whole configuration -----------------------------

@dataclass(frozen=True)
class NamedRecipe:
    """A full configuration with a name: ``values`` are ``TrainConfig`` fields over ``default_config``'s."""

    name: str
    title: str
    why: str
    values: dict[str, Any]

    def config(self, **overrides: Any) -> TrainConfig:
        """This recipe's ``TrainConfig``, with ``overrides`` (explicit settings) applied last."""
        return default_config(**{**self.values, **overrides})


_TUTORIAL = ("PyTorch's transfer-learning tutorial (Chilamkurthy): ResNet-18 from ImageNet weights, SGD lr 0.001 "
             "momentum 0.9, lr/10 every 7 epochs, 224 px crops and flips, batch 4. It trains 25 epochs; 10 here "
             "(about 5 minutes on two CPU cores) keep one lr step, and its accuracy settles within the first few")
# The course reports' CIFAR-10 comparison: 224 px (CIFAR upscaled for the ImageNet networks),
# SGD lr 0.05, 10 epochs, batch 256, every training image, the whole test split.
_COURSE = dict(dataset="cifar10", epochs=10, batch_size=256, optimizer="sgd", lr=0.05, momentum=0.9,
               weight_decay=5e-4, scheduler="none", image_size=224, augment="standard", subset=None, val_subset=None)
_COURSE_WHY = ("The course report's CIFAR-10 settings (lr 0.05, 10 epochs, batch 256, 224 px); it measured "
               "test accuracy {figure}. Hours on a CPU: a GPU run, or the cifar10-10min recipe for a class.")

# The PyTorch transfer-learning tutorial's settings, shared by its fine-tune and freeze runs so they compare fairly.
_TUTORIAL_VALUES = dict(arch="resnet18", dataset="hymenoptera", init="imagenet", epochs=10, batch_size=4,
                        optimizer="sgd", lr=0.001, momentum=0.9, weight_decay=0.0, scheduler="step", step_size=7,
                        image_size=224, augment="standard")

NAMED_RECIPES: tuple[NamedRecipe, ...] = (
    NamedRecipe(
        "shapes-1min", "Shapes in a minute: ResNet-20 from scratch (the default run)",
        "The default run. ResNet-20 (He et al. 2016, the CIFAR ResNet) on all 300 shapes per class, 5 epochs of "
        "Adam under a one-cycle schedule peaking at lr 0.01: over 90% validation accuracy in under a minute on two "
        "CPU cores, every seed. AlexNet for 32 px costs 4.5x the FLOPs and stays near 77% in the same epochs, so it "
        "is the comparison, not the default.",
        dict(arch="cifar_resnet", dataset="shapes", mode="scratch", epochs=5, batch_size=64, optimizer="adam",
             lr=0.01, weight_decay=0.0, scheduler="onecycle", augment="none", subset=None, val_subset=50)),
    NamedRecipe(
        "hymenoptera-finetune", "Ants vs bees: fine-tune ResNet-18 (PyTorch tutorial)",
        _TUTORIAL + ". Fine-tuning: a new head, every layer trains.",
        dict(mode="finetune", **_TUTORIAL_VALUES)),
    NamedRecipe(
        "hymenoptera-freeze", "Ants vs bees: ResNet-18 as a fixed feature extractor (PyTorch tutorial)",
        _TUTORIAL + ". Frozen backbone: only the new head trains, so an epoch costs about a third.",
        dict(mode="freeze", **_TUTORIAL_VALUES)),
    NamedRecipe(
        "cifar10-course-alexnet-scratch", "CIFAR-10 (course): AlexNet from scratch",
        _COURSE_WHY.format(figure="0.399") + " AlexNet from random weights: the baseline for fine-tuning.",
        dict(arch="alexnet", mode="scratch", init="none", **_COURSE)),
    NamedRecipe(
        "cifar10-course-alexnet-finetune", "CIFAR-10 (course): AlexNet fine-tuned from ImageNet",
        _COURSE_WHY.format(figure="0.897"),
        dict(arch="alexnet", mode="finetune", init="imagenet", **_COURSE)),
    NamedRecipe(
        "cifar10-course-resnet18", "CIFAR-10 (course): ResNet-18 fine-tuned from ImageNet",
        _COURSE_WHY.format(figure="0.950"),
        dict(arch="resnet18", mode="finetune", init="imagenet", **_COURSE)),
    NamedRecipe(
        "cifar10-course-vgg16", "CIFAR-10 (course): VGG16 fine-tuned from ImageNet",
        _COURSE_WHY.format(figure="0.937"),
        dict(arch="vgg16", mode="finetune", init="imagenet", **_COURSE)),
    NamedRecipe(
        "cifar10-10min", "CIFAR-10 in about ten minutes: airbench (Jordan 2024)",
        "airbench (Keller Jordan, arXiv:2404.00498) with groups of 48, 192 and 192 channels (airbench94's wide "
        "last groups on a narrower first one, which is the costly one on a CPU: 31x31 maps): a whitened, "
        "frozen first layer, SGD with Nesterov momentum 0.85 at airbench's lr (1.5 per 1,024 images) on its "
        "linear triangle schedule, label smoothing 0.2, 2 px reflected shifts and flips that alternate per "
        "picture, lookahead, an average of the weights (EMA 0.98), and test-time augmentation by mirror "
        "images and one-pixel shifts. 10 epochs on the 49,000 training images left after 100 per class for "
        "validation: measured 90.2% and 89.7% test accuracy (seeds 0 and 1) in 7.6 and 9.0 minutes on two CPU cores "
        "with AMX (bf16); without AMX "
        "the CPU trains in float32 at about half the speed. Switch a trick off (whiten, tta_flip, tta_shift, "
        "alternate_flip, lookahead, ema_decay, label_smoothing, nesterov, augment cifar, scheduler onecycle) to "
        "see what it was worth.",
        dict(arch="airbench", options={"width": 48, "width_factor": 4, "whiten": True}, dataset="cifar10",
             mode="scratch", epochs=10, batch_size=128, optimizer="sgd", lr=0.1875, momentum=0.85, nesterov=True,
             weight_decay=1.3e-3, scheduler="linear", label_smoothing=0.2, augment="translate",
             alternate_flip=True, lookahead=True, tta_flip=True, tta_shift=True, ema_decay=0.98,
             precision="auto", subset=None, val_subset=100)),
)
NAMED_BY_NAME = {r.name: r for r in NAMED_RECIPES}


def named_recipe(name: str) -> NamedRecipe:
    """The named recipe ``name``; ValueError lists the names when there is none."""
    try:
        return NAMED_BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown recipe {name!r} (recipes: {', '.join(NAMED_BY_NAME)})") from None


# How many forward passes' worth of compute one training image costs: the backward pass
# is about twice the forward (Kaplan et al. 2020); a frozen backbone skips most of it.
TRAIN_COST = {"scratch": 3.0, "finetune": 3.0, "freeze": 1.1, "probe": 1.05}


def features_cached(*, mode: str, augment: str) -> bool:
    """Whether the trainer computes the frozen features once and trains the head on them afterwards."""
    return mode in FROZEN_MODES and augment == "none"


def estimate_epoch_seconds(*, flops_per_image: int, train_images: int, val_images: int,
                           flops_per_second: float, mode: str = "scratch", views: int = 1) -> float:
    """Seconds for one epoch (training plus validation) from FLOPs and a measured device throughput.

    ``views``: forward passes per validation picture (test-time augmentation, ``evaluation_views``).
    With cached features (see ``features_cached``) this is the first epoch; later ones take moments.
    """
    if flops_per_second <= 0:
        raise ValueError("flops_per_second must be positive")
    work = flops_per_image * (TRAIN_COST.get(mode, 3.0) * train_images + views * val_images)
    return work / flops_per_second


@functools.lru_cache(maxsize=256)
def _flops(arch: str, options_json: str, image_size: int | None, num_classes: int) -> int:
    from cnnviz.inspect import model_cost  # lazy: counting FLOPs builds a torch model

    _, flops = model_cost(arch, options=json.loads(options_json), num_classes=num_classes, image_size=image_size)
    return int(flops)


def run_flops(config) -> int:
    """Forward FLOPs per image of a ``TrainConfig``'s model at its input size."""
    from cnnviz.data import get_dataset_spec
    from cnnviz.models import resolve_options

    options = resolve_options(config.arch, config.options)
    classes = get_dataset_spec(config.dataset).classes_for(config.labels) or 10
    return _flops(config.arch, json.dumps(options, sort_keys=True), config.image_size, classes)


def estimate_run_seconds(config, *, flops_per_second: float, flops: int | None = None) -> float:
    """Seconds to train a ``TrainConfig`` on this device, from FLOPs x images x epochs and a measured throughput.

    With cached features (``features_cached``) the backbone runs once over both splits and the
    linear head after it costs next to nothing; otherwise every epoch costs ``estimate_epoch_seconds``.
    """
    train, val = split_sizes(config)
    if config.mode == "probe" and config.probe_layer == "input":
        return 0.2 * config.epochs  # a single linear layer on pixels
    flops = flops if flops is not None else run_flops(config)
    if features_cached(mode=config.mode, augment=config.augment):
        return flops * (train + val) / flops_per_second
    views = evaluation_views(config.tta_flip, config.tta_shift, mode=config.mode)
    per_epoch = estimate_epoch_seconds(flops_per_image=flops, train_images=train, val_images=val,
                                       flops_per_second=flops_per_second, mode=config.mode, views=views)
    return per_epoch * config.epochs


def format_seconds(seconds: float) -> str:
    """``42 s``, ``3 min 5 s`` or ``1 h 12 min``: how long something takes, for people."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        minutes, secs = divmod(int(round(seconds)), 60)
        return f"{minutes} min {secs} s" if secs and minutes < 10 else f"{minutes} min"
    hours, rest = divmod(int(round(seconds)), 3600)
    return f"{hours} h {rest // 60} min"


MEASURE_FLOPS = 2e10  # work of the timed step: about a second on a laptop CPU, a blink on a GPU
REFERENCE_STEP = ("resnet18", 64)  # (arch, px) timed when no finished run has measured the device yet


def measure_flops_per_second(*, arch: str, image_size: int, options: dict | None = None,
                             batch: int | None = None, device: str = "auto", precision: str = "auto") -> float:
    """Time one training step (forward + backward) of ``arch`` on random images; FLOP/s achieved.

    The step runs as the trainer runs it: channels-last, at ``precision`` (``"auto"``: bf16 on a CPU
    with AMX, mixed precision on a GPU, else fp32).

    The batch is sized so the step does about ``MEASURE_FLOPS`` of work (4 to 64
    images): small batches under-use the device, big ones make the page wait.
    One warm-up step first, so lazy initialisation is not counted.
    """
    import torch  # lazy: this module is imported by pages that must stay torch-free

    from cnnviz.device import pick_device
    from cnnviz.inspect import model_cost
    from cnnviz.models import get_model

    from cnnviz.training.parts import autocast_for, wants_channels_last

    dev = pick_device(device)
    _, flops = model_cost(arch, options=options, num_classes=10, image_size=image_size)
    batch = batch or int(min(64, max(4, MEASURE_FLOPS // max(TRAIN_COST["scratch"] * flops, 1))))
    model = get_model(arch, num_classes=10, options=options).to(dev).train()
    images = torch.randn(batch, 3, image_size, image_size, device=dev)
    if wants_channels_last(model, dev):
        model, images = model.to(memory_format=torch.channels_last), images.contiguous(memory_format=torch.channels_last)
    autocast, _ = autocast_for(precision, dev)
    labels = torch.zeros(batch, dtype=torch.long, device=dev)
    timings = []
    for _ in range(2):
        start = time.perf_counter()
        with autocast():
            loss = torch.nn.functional.cross_entropy(model(images).float(), labels)
        loss.backward()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        timings.append(time.perf_counter() - start)
    return TRAIN_COST["scratch"] * flops * batch / max(timings[-1], 1e-6)
