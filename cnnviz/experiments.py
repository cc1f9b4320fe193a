"""The six comparisons of the course reports as data: what each asks, the runs it launches,
the figures the reports published, and conclusions computed from a class's own results.

Pure: no Streamlit, and torch only inside the functions that need a model (time estimates).
A launched group is found again through the run store alone: every run of a group is named
``exp<N>#<group>/<run key>`` (in its stored config too, so renaming a run on the Compare page
does not lose it), so a closed tab or a restarted app finds the last group of each experiment.
"""

from __future__ import annotations

import functools
import math
import re
import statistics
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import pandas as pd

from cnnviz.training.config import TrainConfig

SIZES = ("quick", "full")
SCRATCH = "none"
IMAGENET = "imagenet"

COURSE_REPORT = "course report (DESIGN.md, experiment {n})"
SHARMA_2018 = "Sharma, Jain and Mishra (2018), An Analysis of Convolutional Neural Networks for Image Classification"
HE_2016 = "He, Zhang, Ren and Sun (2016), Deep Residual Learning for Image Recognition, table 6"


# ---------------------------------------------------------------- data types
@dataclass(frozen=True)
class Published:
    """A figure a report published, and which run of the group it should sit beside."""

    label: str
    value: float | None  # accuracy in [0, 1]; None when the report gives a range or words
    source: str
    run_key: str | None = None
    text: str = ""  # how to show it when ``value`` is None (e.g. "9-21 min per phase")

    def shown(self) -> str:
        """The figure as the page prints it."""
        return f"{self.value:.3f}" if self.value is not None else self.text


@dataclass(frozen=True)
class PlannedRun:
    """One run of an experiment's group, before launch."""

    key: str  # short, stable within the experiment: "alexnet-finetune"
    label: str  # what a student reads: "AlexNet, reset FC + fine-tune all"
    config: TrainConfig


@dataclass(frozen=True)
class Choices:
    """What a student chose on a card before launching.

    ``dataset`` replaces the experiment's dataset (a fallback when it is missing);
    ``inits`` maps an architecture to its initialisation for the runs that want pretrained
    weights ("imagenet", "run:<id>" or "none"); ``init_options`` the options of that earlier
    run's model (its weights only load into the same options); ``probe_layer`` is the
    intermediate layer of the probe experiment.
    """

    size: str = "quick"
    dataset: str | None = None
    inits: dict[str, str] = field(default_factory=dict)
    init_options: dict[str, dict] = field(default_factory=dict)
    probe_layer: str | None = None

    def __post_init__(self):
        if self.size not in SIZES:
            raise ValueError(f"size must be one of {', '.join(SIZES)}; got {self.size!r}")

    def init_for(self, arch: str) -> str:
        """The initialisation of ``arch``'s pretrained runs (ImageNet unless the student changed it)."""
        return self.inits.get(arch, IMAGENET)


@dataclass
class Outcome:
    """What conclusions and tables need from one finished (or running) run of a group."""

    key: str
    label: str
    config: TrainConfig
    status: str = "finished"
    best_val_acc: float | None = None
    best_epoch: int | None = None
    train_seconds: float | None = None
    epochs: list[dict] = field(default_factory=list)
    confusion: list[list[int]] | None = None
    classes: list[str] = field(default_factory=list)
    run_id: int | None = None
    message: str | None = None

    @property
    def val_images(self) -> int | None:
        """Validation images behind ``best_val_acc`` (from the confusion matrix), or None."""
        total = sum(sum(row) for row in self.confusion) if self.confusion else 0
        return total or None

    @property
    def done(self) -> bool:
        """Finished or stopped: its numbers are final."""
        return self.status in ("finished", "stopped")

    def last(self, column: str) -> float | None:
        """The last epoch's value of ``column`` (e.g. ``train_loss``), or None."""
        values = [row.get(column) for row in self.epochs if row.get(column) is not None]
        return float(values[-1]) if values else None


@dataclass(frozen=True)
class Experiment:
    """One guided card: the question, what to expect and why, the published figures, the runs."""

    key: str
    number: int
    title: str
    question: str
    expectation: str
    why: str
    dataset: str
    published: tuple[Published, ...]
    planner: Callable[[Choices], list[PlannedRun]] = field(repr=False, compare=False)
    concluder: Callable[[list[Outcome]], list[str]] = field(repr=False, compare=False)
    pretrained_archs: tuple[str, ...] = ()  # archs whose runs want ImageNet weights
    fallbacks: tuple[str, ...] = ("shapes",)  # datasets to offer when ``dataset`` is missing
    settings: dict[str, str] = field(default_factory=dict)  # size -> one line describing it

    def plan(self, choices: Choices | None = None) -> list[PlannedRun]:
        """The group of runs for ``choices`` (named, not yet numbered)."""
        return self.planner(choices or Choices())

    def conclude(self, outcomes: Sequence[Outcome]) -> list[str]:
        """Sentences drawn from the numbers of ``outcomes`` (finished runs only)."""
        done = [o for o in outcomes if o.done and o.best_val_acc is not None]
        if not done:
            return []
        return self.concluder(done) + not_learned_lines(done)


# ---------------------------------------------------------------- helpers for the presets
def _dataset(choices: Choices, default: str) -> str:
    return choices.dataset or default


def _on_fallback(choices: Choices, default: str) -> bool:
    return bool(choices.dataset) and choices.dataset != default


def _init(choices: Choices, arch: str, options: dict) -> tuple[str, dict]:
    """Initialisation and options for a run that wants ``arch``'s ImageNet weights."""
    init = choices.init_for(arch)
    if init.startswith("run:") and arch in choices.init_options:
        # An earlier run's weights only load into a model with that run's options.
        options = {**options, **choices.init_options[arch]}
    return init, options


def _init_note(init: str) -> str:
    if init == IMAGENET:
        return "ImageNet weights"
    if init == SCRATCH:
        return "no pretrained weights: random init"
    if init.startswith("run:"):
        return f"weights of run {init[4:]}"
    return f"weights from {init}"


def _config(**values: Any) -> TrainConfig:
    values.setdefault("seed", 0)
    return TrainConfig(**values)


# ---------------------------------------------------------------- 1. AlexNet vs ResNet-18, hymenoptera
def _plan_transfer(choices: Choices) -> list[PlannedRun]:
    dataset = _dataset(choices, "hymenoptera")
    fallback = _on_fallback(choices, "hymenoptera")
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
                      augment="standard", subset=40 if fallback else None)
        freeze_extra = dict(augment="none", epochs=6)
    runs = []
    for arch, name in (("alexnet", "AlexNet"), ("resnet18", "ResNet-18")):
        init, options = _init(choices, arch, {})
        note = _init_note(init)
        runs.append(PlannedRun(f"{arch}-finetune", f"{name}, reset FC + fine-tune all ({note})",
                               _config(arch=arch, options=options, dataset=dataset, mode="finetune", init=init, **common)))
        runs.append(PlannedRun(f"{arch}-freeze", f"{name}, freeze all but the last layer ({note})",
                               _config(arch=arch, options=options, dataset=dataset, mode="freeze", init=init,
                                       **{**common, **freeze_extra})))
    return runs


