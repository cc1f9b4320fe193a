"""``validate_config``: what is wrong with a config that only the registries can tell.

``cnnviz.training.config.validate`` checks the schema alone (choices, bounds); this
module adds the architecture and dataset registries: the architecture and its options
exist, the probe point is one of the architecture's, the input is big enough, the label
set and the loss fit the dataset, a frozen backbone is not a random one unless asked for,
and a scratch run names no starting weights (it would never read them).
The command line and the Train page call it before a run is stored; ``config_notes`` says
what a valid config does that a student may not expect (fine-tuning random weights).
``init_problem`` reads the weights a config starts from (a file or ``run:ID``) and says when
they do not load into its network; ``train``, ``submit`` and the Train page ask it before a run
is stored, so a wrong file is refused in one line instead of failing later in a worker.
"""

from __future__ import annotations

from cnnviz.data import DatasetError, get_dataset_spec
from cnnviz.inspect import check_input_size
from cnnviz.models import WeightsError, get_model, get_spec, hub_checkpoints_dir, resolve_options, weights_file_name
from cnnviz.training.config import ConfigError, TrainConfig, validate
from cnnviz.training.messages import one_line
from cnnviz.training.modes import INPUT


def config_problems(config: TrainConfig) -> list[str]:
    """Every problem of ``config``, schema and registries together; [] when it can run."""
    problems = validate(config)
    problems += _model_problems(config)
    problems += _dataset_problems(config)
    problems += _backbone_problems(config)
    problems += _init_problems(config)
    return problems


def config_notes(config: TrainConfig) -> list[str]:
    """What a valid ``config`` will do that its mode's name does not say; [] when nothing."""
    if config.mode == "finetune" and config.init == "none":
        return ["fine-tuning from random weights (init none) trains from scratch: nothing is pretrained"]
    return []


def random_backbone(config: TrainConfig) -> bool:
    """Whether ``config`` freezes (or probes) a network that was never trained."""
    uses_backbone = config.mode == "freeze" or (config.mode == "probe" and config.probe_layer != INPUT)
    return uses_backbone and config.init == "none"


def init_problem(config: TrainConfig) -> str | None:
    """Why the weights ``config.init`` names (a file or ``run:ID``) do not load into its network; None when they do.

    ``none`` and ``imagenet`` are not read here: ImageNet weights are checked where they are fetched.
    """
    if config.init in ("none", "imagenet") or config.mode == "scratch":
        return None
    try:
        # Any class count tells: a head of another size is replaced after the weights have loaded.
        get_model(config.arch, num_classes=2, options=config.options, init=config.init)
    except WeightsError as exc:
        return one_line(exc)
    return None


def _init_problems(config: TrainConfig) -> list[str]:
    # A scratch run never reads its init: stored, it would claim weights the run never had.
    if config.mode == "scratch" and config.init != "none":
        return [f"init is only used by finetune/freeze/probe: scratch trains from random weights "
                f"(got init {config.init}); drop --init or choose --mode finetune"]
    return []


def _backbone_problems(config: TrainConfig) -> list[str]:
    if not random_backbone(config) or config.allow_random_backbone:
        return []
    return [random_backbone_problem(config.arch, config.options, mode=config.mode)
            + "; allow_random_backbone runs it anyway, as a baseline"]


def random_backbone_problem(arch: str, options: dict, *, mode: str = "freeze") -> str:
    """Why freezing (or probing) a random ``arch`` is refused, and the three ways out."""
    what = "freezing" if mode == "freeze" else "probing"
    return (f"{what} a randomly initialised network trains only its last layer on random features; "
            f"{_weights_advice(arch, options)}, start from an earlier run (init run:ID), "
            "or train from scratch (mode scratch)")


def _weights_advice(arch: str, options: dict) -> str:
    """Where the ImageNet weights of ``arch`` go (or that it has none)."""
    try:
        name, _ = get_spec(arch).weights_for(resolve_options(arch, options))
    except ValueError:
        name = None
    if not name:
        return f"{arch} has no ImageNet weights: use a weights file (init PATH)"
    return (f"use ImageNet weights (init imagenet: place {weights_file_name(name)} in {hub_checkpoints_dir()} "
            "or upload it as a weights file)")


def validate_config(config: TrainConfig) -> None:
    """Raise ``ConfigError`` naming every problem of ``config`` (see ``config_problems``)."""
    problems = config_problems(config)
    if problems:
        raise ConfigError(problems)


def _model_problems(config: TrainConfig) -> list[str]:
    try:
        spec = get_spec(config.arch)
        options = resolve_options(config.arch, config.options)
    except ValueError as exc:  # unknown architecture or option: nothing else about the model can be checked
        return [str(exc)]
    problems = []
    if config.mode == "probe" and config.probe_layer and config.probe_layer != INPUT \
            and config.probe_layer not in spec.probe_points:
        problems.append(f"{config.arch} has no probe point {config.probe_layer!r} "
                        f"(probe points: {', '.join(spec.probe_points) or 'none'}, or {INPUT})")
    if config.image_size is not None:
        try:
            check_input_size(config.arch, config.image_size, options=options)
        except ValueError as exc:
            problems.append(str(exc))
    return problems


def _dataset_problems(config: TrainConfig) -> list[str]:
    try:
        spec = get_dataset_spec(config.dataset)
    except DatasetError as exc:
        return [str(exc)]
    problems = []
    if config.labels not in spec.label_sets:
        problems.append(f"{config.dataset} has the label sets {', '.join(spec.label_sets)}; got {config.labels!r}")
    if spec.needs_path and not config.data_path:
        problems.append(f"dataset {config.dataset} needs data_path (a folder or .zip of class folders)")
    if config.loss == "bce" and spec.num_classes not in (None, 2):
        problems.append(f"loss bce needs two classes; {config.dataset} has {spec.num_classes}")
    return problems
