"""1. AlexNet vs ResNet-18 on hymenoptera (ants vs bees): reset the last layer and fine-tune
everything, or freeze everything but the last layer."""

from __future__ import annotations

from cnnviz.experiments.planning import config, dataset_for, init_note, on_fallback, pretrained_init
from cnnviz.experiments.spec import Choices, Experiment, Pair, PlannedRun, Published

DATASET = "hymenoptera"
ARCHS = (("alexnet", "AlexNet"), ("resnet18", "ResNet-18"))
MODES = (("finetune", "Reset FC + fine-tune"), ("freeze", "Freeze all but the last layer"))
REPORT = "a course report: AlexNet vs ResNet-18 fine-tuned on hymenoptera (PyTorch transfer-learning tutorial settings)"


def plan(choices: Choices) -> list[PlannedRun]:
    """Fine-tune and freeze runs of each architecture."""
    dataset = dataset_for(choices, DATASET)
    if choices.size == "full":
        # The PyTorch transfer-learning tutorial the reports followed: 224 px, batch 4, lr 0.001,
        # momentum 0.9, lr / 10 every 7 epochs, 25 epochs, crop + flip augmentation.
        common = dict(epochs=25, batch_size=4, lr=0.001, momentum=0.9, weight_decay=0.0, scheduler="step",
                      step_size=7, image_size=224, augment="standard")
        freeze_extra = dict(augment="standard")
    else:
        # Quick: 128 px, 3 fine-tune epochs, and no augmentation in freeze mode so the frozen
        # backbone's features are computed once and the head trains on the cache.
        common = dict(epochs=3, batch_size=16, lr=0.001, momentum=0.9, weight_decay=0.0, image_size=128,
                      augment="standard", subset=40 if on_fallback(choices, DATASET) else None)
        freeze_extra = dict(augment="none", epochs=6)
    runs = []
    for arch, name in ARCHS:
        init, options = pretrained_init(choices, arch, {})
        note = init_note(init)
        runs.append(PlannedRun(f"{arch}-finetune", f"{name}, reset FC + fine-tune all ({note})",
                               config(arch=arch, options=options, dataset=dataset, mode="finetune", init=init, **common)))
        runs.append(PlannedRun(f"{arch}-freeze", f"{name}, freeze all but the last layer ({note})",
                               config(arch=arch, options=options, dataset=dataset, mode="freeze", init=init,
                                      **{**common, **freeze_extra})))
    return runs


EXPERIMENT = Experiment(
    key="exp1", number=1, title="AlexNet vs ResNet-18: fine-tune or freeze? (ants vs bees)",
    short_title="Fine-tune or freeze",
    question="With 245 training photos, should you retrain a pretrained network end to end, or freeze it and "
             "train only a new last layer? And does the newer ResNet-18 transfer better than AlexNet?",
    expectation="ResNet-18 beats AlexNet in both modes; freezing is as good as or better than fine-tuning on so "
                "few images, and far faster.",
    why="ImageNet features already separate insects well; with 245 images, updating 11-61 million weights "
        "overfits while a 2-way linear head on frozen features cannot. Freezing also skips the backward pass "
        "through the backbone (and here its features are computed once and cached).",
    dataset=DATASET, planner=plan,
    published=(
        Published("AlexNet, reset FC + fine-tune", 0.902, REPORT, "alexnet-finetune", split="val"),
        Published("AlexNet, freeze all but last", 0.948, REPORT, "alexnet-freeze", split="val"),
        Published("ResNet-18, reset FC + fine-tune", 0.948, REPORT, "resnet18-finetune", split="val"),
        Published("ResNet-18, freeze all but last", 0.954, REPORT, "resnet18-freeze", split="val"),
        Published("time per phase (CPU, 25 epochs)", None, REPORT, text="9-21 min", split="val"),
    ),
    pairs=(
        *(Pair(f"resnet18-{mode}", f"alexnet-{mode}", ("ResNet-18", "AlexNet"), prefix=f"{words}: ")
          for mode, words in MODES),
        *(Pair(f"{arch}-freeze", f"{arch}-finetune", ("freezing", "fine-tuning everything"), prefix=f"{name}: ")
          for arch, name in ARCHS),
    ),
    sections=("pairs", "published"),
    pretrained_archs=tuple(arch for arch, _ in ARCHS), chart="published",
    settings={"quick": "128 px, 3 fine-tune / 6 freeze epochs, batch 16, lr 0.001",
              "full": "the PyTorch tutorial's settings: 224 px, 25 epochs, batch 4, lr 0.001, step lr/10 every 7"},
)
