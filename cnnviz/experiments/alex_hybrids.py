"""5. AlexResNet and AlexSE: AlexNet with projection shortcuts around its conv blocks, or with
squeeze-and-excitation after block 1, block 2 or both; which placement is best."""

from __future__ import annotations

from cnnviz.experiments.conclude import points
from cnnviz.experiments.planning import config, dataset_for
from cnnviz.experiments.spec import Choices, Experiment, Outcome, Pair, PlannedRun, Published, Ranking

REPORT = "a course report: AlexResNet and AlexSE against AlexNet and ResNet-18 on CIFAR-10 (25 epochs)"
# (run key, architecture, options, label): the plain network, its two hybrids, and ResNet-18 to beat.
VARIANTS = (
    ("alexnet", "alexnet_cifar", {}, "AlexNet (plain)"),
    ("alexresnet", "alex_resnet", {}, "AlexResNet (shortcuts around blocks 1 and 2)"),
    ("alexse-1", "alex_se", {"se_1": True, "se_2": False}, "AlexSE, SE after block 1"),
    ("alexse-2", "alex_se", {"se_1": False, "se_2": True}, "AlexSE, SE after block 2"),
    ("alexse-12", "alex_se", {"se_1": True, "se_2": True}, "AlexSE, SE after blocks 1 and 2"),
    ("resnet18", "resnet18", {"stem": "cifar"}, "ResNet-18 (CIFAR stem)"),
)
SE_PLACEMENTS = ("alexse-1", "alexse-2", "alexse-12")  # the runs that differ only in where SE sits


def plan(choices: Choices) -> list[PlannedRun]:
    """Every variant from scratch with the same settings."""
    dataset = dataset_for(choices, "cifar10")
    if choices.size == "full":
        common = dict(epochs=25, batch_size=128, lr=0.01, image_size=32, augment="cifar", scheduler="cosine")
    else:
        common = dict(epochs=3, batch_size=32, lr=0.02, image_size=32, augment="cifar", subset=100, val_subset=50)
    return [PlannedRun(key, label, config(arch=arch, options=options, dataset=dataset, mode="scratch", **common))
            for key, arch, options, label in VARIANTS]


def placement_lines(outcomes: list[Outcome]) -> list[str]:
    """The best SE placement and how far apart the placements are."""
    se = [o for o in outcomes if o.key in SE_PLACEMENTS]
    if len(se) < 2:
        return []
    best = max(se, key=lambda o: o.best_val_acc)
    spread = points(max(o.best_val_acc for o in se) - min(o.best_val_acc for o in se))
    return [f"Best SE placement: {best.label.split(', ', 1)[-1]} ({best.best_val_acc:.3f}); "
            f"the spread between placements is {spread:.1f} points."]


EXPERIMENT = Experiment(
    key="exp5", number=5, title="AlexResNet and AlexSE: does AlexNet gain from shortcuts or SE blocks?",
    short_title="AlexResNet, AlexSE",
    question="Do projection shortcuts or squeeze-and-excitation blocks help a shallow network like AlexNet, "
             "and where should the SE block go: after block 1, after block 2, or both?",
    expectation="Small gains for both over plain AlexNet, SE after the later block about as good as both; "
                "ResNet-18 still best, but slowest (reported: 0.841 in 140 min vs AlexResNet 0.808 in 88 min).",
    why="Shortcuts mostly help depth, and AlexNet is shallow; SE reweights channels from global context, which "
        "matters more where channels are many and semantic (later blocks).",
    dataset="cifar10", planner=plan,
    published=(
        Published("ResNet-18, 25 epochs (140 min)", 0.841, REPORT, "resnet18"),
        Published("AlexResNet (88 min)", 0.808, REPORT, "alexresnet"),
        Published("AlexSE (first placement reported)", 0.821, REPORT),
        Published("AlexSE (second placement reported)", 0.820, REPORT),
    ),
    pairs=(Pair("alexresnet", "alexnet", ("AlexResNet", "plain AlexNet")),
           Pair("resnet18", "alexnet", ("ResNet-18", "plain AlexNet"))),
    ranking=Ranking("Ranking"), custom=placement_lines, chart="cost",
    settings={"quick": "32 px, 100 images per class (50 for validation), 3 epochs from scratch, batch 32",
              "full": "32 px, all 50,000 images, 25 epochs (as reported), cosine schedule"},
)
