"""3. Linear probes: softmax regression on ResNet-18's features at every depth, and on raw pixels."""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from cnnviz.experiments.conclude import signed, points
from cnnviz.experiments.planning import config, dataset_for, init_note, pretrained_init
from cnnviz.experiments.spec import SCRATCH, Choices, Experiment, Outcome, PlannedRun
from cnnviz.models import get_spec

PROBE_ARCH = "resnet18"
PICKED = "-picked"  # marks the student's intermediate layer in its run key


def probe_points(arch: str = PROBE_ARCH) -> list[str]:
    """The probe points of ``arch`` shallow to deep (from the model registry)."""
    return list(get_spec(arch).probe_points)


def intermediate_points(arch: str = PROBE_ARCH) -> list[str]:
    """Probe points a student can pick as 'the intermediate layer' (all but the last)."""
    return probe_points(arch)[:-1]


def default_probe_pick(arch: str = PROBE_ARCH) -> str:
    """The intermediate layer probed unless the student picks another: the middle one."""
    middle = intermediate_points(arch)
    return middle[len(middle) // 2]


def plan(choices: Choices) -> list[PlannedRun]:
    """A probe on raw pixels, then one at every probe point (the pick and the last conv layer marked)."""
    dataset = dataset_for(choices, "cifar10")
    layers = probe_points()
    last = layers[-1]
    middle = choices.probe_layer or default_probe_pick()
    if middle not in intermediate_points():
        raise ValueError(f"{middle!r} is not an intermediate probe point of {PROBE_ARCH} "
                         f"(choose one of {', '.join(intermediate_points())})")
    if choices.size == "full":
        common = dict(epochs=30, batch_size=256, lr=0.01, weight_decay=0.0, image_size=224)
    else:
        common = dict(epochs=15, batch_size=128, lr=0.01, weight_decay=0.0, image_size=64, subset=100, val_subset=50)
    init, options = pretrained_init(choices, PROBE_ARCH, {})
    note = init_note(init)
    name = get_spec(PROBE_ARCH).label.split(" (")[0]
    runs = [PlannedRun("input", "raw pixels (softmax regression)",
                       config(arch=PROBE_ARCH, options=options, dataset=dataset, mode="probe", probe_layer="input",
                              init=init, **common))]
    for point in layers:  # every depth, so the accuracy-by-depth curve has all its points
        role = "last conv layer" if point == last else ("intermediate layer (your pick)" if point == middle else "")
        label = f"{name} {point}" + (f", {role}" if role else "") + f" ({note})"
        key = f"probe-{point}" + (PICKED if point == middle else "")
        runs.append(PlannedRun(key, label, config(arch=PROBE_ARCH, options=options, dataset=dataset, mode="probe",
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


def trend(values: list[float]) -> str:
    """How accuracy moves with depth, in words."""
    if len(values) < 2:
        return "has a single point"
    ups = sum(b > a for a, b in zip(values, values[1:]))
    if ups == len(values) - 1:
        return "rose at every step deeper"
    if ups == 0:
        return "fell at every step deeper"
    peak = values.index(max(values))
    return f"peaked at depth {peak + 1} of {len(values)} and did not rise steadily"


def depth_lines(outcomes: list[Outcome]) -> list[str]:
    """The last conv layer against raw pixels, the best layer, the trend over depth, and where features came from."""
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
                         f"{signed(diff)} points against raw pixels ({raw.iloc[0]['accuracy']:.3f}).")
        lines.append(f"Best layer: {best['layer']} ({best['accuracy']:.3f}); across depth the accuracy "
                     f"{trend(deep['accuracy'].tolist())}.")
    init = outcomes[0].config.init
    if init == SCRATCH:
        lines.append("These are random (untrained) features: any gain over raw pixels comes from the architecture "
                     "alone (random convolutions + pooling), not from learning.")
    elif init.startswith("run:"):
        lines.append(f"Features come from run {init[4:]}, not ImageNet: they reflect what that run learned.")
    return lines


EXPERIMENT = Experiment(
    key="exp3", number=3, title="Linear probes: what do ResNet-18's layers know?", short_title="Linear probes",
    question="If you freeze ResNet-18 and fit only softmax regression on one layer's features, how good is "
             "each layer — and how good are the raw pixels?",
    expectation="Accuracy rises with depth: the last conv layer best, an intermediate layer in between, raw "
                "pixels worst (softmax regression on raw CIFAR-10 pixels is typically around 0.4).",
    why="Each stage recombines the previous one's features into more abstract, more linearly separable ones; "
        "a linear probe measures exactly that separability. Pixels are not linearly separable by class.",
    dataset="cifar10", planner=plan, custom=depth_lines, sections=("custom",),
    pretrained_archs=(PROBE_ARCH,), chart="probe_depth", probe_arch=PROBE_ARCH,
    settings={"quick": "64 px, 100 images per class (50 for validation), 15 probe epochs on cached features",
              "full": "224 px, all images, 30 probe epochs"},
)
