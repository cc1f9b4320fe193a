"""``validate_config``: what is wrong with a config that only the registries can tell.

``cnnviz.training.config.validate`` checks the schema alone (choices, bounds); this
module adds the architecture and dataset registries: the architecture and its options
exist, the probe point is one of the architecture's, the input is big enough, the label
set and the loss fit the dataset. The command line, the Train page and job submission
call it before a run is stored.
"""

from __future__ import annotations

from cnnviz.data import DatasetError, get_dataset_spec
from cnnviz.inspect import check_input_size
from cnnviz.models import get_spec, resolve_options
from cnnviz.training.config import ConfigError, TrainConfig, validate
from cnnviz.training.modes import INPUT


def config_problems(config: TrainConfig) -> list[str]:
    """Every problem of ``config``, schema and registries together; [] when it can run."""
    problems = validate(config)
    problems += _model_problems(config)
    problems += _dataset_problems(config)
    return problems


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