def _conclude_transfer(outcomes: list[Outcome]) -> list[str]:
    by = {o.key: o for o in outcomes}
    lines = []
    for mode, words in (("finetune", "Reset FC + fine-tune"), ("freeze", "Freeze all but the last layer")):
        a, r = by.get(f"alexnet-{mode}"), by.get(f"resnet18-{mode}")
        if a and r:
            lines.append(f"{words}: {compare_pair(r, a, names=('ResNet-18', 'AlexNet'))}.")
    for arch, name in (("alexnet", "AlexNet"), ("resnet18", "ResNet-18")):
        f, z = by.get(f"{arch}-finetune"), by.get(f"{arch}-freeze")
        if f and z:
            lines.append(f"{name}: {compare_pair(z, f, names=('freezing', 'fine-tuning everything'))}.")
    lines += _published_lines(outcomes, EXPERIMENTS_BY_KEY["exp1"])
    return lines


# ---------------------------------------------------------------- 2. CIFAR-10 transfer
def _plan_cifar_transfer(choices: Choices) -> list[PlannedRun]:
    dataset = _dataset(choices, "cifar10")
    if choices.size == "full":
        # The report's settings: 224 px (CIFAR upscaled for the ImageNet networks), lr 0.05,
        # 10 epochs, batch 256.
        common = dict(epochs=10, batch_size=256, lr=0.05, image_size=224, augment="standard")
    else:
        # Quick: 64 px (torchvision's AlexNet needs at least 63), 100 images per class,
        # 3 epochs; lr scaled with the batch (0.05 x 64/256).
        common = dict(epochs=3, batch_size=64, lr=0.0125, image_size=64, augment="standard", subset=100, val_subset=50)
    runs = [PlannedRun("alexnet-scratch", "AlexNet from scratch",
                       _config(arch="alexnet", dataset=dataset, mode="scratch", init=SCRATCH, **common))]
    for arch, name in (("alexnet", "AlexNet"), ("resnet18", "ResNet-18"), ("vgg16", "VGG16")):
        init, options = _init(choices, arch, {})
        runs.append(PlannedRun(f"{arch}-finetune", f"{name} fine-tuned ({_init_note(init)})",
                               _config(arch=arch, options=options, dataset=dataset, mode="finetune", init=init, **common)))
    return runs


def _conclude_cifar_transfer(outcomes: list[Outcome]) -> list[str]:
    by = {o.key: o for o in outcomes}
    lines = []
    s, f = by.get("alexnet-scratch"), by.get("alexnet-finetune")
    if s and f:
        gain = points(f.best_val_acc - s.best_val_acc)
        start = _init_note(f.config.init)
        verb = "added" if gain >= 0 else "cost"
        lines.append(f"Starting AlexNet from {start} instead of random weights {verb} {abs(gain):.1f} points "
                     f"({s.best_val_acc:.3f} -> {f.best_val_acc:.3f}); the report measured +49.8 (0.399 -> 0.897).")
    tuned = [o for o in outcomes if o.config.mode == "finetune"]
    if len(tuned) >= 2:
        lines.append("Fine-tuned ranking: " + ranking(tuned) + ".")
    lines += noise_line(outcomes)
    lines += _published_lines(outcomes, EXPERIMENTS_BY_KEY["exp2"])
    return lines


# ---------------------------------------------------------------- 3. linear probes
PROBE_ARCH = "resnet18"
PICKED = "-picked"


def probe_points(arch: str = PROBE_ARCH) -> list[str]:
    """The probe points of ``arch`` shallow to deep (from the model registry)."""
    from cnnviz.models import get_spec

    return list(get_spec(arch).probe_points)


def intermediate_points(arch: str = PROBE_ARCH) -> list[str]:
    """Probe points a student can pick as 'the intermediate layer' (all but the last)."""
    return probe_points(arch)[:-1]


