"""4. CIFAR-100 with 100 fine and 20 coarse (superclass) labels, AlexNet vs ResNet; where the
fine-label errors fall relative to the superclasses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from cnnviz.data import get_dataset_spec
from cnnviz.experiments.planning import config, dataset_for
from cnnviz.experiments.spec import Choices, Experiment, Outcome, Pair, PlannedRun, Published, by_key

DATASET = "cifar100"
FAMILIES = ("alexnet", "resnet")  # run keys are "<family>-<labels>"
REPORT = "a course report: AlexNet on CIFAR-100 with fine and coarse labels (80/20 split)"
SHARMA_2018 = "Sharma, Jain and Mishra, 2018: An Analysis of Convolutional Neural Networks for Image Classification"


def _subsets(size: str, dataset: str, labels: str) -> dict[str, int | None]:
    """Subsets per class that give fine and coarse runs the same pictures' worth."""
    if size == "full":
        return {"subset": None, "val_subset": None}
    spec = get_dataset_spec(dataset)
    if "coarse" not in spec.label_sets:
        return {"subset": 100, "val_subset": 50}
    per = spec.num_classes // spec.coarse_classes if labels == "coarse" else 1  # fine classes per superclass
    return {"subset": 20 * per, "val_subset": 5 * per}


def plan(choices: Choices) -> list[PlannedRun]:
    """AlexNet and a ResNet, each on fine and (where the dataset has them) coarse labels."""
    dataset = dataset_for(choices, DATASET)
    spec = get_dataset_spec(dataset)
    label_sets = spec.label_sets
    if choices.size == "full":
        common = dict(epochs=30, batch_size=128, lr=0.01, image_size=32, augment="cifar", scheduler="cosine")
        # ResNet-18 with the 3x3 CIFAR stem, as the CIFAR-100 comparisons train it.
        resnet = ("resnet18", {"stem": "cifar"}, "ResNet-18")
    else:
        common = dict(epochs=4, batch_size=64, lr=0.02, image_size=32, augment="cifar")
        # Quick: He et al.'s 20-layer CIFAR ResNet, a fifteenth of ResNet-18's compute at 32 px.
        resnet = ("cifar_resnet", {"depth": 20}, "ResNet-20")
    words = {"fine": f"{spec.num_classes} fine classes" if "coarse" in label_sets else "fine labels",
             "coarse": f"{spec.coarse_classes} superclasses"}
    runs = []
    for family, (arch, options, name) in zip(FAMILIES, (("alexnet_cifar", {}, "AlexNet"), resnet)):
        for labels in label_sets:
            runs.append(PlannedRun(f"{family}-{labels}", f"{name}, {words[labels]}", config(
                arch=arch, options=options, dataset=dataset, labels=labels, mode="scratch", val_split="random",
                **common, **_subsets(choices.size, dataset, labels))))
    return runs


# When CIFAR-100 is missing, CIFAR-10's own two natural groups stand in for superclasses.
CIFAR10_SUPERCLASSES = {
    "airplane": "vehicles", "automobile": "vehicles", "ship": "vehicles", "truck": "vehicles",
    "bird": "animals", "cat": "animals", "deer": "animals", "dog": "animals", "frog": "animals", "horse": "animals",
}


CIFAR100_SUPERCLASSES = {
    "aquatic_mammals": "beaver dolphin otter seal whale",
    "fish": "aquarium_fish flatfish ray shark trout",
    "flowers": "orchid poppy rose sunflower tulip",
    "food_containers": "bottle bowl can cup plate",
    "fruit_and_vegetables": "apple mushroom orange pear sweet_pepper",
    "household_electrical_devices": "clock keyboard lamp telephone television",
    "household_furniture": "bed chair couch table wardrobe",
    "insects": "bee beetle butterfly caterpillar cockroach",
    "large_carnivores": "bear leopard lion tiger wolf",
    "large_man-made_outdoor_things": "bridge castle house road skyscraper",
    "large_natural_outdoor_scenes": "cloud forest mountain plain sea",
    "large_omnivores_and_herbivores": "camel cattle chimpanzee elephant kangaroo",
    "medium_mammals": "fox porcupine possum raccoon skunk",
    "non-insect_invertebrates": "crab lobster snail spider worm",
    "people": "baby boy girl man woman",
    "reptiles": "crocodile dinosaur lizard snake turtle",
    "small_mammals": "hamster mouse rabbit shrew squirrel",
    "trees": "maple_tree oak_tree palm_tree pine_tree willow_tree",
    "vehicles_1": "bicycle bus motorcycle pickup_truck train",
    "vehicles_2": "lawn_mower rocket streetcar tank tractor",
}  # the dataset's own meta file (coarse_label_names and the 5 fine classes of each)
CIFAR100_FINE_TO_COARSE = {fine: coarse for coarse, fines in CIFAR100_SUPERCLASSES.items() for fine in fines.split()}


def _plain(name: str) -> str:
    return name.strip().lower().replace(" ", "_")


def superclass_map(classes: Sequence[str]) -> dict[str, str] | None:
    """Fine class name -> superclass for a run's classes (CIFAR-100's 20, or CIFAR-10's animals/vehicles)."""
    names = list(classes)
    for table in (CIFAR10_SUPERCLASSES, CIFAR100_FINE_TO_COARSE):
        if names and all(_plain(c) in table for c in names):
            return {c: table[_plain(c)] for c in names}
    return None


