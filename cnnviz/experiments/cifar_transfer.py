"""2. CIFAR-10: AlexNet from scratch vs fine-tuned, and ResNet-18 and VGG16 fine-tuned."""

from __future__ import annotations

from cnnviz.experiments.conclude import points
from cnnviz.experiments.planning import config, dataset_for, init_note, pretrained_init
from cnnviz.experiments.spec import SCRATCH, Choices, Experiment, Outcome, PlannedRun, Published, Ranking, by_key

DATASET = "cifar10"
TUNED = (("alexnet", "AlexNet"), ("resnet18", "ResNet-18"), ("vgg16", "VGG16"))
REPORT = "a course report: AlexNet, ResNet-18 and VGG16 on CIFAR-10 (lr 0.05, 10 epochs, batch 256)"
SCRATCH_RUN, TUNED_RUN = "alexnet-scratch", "alexnet-finetune"  # the pair that measures what pretraining buys


def plan(choices: Choices) -> list[PlannedRun]:
    """AlexNet from scratch, then each architecture fine-tuned."""
    dataset = dataset_for(choices, DATASET)
    if choices.size == "full":
        # The report's settings: 224 px (CIFAR upscaled for the ImageNet networks), lr 0.05,
        # 10 epochs, batch 256.
        common = dict(epochs=10, batch_size=256, lr=0.05, image_size=224, augment="standard")
    else:
        # Quick: 64 px (torchvision's AlexNet needs at least 63), 100 images per class,
        # 3 epochs; lr scaled with the batch (0.05 x 64/256).
        common = dict(epochs=3, batch_size=64, lr=0.0125, image_size=64, augment="standard", subset=100, val_subset=50)
    runs = [PlannedRun(SCRATCH_RUN, "AlexNet from scratch",
                       config(arch="alexnet", dataset=dataset, mode="scratch", init=SCRATCH, **common))]
    for arch, name in TUNED:
        init, options = pretrained_init(choices, arch, {})
        runs.append(PlannedRun(f"{arch}-finetune", f"{name} fine-tuned ({init_note(init)})",
                               config(arch=arch, options=options, dataset=dataset, mode="finetune", init=init, **common)))
    return runs


def gain_line(outcomes: list[Outcome]) -> list[str]:
    """What starting from pretrained weights added over random weights, beside the report's gain."""
    by = by_key(outcomes)
    s, f = by.get(SCRATCH_RUN), by.get(TUNED_RUN)
    if not (s and f):
        return []
    gain = points(f.best_val_acc - s.best_val_acc)
    verb = "added" if gain >= 0 else "cost"
    reported = {p.run_key: p.value for p in EXPERIMENT.published}
    before, after = reported[SCRATCH_RUN], reported[TUNED_RUN]
    return [f"Starting AlexNet from {init_note(f.config.init)} instead of random weights {verb} {abs(gain):.1f} points "
            f"({s.best_val_acc:.3f} -> {f.best_val_acc:.3f}); the report measured {points(after - before):+.1f} "
            f"({before:.3f} -> {after:.3f})."]


EXPERIMENT = Experiment(
    key="exp2", number=2, title="CIFAR-10: AlexNet from scratch vs fine-tuned, ResNet-18 and VGG16 fine-tuned",
    short_title="CIFAR-10 transfer",
    question="How much does starting from ImageNet weights buy on CIFAR-10, and which network transfers best?",
    expectation="Fine-tuned AlexNet far above AlexNet from scratch (the report: 0.399 -> 0.897 in 10 epochs); "
                "ResNet-18 and VGG16 above AlexNet.",
    why="Ten epochs are far too few to learn good filters from random weights with lr 0.05, while pretrained "
        "filters (edges, textures, parts) need only adapting. Deeper networks carry richer features.",
    dataset=DATASET, planner=plan,
    published=(
        Published("AlexNet from scratch", 0.399, REPORT, SCRATCH_RUN),
        Published("AlexNet fine-tuned", 0.897, REPORT, TUNED_RUN),
        Published("ResNet-18 fine-tuned", 0.950, REPORT, "resnet18-finetune"),
        Published("VGG16 fine-tuned", 0.937, REPORT, "vgg16-finetune"),
    ),
    ranking=Ranking("Fine-tuned ranking", modes=("finetune",)), custom=gain_line,
    sections=("custom", "ranking", "noise", "published"),
    pretrained_archs=tuple(arch for arch, _ in TUNED), chart="published",
    settings={"quick": "64 px, 100 images per class (50 for validation), 3 epochs, batch 64, lr 0.0125",
              "full": "the report's settings: 224 px, all 50,000 images, 10 epochs, batch 256, lr 0.05"},
)