def default_probe_pick(arch: str = PROBE_ARCH) -> str:
    """The intermediate layer probed unless the student picks another: the middle one."""
    middle = intermediate_points(arch)
    return middle[len(middle) // 2]


def _plan_probes(choices: Choices) -> list[PlannedRun]:
    dataset = _dataset(choices, "cifar10")
    points = probe_points()
    last = points[-1]
    middle = choices.probe_layer or default_probe_pick()
    if middle not in intermediate_points():
        raise ValueError(f"{middle!r} is not an intermediate probe point of {PROBE_ARCH} "
                         f"(choose one of {', '.join(intermediate_points())})")
    if choices.size == "full":
        common = dict(epochs=30, batch_size=256, lr=0.01, weight_decay=0.0, image_size=224)
    else:
        common = dict(epochs=15, batch_size=128, lr=0.01, weight_decay=0.0, image_size=64, subset=100, val_subset=50)
    init, options = _init(choices, PROBE_ARCH, {})
    note = _init_note(init)
    runs = [PlannedRun("input", "raw pixels (softmax regression)",
                       _config(arch=PROBE_ARCH, options=options, dataset=dataset, mode="probe", probe_layer="input",
                               init=init, **common))]
    for point in points:  # every depth, so the accuracy-by-depth curve has all its points
        role = "last conv layer" if point == last else ("intermediate layer (your pick)" if point == middle else "")
        label = f"ResNet-18 {point}" + (f", {role}" if role else "") + f" ({note})"
        # The key marks the student's pick, so a reopened page knows which layer they chose.
        key = f"probe-{point}" + (PICKED if point == middle else "")
        runs.append(PlannedRun(key, label,
                               _config(arch=PROBE_ARCH, options=options, dataset=dataset, mode="probe",
                                       probe_layer=point, init=init, **common)))
    return runs


def probe_depth_frame(outcomes: Sequence[Outcome]) -> pd.DataFrame:
    """Probe accuracy by depth: one row per probed layer in network order (raw pixels first)."""
    order = {"input": 0}
    rows = []
    for o in outcomes:
        if o.config.mode != "probe" or o.best_val_acc is None:
            continue
        layer = o.config.probe_layer
        if layer not in order:
            try:
                order[layer] = probe_points(o.config.arch).index(layer) + 1
            except (ValueError, KeyError):
                order[layer] = len(order)
        rows.append({"layer": "raw pixels" if layer == "input" else layer, "depth": order[layer],
                     "accuracy": float(o.best_val_acc), "run": o.label})
    frame = pd.DataFrame(rows, columns=["layer", "depth", "accuracy", "run"])
    return frame.sort_values("depth").reset_index(drop=True)


def _conclude_probes(outcomes: list[Outcome]) -> list[str]:
    frame = probe_depth_frame(outcomes)
    if frame.empty:
        return []
    lines = []
    best = frame.loc[frame["accuracy"].idxmax()]
    raw = frame[frame["layer"] == "raw pixels"]
    deep = frame[frame["layer"] != "raw pixels"]
    if not deep.empty:
        last = deep.iloc[-1]
        if not raw.empty:
            diff = points(last["accuracy"] - raw.iloc[0]["accuracy"])
            lines.append(f"A linear classifier on the last conv layer ({last['layer']}) reached {last['accuracy']:.3f}, "
                         f"{_signed(diff)} points against raw pixels ({raw.iloc[0]['accuracy']:.3f}).")
        trend = _trend(deep["accuracy"].tolist())
        lines.append(f"Best layer: {best['layer']} ({best['accuracy']:.3f}); across depth the accuracy {trend}.")
    init = outcomes[0].config.init
    if init == SCRATCH:
        lines.append("These are random (untrained) features: any gain over raw pixels comes from the architecture "
                     "alone (random convolutions + pooling), not from learning.")
    elif init.startswith("run:"):
        lines.append(f"Features come from run {init[4:]}, not ImageNet: they reflect what that run learned.")
    return lines


# ---------------------------------------------------------------- 4. CIFAR-100 fine vs coarse
# When CIFAR-100 is missing, CIFAR-10's own two natural groups stand in for superclasses.
CIFAR10_SUPERCLASSES = {
    "airplane": "vehicles", "automobile": "vehicles", "ship": "vehicles", "truck": "vehicles",
    "bird": "animals", "cat": "animals", "deer": "animals", "dog": "animals", "frog": "animals", "horse": "animals",
}


def _fine_coarse_subsets(size: str, dataset: str, labels: str) -> dict[str, int | None]:
    """Subsets per class that give fine and coarse runs the same pictures' worth (5 fine classes per superclass)."""
    if size == "full":
        return {"subset": None, "val_subset": None}
    if dataset != "cifar100":
        return {"subset": 100, "val_subset": 50}
    per = 5 if labels == "coarse" else 1
    return {"subset": 20 * per, "val_subset": 5 * per}


def _plan_fine_coarse(choices: Choices) -> list[PlannedRun]:
    dataset = _dataset(choices, "cifar100")
    label_sets = ("fine", "coarse") if dataset == "cifar100" else ("fine",)
    if choices.size == "full":
        common = dict(epochs=30, batch_size=128, lr=0.01, image_size=32, augment="cifar", scheduler="cosine")
        # ResNet-18 with the 3x3 CIFAR stem, as the CIFAR-100 comparisons train it.
        resnet = ("resnet18", {"stem": "cifar"}, "ResNet-18")
    else:
        common = dict(epochs=4, batch_size=64, lr=0.02, image_size=32, augment="cifar")
        # Quick: He et al.'s 20-layer CIFAR ResNet, a fifteenth of ResNet-18's compute at 32 px.
        resnet = ("cifar_resnet", {"depth": 20}, "ResNet-20")
    runs = []
    for family, (arch, options, name) in (("alexnet", ("alexnet_cifar", {}, "AlexNet")), ("resnet", resnet)):
        for labels in label_sets:
            words = "100 fine classes" if labels == "fine" and dataset == "cifar100" else (
                "20 superclasses" if labels == "coarse" else "fine labels")
            runs.append(PlannedRun(f"{family}-{labels}", f"{name}, {words}", _config(
                arch=arch, options=options, dataset=dataset, labels=labels, mode="scratch", val_split="random",
                **common, **_fine_coarse_subsets(choices.size, dataset, labels))))
    return runs


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


def _conclude_fine_coarse(outcomes: list[Outcome]) -> list[str]:
    by = {o.key: o for o in outcomes}
    lines = []
    for family in ("alexnet", "resnet"):
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
    a, r = by.get("alexnet-fine"), by.get("resnet-fine")
    if a and r:
        cited = " (Sharma et al. 2018: ResNet 59.82%, AlexNet 44.10%)" if a.config.dataset == "cifar100" else ""
        lines.append(f"Fine labels: {compare_pair(r, a, names=(r.label.split(',')[0], 'AlexNet'))}{cited}.")
    return lines


# ---------------------------------------------------------------- 5. AlexResNet and AlexSE
def _plan_alex_hybrids(choices: Choices) -> list[PlannedRun]:
    dataset = _dataset(choices, "cifar10")
    if choices.size == "full":
        common = dict(epochs=25, batch_size=128, lr=0.01, image_size=32, augment="cifar", scheduler="cosine")
    else:
        common = dict(epochs=3, batch_size=32, lr=0.02, image_size=32, augment="cifar", subset=100, val_subset=50)
    variants = (
        ("alexnet", "alexnet_cifar", {}, "AlexNet (plain)"),
        ("alexresnet", "alex_resnet", {}, "AlexResNet (shortcuts around blocks 1 and 2)"),
        ("alexse-1", "alex_se", {"se_1": True, "se_2": False}, "AlexSE, SE after block 1"),
        ("alexse-2", "alex_se", {"se_1": False, "se_2": True}, "AlexSE, SE after block 2"),
        ("alexse-12", "alex_se", {"se_1": True, "se_2": True}, "AlexSE, SE after blocks 1 and 2"),
        ("resnet18", "resnet18", {"stem": "cifar"}, "ResNet-18 (CIFAR stem)"),
    )
    return [PlannedRun(key, label, _config(arch=arch, options=options, dataset=dataset, mode="scratch", **common))
            for key, arch, options, label in variants]


def _conclude_alex_hybrids(outcomes: list[Outcome]) -> list[str]:
    by = {o.key: o for o in outcomes}
    lines = ["Ranking: " + ranking(outcomes) + "."]
    se = [o for o in outcomes if o.key.startswith("alexse")]
    if len(se) >= 2:
        best = max(se, key=lambda o: o.best_val_acc)
        lines.append(f"Best SE placement: {best.label.split(', ', 1)[-1]} ({best.best_val_acc:.3f}); "
                     f"the spread between placements is {points(max(o.best_val_acc for o in se) - min(o.best_val_acc for o in se)):.1f} points.")
    plain = by.get("alexnet")
    for key, name in (("alexresnet", "AlexResNet"), ("resnet18", "ResNet-18")):
        other = by.get(key)
        if plain and other:
            sentence = compare_pair(other, plain, names=(name, "plain AlexNet"))
            lines.append(sentence[0].upper() + sentence[1:] + ".")
    lines += noise_line(outcomes)
    lines += _published_lines(outcomes, EXPERIMENTS_BY_KEY["exp5"])
    return lines


# ---------------------------------------------------------------- 6. degradation
def _plan_degradation(choices: Choices) -> list[PlannedRun]:
    dataset = _dataset(choices, "cifar10")
    if choices.size == "full":
        # He et al. section 4.2 (shortened): lr 0.1, batch 128, crop + flip; they trained 64k iterations.
        common = dict(epochs=40, batch_size=128, lr=0.1, image_size=32, augment="cifar", scheduler="cosine",
                      weight_decay=1e-4)
        depths = (20, 56)
    else:
        # Quick: batch 32 for twice the steps per image seen; depth 56 needs a few hundred steps to move.
        common = dict(epochs=5, batch_size=32, lr=0.05, image_size=32, augment="none", subset=200,
                      val_subset=50, weight_decay=1e-4)
        depths = (20, 56)
    runs = []
    for depth in depths:
        for residual in (False, True):
            key = f"{'resnet' if residual else 'plain'}-{depth}"
            label = f"{'ResNet' if residual else 'plain'}-{depth}" + (" (shortcut A)" if residual else "")
            runs.append(PlannedRun(key, label, _config(
                arch="cifar_resnet", options={"depth": depth, "residual": residual, "shortcut": "A"},
                dataset=dataset, mode="scratch", track_grad_norms=True, **common)))
    deep = depths[-1]
    runs.append(PlannedRun(f"resnet-{deep}-B", f"ResNet-{deep} (shortcut B, 1x1 projections)", _config(
        arch="cifar_resnet", options={"depth": deep, "residual": True, "shortcut": "B"},
        dataset=dataset, mode="scratch", track_grad_norms=True, **common)))
    return runs


def grad_norm_frame(outcomes: Sequence[Outcome]) -> pd.DataFrame:
    """Per-layer gradient norms over training: one row per (run, epoch, layer), layers in network order."""
    rows = []
    for o in outcomes:
        for row in o.epochs:
            norms = row.get("grad_norms") or {}
            for depth, (layer, norm) in enumerate(norms.items()):
                if norm is not None and math.isfinite(norm):
                    rows.append({"run": o.label, "key": o.key, "epoch": int(row.get("epoch", 0)),
                                 "layer": layer, "depth": depth, "grad_norm": float(norm)})
    return pd.DataFrame(rows, columns=["run", "key", "epoch", "layer", "depth", "grad_norm"])


def early_late_ratio(row: dict, *, layers: int = 3) -> float | None:
    """Gradient norm of the first ``layers`` conv layers over that of the last ``layers`` (medians; head excluded).

    Above 1 the gradient grows towards the input (exploding), below 1 it shrinks (vanishing).
    """
    norms = [float(v) for k, v in (row.get("grad_norms") or {}).items() if v is not None and k != "fc"]
    if len(norms) < 2 * layers:
        return None
    early, late = statistics.median(norms[:layers]), statistics.median(norms[-layers:])
    return early / late if late > 0 and early > 0 else None


def _factor(ratio: float) -> str:
    if ratio >= 1:
        return f"{ratio:.0f}x larger" if ratio >= 10 else f"{ratio:.1f}x larger"
    return f"{1 / ratio:.0f}x smaller" if ratio <= 0.1 else f"{1 / ratio:.1f}x smaller"


def _gradient_line(plain: Outcome, residual: Outcome) -> list[str]:
    """Compare how evenly plain and residual nets spread their gradient over depth, first and last epoch."""
    ratios = {}
    for o in (plain, residual):
        rows = [r for r in o.epochs if early_late_ratio(r)]
        if not rows:
            return []
        ratios[o.key] = (rows[0]["epoch"], early_late_ratio(rows[0]), rows[-1]["epoch"], early_late_ratio(rows[-1]))
    (e0, p0, e1, p1), (_, r0, _, r1) = ratios[plain.key], ratios[residual.key]
    spread = lambda *rs: max(abs(math.log10(r)) for r in rs)  # noqa: E731 - orders of magnitude away from even
    verdict = ("the plain network's gradient explodes or vanishes with depth, the shortcuts keep every layer's "
               "within a small factor" if spread(p0, p1) > spread(r0, r1) + 0.5
               else "no clear difference between them in this run")
    return [f"Gradient at the first layers compared with the last conv layers: {plain.label.split(' (')[0]} "
            f"{_factor(p0)} in epoch {e0} and {_factor(p1)} in epoch {e1}; {residual.label.split(' (')[0]} "
            f"{_factor(r0)} and {_factor(r1)} — {verdict}."]


def _conclude_degradation(outcomes: list[Outcome]) -> list[str]:
    by = {o.key: o for o in outcomes}
    lines = []
    for kind, name in (("plain", "plain"), ("resnet", "ResNet")):
        shallow, deep = by.get(f"{kind}-20"), by.get(f"{kind}-56")
        if shallow and deep:
            ls, ld = shallow.last("train_loss"), deep.last("train_loss")
            verdict = ""
            if ls is not None and ld is not None:
                worse = ld > ls
                verdict = (f"; final training loss {ld:.3f} vs {ls:.3f}: "
                           + ("the deeper net fits its own training data worse: degradation" if worse and kind == "plain"
                              else "deeper trained worse here too" if worse
                              else "the deeper net fits its training data better, as depth should allow"))
            lines.append(f"{name}-56 vs {name}-20: {deep.best_val_acc:.3f} vs {shallow.best_val_acc:.3f} best val accuracy{verdict}.")
    a, b = by.get("resnet-56"), by.get("resnet-56-B")
    if a and b:
        lines.append(f"Shortcut B vs A at depth 56: {compare_pair(b, a, names=('projections (B)', 'zero-padding (A)'))}.")
    lines += noise_line(outcomes)
    p, r = by.get("plain-56"), by.get("resnet-56")
    if p and r:
        lines += _gradient_line(p, r)
    return lines


# ---------------------------------------------------------------- comparison words
def points(diff: float) -> float:
    """An accuracy difference in percentage points."""
    return 100.0 * float(diff)


def _signed(value: float) -> str:
    return f"+{value:.1f}" if value >= 0 else f"{value:.1f}"


def _trend(values: list[float]) -> str:
    if len(values) < 2:
        return "has a single point"
    ups = sum(b > a for a, b in zip(values, values[1:]))
    if ups == len(values) - 1:
        return "rose at every step deeper"
    if ups == 0:
        return "fell at every step deeper"
    peak = values.index(max(values))
    return f"peaked at depth {peak + 1} of {len(values)} and did not rise steadily"


def time_phrase(a: Outcome, b: Outcome) -> str:
    """``in 38% of the time`` / ``but took 2.6x as long`` (a relative to b), or '' without timings."""
    if not a.train_seconds or not b.train_seconds:
        return ""
    ratio = a.train_seconds / b.train_seconds
    if ratio <= 0.95:
        return f"in {ratio:.0%} of the time"
    if ratio >= 1.05:
        return f"but took {ratio:.1f}x as long"
    return "in about the same time"


def compare_pair(a: Outcome, b: Outcome, *, names: tuple[str, str]) -> str:
    """One sentence comparing two runs' best validation accuracy and time (a first, then b)."""
    diff = points(a.best_val_acc - b.best_val_acc)
    if abs(diff) < 0.5:
        return f"{names[0]} and {names[1]} tied ({a.best_val_acc:.3f} vs {b.best_val_acc:.3f})"
    if diff > 0:
        winner, loser, w, lo = names[0], names[1], a, b
    else:
        winner, loser, w, lo = names[1], names[0], b, a
    timing = time_phrase(w, lo)
    noise = noise_points(a, b)
    caveat = (f" — within the noise of {min(a.val_images, b.val_images)} validation images (±{noise:.1f} points), "
              "so not a real difference yet" if noise is not None and abs(diff) < noise else "")
    return (f"{winner} beat {loser} by {abs(diff):.1f} points ({w.best_val_acc:.3f} vs {lo.best_val_acc:.3f})"
            + (f", {timing}" if timing else "") + caveat)


def noise_points(a: Outcome, b: Outcome) -> float | None:
    """Two standard errors of the difference of two accuracies, in points (None without validation counts).

    Each accuracy measured on n images has a standard error sqrt(p(1-p)/n); a difference smaller
    than twice the combined error could well flip on another random seed or validation sample.
    """
    if not a.val_images or not b.val_images:
        return None
    var = sum(o.best_val_acc * (1 - o.best_val_acc) / o.val_images for o in (a, b))
    return points(2 * math.sqrt(var))


def ranking(outcomes: Iterable[Outcome]) -> str:
    """Runs from best to worst: ``ResNet-18 0.841 > AlexResNet 0.808 > ...``."""
    ordered = sorted(outcomes, key=lambda o: o.best_val_acc, reverse=True)
    return " > ".join(f"{o.label.split(' (')[0]} {o.best_val_acc:.3f}" for o in ordered)


def comparable(experiment: Experiment, outcome: Outcome) -> bool:
    """Whether a run can sit beside the published figures: same dataset (not a stand-in) and labels."""
    return outcome.config.dataset == experiment.dataset


def _published_lines(outcomes: Sequence[Outcome], experiment: Experiment) -> list[str]:
    """How far each run sits from the published figure next to it (only like-for-like runs)."""
    by = {o.key: o for o in outcomes if comparable(experiment, o)}
    parts = []
    for pub in experiment.published:
        o = by.get(pub.run_key) if pub.run_key else None
        if o is None or pub.value is None:
            continue
        parts.append(f"{o.label.split(' (')[0]} {o.best_val_acc:.3f} vs {pub.value:.3f} ({_signed(points(o.best_val_acc - pub.value))})")
    if not parts:
        return []
    reasons = []
    if any(o.config.subset or o.config.epochs < 10 for o in outcomes):
        reasons.append("quick runs see far fewer images and epochs")
    if any(o.config.mode != "scratch" and o.config.init != IMAGENET for o in outcomes):
        reasons.append("runs marked 'random init' or 'weights of run N' did not start from ImageNet weights")
    caveat = f" (expect to fall short: {'; '.join(reasons)})" if reasons else ""
    return ["Against the published figures: " + "; ".join(parts) + caveat + "."]


def majority_share(outcome: Outcome) -> tuple[str, float] | None:
    """(biggest class, its share of the validation images): what always guessing that class scores."""
    if not outcome.confusion:
        return None
    rows = [sum(row) for row in outcome.confusion]
    total = sum(rows)
    if not total:
        return None
    top = max(range(len(rows)), key=rows.__getitem__)
    name = outcome.classes[top] if top < len(outcome.classes) else f"class {top}"
    return name, rows[top] / total


def not_learned_lines(outcomes: Sequence[Outcome]) -> list[str]:
    """Flag runs that score no better than always guessing the biggest class (they learned nothing yet)."""
    stuck = []
    for o in outcomes:
        share = majority_share(o)
        if share and o.best_val_acc <= share[1] + 0.005:
            stuck.append((o, share))
    if not stuck:
        return []
    names = "; ".join(f"{o.label.split(' (')[0]} ({o.best_val_acc:.3f})" for o, _ in stuck)
    cls, frac = stuck[0][1]
    return [f"No better than always answering '{cls}' ({frac:.3f} of the validation images): {names}. These runs "
            "have not learned anything yet: more epochs, a higher learning rate, or pretrained weights."]


def noise_line(outcomes: Sequence[Outcome]) -> list[str]:
    """How big a difference must be to mean something, given the validation set size (one sentence or none)."""
    sized = [o for o in outcomes if o.val_images and o.best_val_acc is not None]
    if len(sized) < 2:
        return []
    n = min(o.val_images for o in sized)
    p = statistics.mean(o.best_val_acc for o in sized)
    margin = points(2 * math.sqrt(2 * p * (1 - p) / n))
    return [f"With {n:,} validation images, differences smaller than about {margin:.1f} points could be luck "
            "(two standard errors); a bigger run narrows that."]


# ---------------------------------------------------------------- the six experiments
EXPERIMENTS: tuple[Experiment, ...] = (
    Experiment(
        key="exp1", number=1, title="AlexNet vs ResNet-18: fine-tune or freeze? (ants vs bees)",
        question="With 245 training photos, should you retrain a pretrained network end to end, or freeze it and "
                 "train only a new last layer? And does the newer ResNet-18 transfer better than AlexNet?",
        expectation="ResNet-18 beats AlexNet in both modes; freezing is as good as or better than fine-tuning on so "
                    "few images, and far faster.",
        why="ImageNet features already separate insects well; with 245 images, updating 11-61 million weights "
            "overfits while a 2-way linear head on frozen features cannot. Freezing also skips the backward pass "
            "through the backbone (and here its features are computed once and cached).",
        dataset="hymenoptera",
        published=(
            Published("AlexNet, reset FC + fine-tune", 0.902, COURSE_REPORT.format(n=1), "alexnet-finetune"),
            Published("AlexNet, freeze all but last", 0.948, COURSE_REPORT.format(n=1), "alexnet-freeze"),
            Published("ResNet-18, reset FC + fine-tune", 0.948, COURSE_REPORT.format(n=1), "resnet18-finetune"),
            Published("ResNet-18, freeze all but last", 0.954, COURSE_REPORT.format(n=1), "resnet18-freeze"),
            Published("time per phase (CPU, 25 epochs)", None, COURSE_REPORT.format(n=1), text="9-21 min"),
        ),
        planner=_plan_transfer, concluder=_conclude_transfer, pretrained_archs=("alexnet", "resnet18"),
        settings={"quick": "128 px, 3 fine-tune / 6 freeze epochs, batch 16, lr 0.001",
                  "full": "the PyTorch tutorial's settings: 224 px, 25 epochs, batch 4, lr 0.001, step lr/10 every 7"},
    ),
    Experiment(
        key="exp2", number=2, title="CIFAR-10: AlexNet from scratch vs fine-tuned, ResNet-18 and VGG16 fine-tuned",
        question="How much does starting from ImageNet weights buy on CIFAR-10, and which network transfers best?",
        expectation="Fine-tuned AlexNet far above AlexNet from scratch (the report: 0.399 -> 0.897 in 10 epochs); "
                    "ResNet-18 and VGG16 above AlexNet.",
        why="Ten epochs are far too few to learn good filters from random weights with lr 0.05, while pretrained "
            "filters (edges, textures, parts) need only adapting. Deeper networks carry richer features.",
        dataset="cifar10",
        published=(
            Published("AlexNet from scratch", 0.399, COURSE_REPORT.format(n=2), "alexnet-scratch"),
            Published("AlexNet fine-tuned", 0.897, COURSE_REPORT.format(n=2), "alexnet-finetune"),
            Published("ResNet-18 fine-tuned", 0.950, COURSE_REPORT.format(n=2), "resnet18-finetune"),
            Published("VGG16 fine-tuned", 0.937, COURSE_REPORT.format(n=2), "vgg16-finetune"),
        ),
        planner=_plan_cifar_transfer, concluder=_conclude_cifar_transfer,
        pretrained_archs=("alexnet", "resnet18", "vgg16"),
        settings={"quick": "64 px, 100 images per class (50 for validation), 3 epochs, batch 64, lr 0.0125",
                  "full": "the report's settings: 224 px, all 50,000 images, 10 epochs, batch 256, lr 0.05"},
    ),
    Experiment(
        key="exp3", number=3, title="Linear probes: what do ResNet-18's layers know?",
        question="If you freeze ResNet-18 and fit only softmax regression on one layer's features, how good is "
                 "each layer — and how good are the raw pixels?",
        expectation="Accuracy rises with depth: the last conv layer best, an intermediate layer in between, raw "
                    "pixels worst (softmax regression on raw CIFAR-10 pixels is typically around 0.4).",
        why="Each stage recombines the previous one's features into more abstract, more linearly separable ones; "
            "a linear probe measures exactly that separability. Pixels are not linearly separable by class.",
        dataset="cifar10",
        published=(),
        planner=_plan_probes, concluder=_conclude_probes, pretrained_archs=(PROBE_ARCH,),
        settings={"quick": "64 px, 100 images per class (50 for validation), 15 probe epochs on cached features",
                  "full": "224 px, all images, 30 probe epochs"},
    ),
    Experiment(
        key="exp4", number=4, title="CIFAR-100: 100 fine classes vs 20 superclasses, AlexNet vs ResNet",
        question="How much harder are 100 fine classes than 20 superclasses, and when a network confuses fine "
                 "classes, does it at least stay within the right superclass?",
        expectation="Coarse accuracy well above fine accuracy (one report: AlexNet 36% fine, 48% coarse); ResNet "
                    "above AlexNet; most fine-label errors fall inside the right superclass, far above chance.",
        why="Superclasses (e.g. 'vehicles 1', 'flowers') group visually similar classes, so the hard confusions are "
            "between siblings; merging them removes exactly those errors.",
        dataset="cifar100",
        published=(
            Published("AlexNet, fine labels", 0.36, "course report (DESIGN.md, experiment 4)", "alexnet-fine"),
            Published("AlexNet, coarse labels", 0.48, "course report (DESIGN.md, experiment 4)", "alexnet-coarse"),
            Published("AlexNet, CIFAR-100", 0.441, SHARMA_2018),
            Published("ResNet, CIFAR-100", 0.5982, SHARMA_2018),
        ),
        planner=_plan_fine_coarse, concluder=_conclude_fine_coarse, fallbacks=("cifar10", "shapes"),
        settings={"quick": "32 px, 20 images per fine class (100 per superclass), 4 epochs, ResNet-20 for ResNet",
                  "full": "32 px, all 50,000 images (80/20 split), 30 epochs, ResNet-18, cosine schedule"},
    ),
    Experiment(
        key="exp5", number=5, title="AlexResNet and AlexSE: does AlexNet gain from shortcuts or SE blocks?",
        question="Do projection shortcuts or squeeze-and-excitation blocks help a shallow network like AlexNet, "
                 "and where should the SE block go: after block 1, after block 2, or both?",
        expectation="Small gains for both over plain AlexNet, SE after the later block about as good as both; "
                    "ResNet-18 still best, but slowest (reported: 0.841 in 140 min vs AlexResNet 0.808 in 88 min).",
        why="Shortcuts mostly help depth, and AlexNet is shallow; SE reweights channels from global context, which "
            "matters more where channels are many and semantic (later blocks).",
        dataset="cifar10",
        published=(
            Published("ResNet-18, 25 epochs (140 min)", 0.841, COURSE_REPORT.format(n=5), "resnet18"),
            Published("AlexResNet (88 min)", 0.808, COURSE_REPORT.format(n=5), "alexresnet"),
            Published("AlexSE (first placement reported)", 0.821, COURSE_REPORT.format(n=5)),
            Published("AlexSE (second placement reported)", 0.820, COURSE_REPORT.format(n=5)),
        ),
        planner=_plan_alex_hybrids, concluder=_conclude_alex_hybrids,
        settings={"quick": "32 px, 100 images per class (50 for validation), 3 epochs from scratch, batch 32",
                  "full": "32 px, all 50,000 images, 25 epochs (as reported), cosine schedule"},
    ),
    Experiment(
        key="exp6", number=6, title="Why residuals work: plain vs residual at depth 20 and 56",
        question="If deeper is better, why does a plain 56-layer network train worse than a 20-layer one — and what "
                 "do shortcuts change?",
        expectation="Plain-56 ends with higher training loss than plain-20 (degradation: not overfitting, since "
                    "training error is worse too); ResNet-56 at least matches ResNet-20; option A and B close; the "
                    "plain network's early layers receive much smaller gradients.",
        why="Each plain layer multiplies the backward signal by its Jacobian, so it can shrink layer after layer; "
            "y = F(x) + x adds an identity path (dy/dx = dF/dx + 1) and lets a block default to doing nothing.",
        dataset="cifar10",
        published=(
            Published("ResNet-20 (option A)", 0.9125, HE_2016, "resnet-20"),
            Published("ResNet-56 (option A)", 0.9303, HE_2016, "resnet-56"),
            Published("plain-56 vs plain-20", None, "He et al. (2016), figure 6",
                      text="plain-56 has higher training and test error"),
        ),
        planner=_plan_degradation, concluder=_conclude_degradation,
        settings={"quick": "32 px, 200 images per class (50 for validation), 5 epochs, batch 32, gradient norms per layer",
                  "full": "32 px, all 50,000 images, 40 epochs, lr 0.1, cosine schedule"},
    ),
)
EXPERIMENTS_BY_KEY = {e.key: e for e in EXPERIMENTS}


def list_experiments() -> list[str]:
    """Keys of the experiments, in the order of the course reports."""
    return [e.key for e in EXPERIMENTS]


def get_experiment(key: str) -> Experiment:
    """The experiment ``key`` (``exp1`` ... ``exp6``), or ValueError."""
    try:
        return EXPERIMENTS_BY_KEY[key]
    except KeyError:
        raise ValueError(f"unknown experiment {key!r}; choose one of: {', '.join(EXPERIMENTS_BY_KEY)}") from None


# ---------------------------------------------------------------- groups in the run store
_NAME = re.compile(r"^(exp\d+)#(\d+)/(.+)$")


def run_name(experiment: Experiment, group: int, plan: PlannedRun) -> str:
    """The stored name of one run of a group: ``exp1#3/alexnet-finetune``."""
    return f"{experiment.key}#{group}/{plan.key}"


def parse_run_name(name: str) -> tuple[str, int, str] | None:
    """(experiment key, group number, run key) from a stored name, or None."""
    match = _NAME.match(name or "")
    return (match.group(1), int(match.group(2)), match.group(3)) if match else None


def _tag(run: Any) -> tuple[str, int, str] | None:
    # The config keeps the original name even if the student renames the run later.
    return parse_run_name(getattr(run.config, "name", "") or "") or parse_run_name(run.name)


def next_group(runs: Iterable[Any], experiment: Experiment) -> int:
    """The number for a new launch of ``experiment`` (one more than any stored)."""
    numbers = [t[1] for t in map(_tag, runs) if t and t[0] == experiment.key]
    return max(numbers, default=0) + 1


def latest_group(runs: Iterable[Any], experiment: Experiment) -> list[Any]:
    """The runs of ``experiment``'s last launched group, in launch order (empty when never launched)."""
    tagged = [(t, r) for r in runs if (t := _tag(r)) and t[0] == experiment.key]
    if not tagged:
        return []
    last = max(t[1] for t, _ in tagged)
    return sorted((r for t, r in tagged if t[1] == last), key=lambda r: r.id)


def launch(experiment: Experiment, plans: Sequence[PlannedRun], *, manager: Any, runs: Iterable[Any]) -> list[int]:
    """Submit ``plans`` to the job manager in order (they queue one after another); returns the run ids."""
    group = next_group(runs, experiment)
    ids = []
    for plan in plans:
        name = run_name(experiment, group, plan)
        ids.append(manager.submit(plan.config.replace(name=name), name=name))
    return ids


def outcome_from_run(run: Any, epochs: list[dict], *, labels: dict[str, str] | None = None) -> Outcome:
    """An ``Outcome`` from a stored run and its epoch rows (``labels``: run key -> label)."""
    tag = _tag(run)
    key = tag[2] if tag else str(run.id)
    return Outcome(key=key, label=(labels or {}).get(key, run.name or key), config=run.config, status=run.status,
                   best_val_acc=run.best_val_acc, best_epoch=run.best_epoch, train_seconds=run.train_seconds,
                   epochs=list(epochs), confusion=run.confusion, classes=list(run.classes or []), run_id=run.id,
                   message=run.message)


def group_outcomes(experiment: Experiment, store: Any) -> list[Outcome]:
    """Outcomes of the last launched group of ``experiment`` read from ``store`` (a RunStore)."""
    group = latest_group(store.list(), experiment)
    labels = {}
    if group:
        # Labels as planned for the group's own choices: rebuild from the first run's config.
        labels = {p.key: p.label for p in _plans_like(experiment, group)}
    return [outcome_from_run(r, store.epochs(r.id), labels=labels) for r in group]


def _plans_like(experiment: Experiment, group: Sequence[Any]) -> list[PlannedRun]:
    """The planned runs matching a stored group's choices (for their labels); [] if none match."""
    first = group[0].config
    inits = {r.config.arch: r.config.init for r in group if r.config.mode != "scratch"}
    picks = [t[2] for r in group if (t := _tag(r)) and t[2].endswith(PICKED)]
    pick = picks[0][len("probe-"):-len(PICKED)] if picks else None
    stored = {t[2]: r.config for r in group if (t := _tag(r))}
    candidates = []
    for size in SIZES:
        try:
            candidates.append(experiment.plan(Choices(size=size, dataset=first.dataset, inits=inits, probe_layer=pick)))
        except (ValueError, ImportError):
            continue
    for plans in candidates:  # the size whose epochs match; else any (labels do not depend on the size)
        if all(stored[p.key].epochs == p.config.epochs for p in plans if p.key in stored):
            return plans
    return candidates[0] if candidates else []


# ---------------------------------------------------------------- tables in the reports' format
def epochs_table(outcomes: Sequence[Outcome]) -> pd.DataFrame:
    """Per-epoch train/val loss and accuracy and time of every run (the reports' table)."""
    rows = []
    for o in outcomes:
        elapsed = 0.0
        for row in o.epochs:
            elapsed += float(row.get("seconds") or 0.0)
            rows.append({"run": o.label, "epoch": row.get("epoch"), "train loss": row.get("train_loss"),
                         "train acc": row.get("train_acc"), "val loss": row.get("val_loss"),
                         "val acc": row.get("val_acc"), "time (s)": round(elapsed, 1)})
    return pd.DataFrame(rows, columns=["run", "epoch", "train loss", "train acc", "val loss", "val acc", "time (s)"])


def results_table(experiment: Experiment, outcomes: Sequence[Outcome]) -> pd.DataFrame:
    """One row per run: status, best val acc (epoch), time, and the published figure beside it."""
    published = {p.run_key: p for p in experiment.published if p.run_key}
    rows = []
    for o in outcomes:
        pub = published.get(o.key) if comparable(experiment, o) else None
        rows.append({
            "run": o.label, "status": o.status,
            "best val acc": o.best_val_acc, "best epoch": o.best_epoch,
            "epochs": f"{len(o.epochs)}/{o.config.epochs}",
            "time": format_duration(o.train_seconds) if o.train_seconds else "",
            "published": pub.shown() if pub else "",
            # text, so a run without a published figure shows a blank rather than "None"
            "difference (points)": _signed(points(o.best_val_acc - pub.value))
            if pub and pub.value is not None and o.best_val_acc is not None else "",
        })
    frame = pd.DataFrame(rows, columns=["run", "status", "best val acc", "best epoch", "epochs", "time", "published",
                                        "difference (points)"])
    frame["best val acc"] = pd.to_numeric(frame["best val acc"], errors="coerce")
    frame["best epoch"] = pd.to_numeric(frame["best epoch"], errors="coerce").astype("Int64")
    return frame


def report_text(outcome: Outcome) -> str:
    """One run printed as the PyTorch transfer-learning tutorial prints it (the reports pasted this)."""
    lines = []
    total = outcome.config.epochs
    for row in outcome.epochs:
        lines += [f"Epoch {int(row['epoch']) - 1}/{total - 1}", "-" * 10]
        for split in ("train", "val"):
            loss, acc = row.get(f"{split}_loss"), row.get(f"{split}_acc")
            if loss is not None and acc is not None:
                lines.append(f"{split} Loss: {loss:.4f} Acc: {acc:.4f}")
        lines.append("")
    seconds = outcome.train_seconds or sum(float(r.get("seconds") or 0) for r in outcome.epochs)
    lines.append(f"Training complete in {int(seconds // 60)}m {int(seconds % 60)}s")
    if outcome.best_val_acc is not None:
        lines.append(f"Best val Acc: {outcome.best_val_acc:.4f}")
    return "\n".join(lines)


def format_duration(seconds: float) -> str:
    """``42 s``, ``3 min 5 s``, ``1 h 12 min``."""
    from cnnviz.recipes import format_seconds

    return format_seconds(seconds)


# ---------------------------------------------------------------- time estimates
# Images per split as the loaders give them: (train, official val/test). Generated ``shapes``
# has 300 + 100 per class; the CIFARs 5,000/500 per class + their test sets.
SPLIT_IMAGES = {"hymenoptera": (245, 153), "cifar10": (50_000, 10_000), "cifar100": (50_000, 10_000),
                "shapes": (3_000, 1_000)}
NUM_CLASSES = {"hymenoptera": 2, "cifar10": 10, "cifar100": 100, "shapes": 10}


def split_sizes(config: TrainConfig) -> tuple[int, int]:
    """(training images, validation images) a config will use, from the dataset's known sizes."""
    train, val = SPLIT_IMAGES.get(config.dataset, (1_000, 250))
    if config.val_split == "random":
        train, val = int(train * 0.8), train - int(train * 0.8)
    classes = NUM_CLASSES.get(config.dataset, 10)
    if config.dataset == "cifar100" and config.labels == "coarse":
        classes = 20
    if config.subset:
        train = min(train, config.subset * classes)
    if getattr(config, "val_subset", None):
        val = min(val, config.val_subset * classes)
    return train, val


@functools.lru_cache(maxsize=256)
def _flops(arch: str, options_json: str, image_size: int | None, num_classes: int) -> int:
    import json

    from cnnviz.inspect import model_cost

    _, flops = model_cost(arch, options=json.loads(options_json), num_classes=num_classes, image_size=image_size)
    return int(flops)


def run_flops(config: TrainConfig) -> int:
    """Forward FLOPs per image of a config's model at its input size."""
    import json

    from cnnviz.models import resolve_options

    options = resolve_options(config.arch, config.options)
    return _flops(config.arch, json.dumps(options, sort_keys=True), config.image_size,
                  NUM_CLASSES.get(config.dataset, 10))


def estimate_run_seconds(config: TrainConfig, *, flops_per_second: float, flops: int | None = None) -> float:
    """Seconds to train ``config`` on this device, from FLOPs x images x epochs and a measured throughput.

    Fine-tune and scratch: forward + backward (3x forward) on every training image plus a
    forward on every validation image, each epoch. Freeze/probe without augmentation: one
    forward over both splits (the features are cached), then a negligible linear head.
    """
    from cnnviz.recipes import estimate_epoch_seconds

    train, val = split_sizes(config)
    flops = flops if flops is not None else run_flops(config)
    if config.mode in ("freeze", "probe") and config.augment == "none":
        if config.mode == "probe" and config.probe_layer == "input":
            return 0.2 * config.epochs  # a single linear layer on pixels
        return flops * (train + val) / flops_per_second
    per_epoch = estimate_epoch_seconds(flops_per_image=flops, train_images=train, val_images=val,
                                       flops_per_second=flops_per_second, mode=config.mode)
    return per_epoch * config.epochs


def estimate_group_seconds(plans: Sequence[PlannedRun], *, flops_per_second: float) -> float:
    """Total seconds for a whole group (runs queue one after another)."""
    return sum(estimate_run_seconds(p.config, flops_per_second=flops_per_second) for p in plans)


def calibrated_flops_per_second(runs: Iterable[Any], epochs_of: Callable[[int], list[dict]], *,
                                limit: int = 12) -> dict[str, float]:
    """Effective FLOP/s of this device's recent finished scratch/fine-tune runs: per architecture, and
    overall under the key ``"*"`` (medians). Empty when there are none.

    Real runs include data handling and small-layer overheads (a 16-channel CIFAR ResNet uses the
    CPU far less efficiently than ResNet-18), so they predict the next run of the same
    architecture better than a synthetic benchmark does.
    """
    rates: dict[str, list[float]] = {}
    counted = 0
    for run in runs:
        if counted >= limit:
            break
        if run.status != "finished" or not run.flops or run.config.mode not in ("scratch", "finetune"):
            continue
        speeds = [r.get("images_per_sec") for r in epochs_of(run.id) if r.get("images_per_sec")]
        if speeds:
            rates.setdefault(run.config.arch, []).append(3.0 * run.flops * statistics.median(speeds))
            counted += 1
    if not rates:
        return {}
    result = {arch: statistics.median(values) for arch, values in rates.items()}
    result["*"] = statistics.median(v for values in rates.values() for v in values)
    return result


@functools.lru_cache(maxsize=1)
def measured_flops_per_second(*, arch: str = "resnet18", image_size: int = 64, batch: int = 16) -> float:
    """FLOP/s of a training step (forward + backward) of ``arch`` on this device, measured once per process.

    Two warm-up steps first (the first calls pick kernels and allocate), then the median of three
    timed steps, so a one-off hiccup does not skew every estimate on the page.
    """
    import time

    import torch

    from cnnviz.device import pick_device
    from cnnviz.inspect import model_cost
    from cnnviz.models import get_model

    device = pick_device("auto")
    _, flops = model_cost(arch, num_classes=10, image_size=image_size)
    model = get_model(arch, num_classes=10).to(device).train()
    images = torch.randn(batch, 3, image_size, image_size, device=device)
    labels = torch.zeros(batch, dtype=torch.long, device=device)
    timings = []
    for step in range(5):
        start = time.perf_counter()
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step >= 2:
            timings.append(time.perf_counter() - start)
    return 3.0 * flops * batch / max(statistics.median(timings), 1e-6)


# ---------------------------------------------------------------- offline substitutes
def init_choices(arch: str, runs: Iterable[Any], *, imagenet_available: bool,
                 options: dict | None = None) -> list[tuple[str, str]]:
    """(init value, label) pairs a card offers for ``arch``'s pretrained runs, best first.

    ImageNet when its weights are there; then finished runs of the same architecture with the
    same options (``options``, default the spec's) that saved a checkpoint — the closest thing
    that runs offline; then random init. A run with other options (a CIFAR stem, say) would
    change the network being compared, so it is not offered.
    """
    from cnnviz.models import resolve_options

    wanted = resolve_options(arch, options or {})
    offered = [(IMAGENET, "ImageNet weights")] if imagenet_available else []
    for run in runs:
        if run.config.arch != arch or run.status not in ("finished", "stopped") or not run.checkpoint:
            continue
        try:
            if resolve_options(arch, run.config.options) != wanted:
                continue
        except ValueError:
            continue
        acc = f", best val {run.best_val_acc:.3f}" if run.best_val_acc is not None else ""
        offered.append((f"run:{run.id}", f"earlier run {run.id}: {run.label} ({run.config.dataset}{acc})"))
    offered.append((SCRATCH, "random init (no pretrained weights)"))
    return offered


def imagenet_weights_available(arch: str) -> bool:
    """Whether ``arch``'s ImageNet weights file is already in the torch cache (no download attempted)."""
    from cnnviz.models import get_spec, hub_checkpoints_dir, weights_file_name

    spec = get_spec(arch)
    return bool(spec.weights) and (hub_checkpoints_dir() / weights_file_name(spec.weights)).is_file()


def weights_file_hint(arch: str) -> str:
    """Which file to place where so ``arch`` can start from ImageNet weights offline."""
    from cnnviz.models import get_spec, hub_checkpoints_dir, weights_file_name

    spec = get_spec(arch)
    if not spec.weights:
        return f"{arch} has no ImageNet weights."
    return f"`{weights_file_name(spec.weights)}` in `{hub_checkpoints_dir()}`"


# ---------------------------------------------------------------- datasets present or not
def _dataset_files(name: str, root: Any) -> list[Any]:
    """The files/folders the data loader would read ``name`` from in ``root`` (any one is enough)."""
    from cnnviz.data import cifar

    if name == "hymenoptera":
        return [root / "hymenoptera_data", root / "hymenoptera_data.zip"]
    if name in ("cifar10", "cifar100"):
        layout = cifar.CIFAR10 if name == "cifar10" else cifar.CIFAR100
        return [root / layout.folder, root / layout.archive, root / name, root / f"{name}.zip"]
    return []


def dataset_problem(name: str, *, root: Any = None) -> str | None:
    """None when ``name`` can load without a download; else what is missing and where to put it.

    Only looks for files: indexing a missing dataset would start a download (169 MB for
    CIFAR-100) just because a page was opened.
    """
    from pathlib import Path

    from cnnviz import paths
    from cnnviz.data import get_dataset_spec

    spec = get_dataset_spec(name)
    if spec.needs_path or name == "shapes":
        return None
    root = Path(root) if root else paths.data_root()
    candidates = _dataset_files(name, root)
    if not candidates or any(p.exists() for p in candidates):
        return None
    return (f"{spec.label} is not in the data folder {root}. A run would try to download it, which fails "
            f"without internet. {spec.how_to_get}")