def rollup_confusion(matrix: Sequence[Sequence[int]], classes: Sequence[str],
                     mapping: dict[str, str]) -> tuple[list[list[int]], list[str]]:
    """The fine confusion matrix summed into superclass blocks (rows true, columns predicted)."""
    groups = list(dict.fromkeys(mapping[c] for c in classes))
    index = {g: i for i, g in enumerate(groups)}
    out = [[0] * len(groups) for _ in groups]
    for t, row in enumerate(matrix):
        for p, count in enumerate(row):
            out[index[mapping[classes[t]]]][index[mapping[classes[p]]]] += int(count)
    return out, groups


@dataclass(frozen=True)
class SuperclassErrors:
    """How a fine-label model's mistakes fall relative to the superclasses."""

    errors: int
    within: int  # wrong fine class, right superclass
    share: float  # within / errors
    chance: float  # the share if errors were spread evenly over the other classes
    rolled_accuracy: float  # accuracy after mapping predictions and labels to superclasses


def superclass_errors(matrix: Sequence[Sequence[int]], classes: Sequence[str],
                      mapping: dict[str, str]) -> SuperclassErrors:
    """Share of errors that land in the right superclass, with the chance level to compare."""
    total = correct = within = 0
    for t, row in enumerate(matrix):
        for p, count in enumerate(row):
            total += count
            if t == p:
                correct += count
            elif mapping[classes[t]] == mapping[classes[p]]:
                within += count
    errors = total - correct
    sizes = {}
    for c in classes:
        sizes[mapping[c]] = sizes.get(mapping[c], 0) + 1
    n = len(classes)
    # Chance: a wrong guess picks one of the n-1 other classes uniformly; averaged over true classes.
    chance = sum((sizes[mapping[c]] - 1) / (n - 1) for c in classes) / n if n > 1 else 0.0
    rolled, _ = rollup_confusion(matrix, classes, mapping)
    rolled_correct = sum(rolled[i][i] for i in range(len(rolled)))
    return SuperclassErrors(errors=errors, within=within, share=within / errors if errors else 0.0,
                            chance=chance, rolled_accuracy=rolled_correct / total if total else 0.0)


def family_lines(outcomes: list[Outcome]) -> list[str]:
    """Fine against coarse accuracy per network, and where each fine-label model's errors fall."""
    by = by_key(outcomes)
    lines = []
    for family in FAMILIES:
        fine, coarse = by.get(f"{family}-fine"), by.get(f"{family}-coarse")
        name = (fine or coarse).label.split(",")[0] if (fine or coarse) else family
        if fine and coarse:
            lines.append(f"{name}: {fine.best_val_acc:.3f} on {len(fine.classes) or 100} fine classes, "
                         f"{coarse.best_val_acc:.3f} on {len(coarse.classes) or 20} superclasses.")
        if fine and fine.confusion and fine.classes:
            mapping = superclass_map(fine.classes)
            if mapping:
                se = superclass_errors(fine.confusion, fine.classes, mapping)
                lines.append(f"{name}'s fine-label errors: {se.share:.0%} landed in the right superclass "
                             f"(chance {se.chance:.0%}); mapped to superclasses its predictions score "
                             f"{se.rolled_accuracy:.3f}" + (f" vs {coarse.best_val_acc:.3f} trained on superclasses directly."
                                                           if coarse else "."))
    return lines


EXPERIMENT = Experiment(
    key="exp4", number=4, title="CIFAR-100: 100 fine classes vs 20 superclasses, AlexNet vs ResNet",
    short_title="Fine vs coarse",
    question="How much harder are 100 fine classes than 20 superclasses, and when a network confuses fine "
             "classes, does it at least stay within the right superclass?",
    expectation="Coarse accuracy well above fine accuracy (one report: AlexNet 36% fine, 48% coarse); ResNet "
                "above AlexNet; most fine-label errors fall inside the right superclass, far above chance.",
    why="Superclasses (e.g. 'vehicles 1', 'flowers') group visually similar classes, so the hard confusions are "
        "between siblings; merging them removes exactly those errors.",
    dataset=DATASET, planner=plan,
    published=(
        Published("AlexNet, fine labels", 0.36, REPORT, "alexnet-fine"),
        Published("AlexNet, coarse labels", 0.48, REPORT, "alexnet-coarse"),
        Published("AlexNet, CIFAR-100", 0.441, SHARMA_2018),
        Published("ResNet, CIFAR-100", 0.5982, SHARMA_2018),
    ),
    pairs=(Pair("resnet-fine", "alexnet-fine", (None, "AlexNet"), prefix="Fine labels: ",
                note="Sharma, Jain and Mishra 2018: ResNet 59.82%, AlexNet 44.10%"),),
    custom=family_lines, sections=("custom", "pairs", "published"),
    fallbacks=("cifar10", "shapes"), chart="superclasses",
    settings={"quick": "32 px, 20 images per fine class (100 per superclass), 4 epochs, ResNet-20 for ResNet",
              "full": "32 px, all 50,000 images (80/20 split), 30 epochs, ResNet-18, cosine schedule"},
)
