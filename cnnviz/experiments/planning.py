"""What the planners share, and what a card can offer on this machine: the dataset or a stand-in,
ImageNet weights or an earlier run's, and the warnings when a stand-in changes the comparison."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

from cnnviz import paths
from cnnviz.data import get_dataset_spec
from cnnviz.data.sources import dataset_present
from cnnviz.experiments.spec import IMAGENET, SCRATCH, Choices, PlannedRun
from cnnviz.models import resolve_options
from cnnviz.models.weights import weights_location, weights_present
from cnnviz.training.config import FROZEN_MODES, TrainConfig


def dataset_for(choices: Choices, default: str) -> str:
    """The dataset the runs use: the student's stand-in, else the experiment's own."""
    return choices.dataset or default


def on_fallback(choices: Choices, default: str) -> bool:
    """Whether the runs use a stand-in for the experiment's dataset."""
    return bool(choices.dataset) and choices.dataset != default


def pretrained_init(choices: Choices, arch: str, options: dict) -> tuple[str, dict]:
    """Initialisation and options for a run that wants ``arch``'s ImageNet weights."""
    init = choices.init_for(arch)
    if init.startswith("run:") and arch in choices.init_options:
        # An earlier run's weights only load into a model with that run's options.
        options = {**options, **choices.init_options[arch]}
    return init, options


def init_note(init: str) -> str:
    """How a label says where a run's weights start from."""
    if init == IMAGENET:
        return "ImageNet weights"
    if init == SCRATCH:
        return "no pretrained weights: random init"
    if init.startswith("run:"):
        return f"weights of run {init[4:]}"
    return f"weights from {init}"


def config(**values: Any) -> TrainConfig:
    """A run's config; seed 0 unless given, so a class's groups are comparable; test as many per class as validation."""
    values.setdefault("seed", 0)
    values.setdefault("test_subset", values.get("val_subset"))
    # A frozen or probed network on random weights is allowed here on purpose: an experiment offers
    # it only as a labelled stand-in ("random init") or as the baseline it compares against.
    if values.get("mode") in FROZEN_MODES and values.get("init", "none") == SCRATCH:
        values.setdefault("allow_random_backbone", True)
    return TrainConfig(**values)


def init_choices(arch: str, runs: Iterable[Any], *, imagenet_available: bool,
                 options: dict | None = None) -> list[tuple[str, str]]:
    """(init value, label) pairs a card offers for ``arch``'s pretrained runs, best first.

    ImageNet when its weights are there; then finished runs of the same architecture with the
    same options (``options``, default the spec's) that saved a checkpoint — the closest thing
    that runs offline; then random init. A run with other options (a CIFAR stem, say) would
    change the network being compared, so it is not offered.
    """
    wanted = resolve_options(arch, options or {})
    offered = [(IMAGENET, "ImageNet weights")] if imagenet_available else []
    # Best validation accuracy first: the default stand-in is the best earlier run, not the newest.
    runs = sorted(runs, key=lambda r: (r.best_val_acc is not None, r.best_val_acc or 0.0, r.id), reverse=True)
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
    return weights_present(arch)


def weights_file_hint(arch: str) -> str:
    """Which file to place where so ``arch`` can start from ImageNet weights offline."""
    where = weights_location(arch)
    if where is None:
        return f"{arch} has no ImageNet weights."
    return f"`{where.name}` in `{where.parent}`"


def dataset_problem(name: str, *, root: Any = None) -> str | None:
    """None when ``name`` can load without a download; else what is missing and where to put it.

    Only looks for files: indexing a missing dataset would start a download (169 MB for
    CIFAR-100) just because a page was opened.
    """
    spec = get_dataset_spec(name)
    root = Path(root) if root else paths.data_root()
    if spec.needs_path or dataset_present(name, root):
        return None
    return (f"{spec.label} is not in the data folder {root}. A run would try to download it, which fails "
            f"without internet. {spec.how_to_get}")


def same_start_warning(plans: Sequence[PlannedRun]) -> str | None:
    """A warning when a run meant to start from pretrained weights now starts from random ones, like
    the group's from-scratch run of the same architecture: the pair would compare one thing twice."""
    scratch = {p.config.arch: p for p in plans if p.config.mode == "scratch"}
    for plan in plans:
        first = scratch.get(plan.config.arch)
        if first and plan is not first and plan.config.init == SCRATCH:
            return (f"'{first.label}' and '{plan.label.split(' (')[0]}' would both start from random weights, "
                    f"so the comparison is between two copies of the same thing. Train a {plan.config.arch} run "
                    "first (Train page) and pick it above.")
    return None
