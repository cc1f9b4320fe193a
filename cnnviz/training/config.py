"""``TrainConfig``: everything that defines a run, stored with it as JSON; the one schema.

Each field carries, as dataclass metadata, its help text, its choices or bounds, its
command-line flag and the Train page section it sits in (see ``knob``). The command
line's ``train`` flags and the Train page's widget table are generated from that
metadata, and ``validate`` checks a config against it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import typing
from dataclasses import dataclass, field
from typing import Any

MODES = ("scratch", "finetune", "freeze", "probe")
FROZEN_MODES = ("freeze", "probe")  # the body keeps its weights; only a head trains
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("none", "step", "plateau", "cosine", "onecycle", "linear")
LOSSES = ("ce", "bce")
AUGMENTS = ("none", "standard", "cifar", "translate", "alexnet")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
LABEL_SETS = ("fine", "coarse")
VAL_SPLITS = ("official", "random")
VAL_CARVES = ("capped", "share")
SECTIONS = ("data", "model", "mode", "optimisation", "advanced", "run")
UI_KINDS = ("number", "select", "toggle", "text", "special", None)


class ConfigError(ValueError):
    """Every problem of a config, in one message (``problems`` keeps them apart)."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


def knob(default: Any = None, *, help: str, choices: tuple | None = None, low: float | None = None,
         high: float | None = None, open_low: bool = False, section: str = "advanced", ui: str | None = "number",
         flag: str | None = None, key: str | None = None, factory=None) -> Any:
    """A ``TrainConfig`` field with its schema as metadata.

    ``low``/``high`` are inclusive bounds (``open_low``: the value must exceed ``low``);
    ``flag`` is the command-line flag when it is not ``--field-name`` (``""``: no flag);
    ``ui`` the kind of widget on the Train page (None: no widget; ``special``: the page
    builds that one by hand); ``key`` its session-state key after ``train_`` when it is
    not the field name.
    """
    if section not in SECTIONS or ui not in UI_KINDS:
        raise ValueError(f"unknown section {section!r} or widget kind {ui!r}")
    meta = {"help": help, "choices": choices, "low": low, "high": high, "open_low": open_low, "section": section,
            "ui": ui, "flag": flag, "key": key}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Defaults suit a one-minute ``shapes`` run on a CPU.

    ``init`` is ``none`` (random), ``imagenet`` (torchvision weights),
    ``run:<id>`` (an earlier run's best checkpoint) or a path to a weights file
    (a torchvision state_dict or a cnnviz checkpoint).
    """

    # alexnet_cifar: the course's network, shaped for small inputs, so the default run takes a minute on a CPU
    arch: str = knob("alexnet_cifar", help="architecture name (see the Architectures page)", section="model",
                     ui="special", key="model")
    # missing keys take the spec defaults; the CLI's --option and the page's option picker fill it
    options: dict[str, Any] = knob(factory=dict, help="architecture options", section="model", ui="special", flag="")
    # shapes is generated, so the default run works offline
    dataset: str = knob("shapes", help="dataset name", section="data", ui="special")
    data_root: str | None = knob(None, help="folder with the real datasets (default: CNNVIZ_DATA or <home>/data)",
                                 section="data", ui=None)
    data_path: str | None = knob(None, help="the folder or .zip of class folders for --dataset folder",
                                 section="data", ui="special")
    labels: str = knob("fine", help="cifar100 label set: fine (100) or coarse (20 superclasses)",
                       choices=LABEL_SETS, section="data", ui="special")
    mode: str = knob("scratch", help="scratch, finetune (new head, all trains), freeze (only the head trains), "
                                     "probe (softmax regression on features)", choices=MODES, section="mode",
                     ui="special")
    probe_layer: str | None = knob(None, help="probe mode: a probe point of the architecture, or 'input'",
                                   section="mode", ui="special")
    init: str = knob("none", help="none | imagenet | run:ID | a weights file (default none)", section="mode",
                     ui="special")
    # freeze/probe on random weights trains a head on random features: refused unless asked for (the
    # degradation and probe baselines ask for it on purpose)
    allow_random_backbone: bool = knob(False, help="allow freeze/probe on a randomly initialised backbone "
                                                   "(a baseline: only the head learns, on random features)",
                                       section="mode", ui=None)
    # enough to see a learning curve in minutes; the course runs used 10-25
    epochs: int = knob(3, help="passes over the training images", low=1, section="optimisation")
    batch_size: int = knob(64, help="images per optimiser step", low=1, section="optimisation", ui="select")
    lr: float = knob(0.01, help="learning rate, per batch of batch_size; SGD default for small CNNs from scratch",
                     low=0, open_low=True, section="optimisation", ui="select")
    optimizer: str = knob("sgd", help="optimiser", choices=OPTIMIZERS, section="optimisation", ui="select")
    momentum: float = knob(0.9, help="SGD momentum (AlexNet paper: 0.9)", low=0, high=0.999, section="advanced")
    # airbench's optimiser (Jordan 2024); Sutskever et al. 2013
    nesterov: bool = knob(False, help="Nesterov momentum (SGD with momentum only)", section="advanced", ui="toggle")
    weight_decay: float = knob(5e-4, help="L2 weight decay (AlexNet paper: 5e-4)", low=0, high=0.1,
                               section="advanced")
    scheduler: str = knob("none", help="learning-rate schedule; plateau divides it by 10 when validation stalls; "
                                       "onecycle: cosine up to lr and down (Smith 2018); linear: straight up from "
                                       "0.2 lr to lr over 23 percent of the steps, then down to 0.07 lr (airbench)",
                          choices=SCHEDULERS, section="optimisation", ui="select")
    # the PyTorch transfer-learning tutorial's choice
    step_size: int = knob(7, help="step scheduler: epochs between lr/10", low=1, section="advanced")
    label_smoothing: float = knob(0.0, help="cross-entropy label smoothing", low=0, high=0.5, section="advanced")
    loss: str = knob("ce", help="ce: cross-entropy; bce: BCE-with-logits on a single logit (two classes only)",
                     choices=LOSSES, section="advanced", ui="select")
    augment: str = knob("none", help="standard: random crop + flip; cifar: pad 4 px, crop + flip; translate: "
                                     "pad 2 px by reflection, crop + flip (airbench); alexnet: crops, flips and "
                                     "PCA colour noise", choices=AUGMENTS, section="optimisation",
                        ui="select")
    # None: the architecture's default size (capped by the dataset's native size where sensible)
    image_size: int | None = knob(None, help="input side in pixels (0: the architecture's default)", low=1,
                                  high=1024, section="data")
    subset: int | None = knob(None, help="training images per class (0: all)", low=1, section="data")
    # quick class sessions and tests: validating on all of CIFAR's 10,000 test images costs more than training
    val_subset: int | None = knob(None, help="validation images per class (0: all); where validation is carved from "
                                                 "the training images, only these are held out", low=1,
                                  section="advanced")
    # the test set reports one number at the end; quick runs need not pay for all 10,000 CIFAR test images
    test_subset: int | None = knob(None, help="test images per class, evaluated once at the end on the best-validation "
                                              "weights (0: all)", low=1, section="advanced")
    # validation chooses the best epoch, so it must never be the test set (CIFAR's only held-out split)
    val_split: str = knob("official", help="official: the dataset's own val split where it has one (hymenoptera, "
                                           "shapes, a folder's val/), else carved from the training images (CIFAR: "
                                           "10 percent, or val_subset per class); random: always carved from the training images (seeded, "
                                           "stratified), the own val split becoming the test set. The test set is "
                                           "never used to choose the best epoch", choices=VAL_SPLITS,
                          section="advanced", ui="select")
    # How carved validation treats val_subset. Runs stored before "capped" existed carry "share" (from_dict),
    # so reloading one gives back the very pictures it validated on.
    val_carve: str = knob("capped", help="capped: carved validation holds out only the val_subset pictures it "
                                         "validates on, the rest train; share: it holds out the dataset's whole "
                                         "share and validates on val_subset of them", choices=VAL_CARVES,
                          section="advanced", ui=None)
    seed: int = knob(0, help="random seed of initialisation, splits, order and augmentation", low=0,
                     section="advanced")
    device: str = knob("auto", help="auto | cpu | cuda | mps (default auto)", section="run", ui=None)
    # the degradation experiment compares gradient norms of plain and residual networks layer by layer
    track_grad_norms: bool = knob(False, help="record per-layer gradient norms each epoch", section="advanced",
                                  ui="toggle", key="grad_norms")
    # auto: mixed precision on a GPU (bf16, or fp16 with loss scaling); fp32 on a CPU unless it has AMX,
    # because bf16 autocast measured slower on AVX512-BF16 CPUs without AMX (benchmarks/README.md).
    precision: str = knob("auto", help="auto: mixed precision where it is faster (default)", choices=PRECISIONS,
                          section="advanced", ui="select")
    # airbench's evaluation (Jordan 2024): a picture and its mirror image are the same class
    tta_flip: bool = knob(False, help="evaluate each picture and its mirror image and average the logits",
                          section="advanced", ui="toggle")
    # airbench's level-2 evaluation: a picture moved by a pixel is the same class too
    tta_shift: bool = knob(False, help="also evaluate each picture shifted one pixel up-left and one down-right "
                                       "(mirrored too with tta_flip); the original counts half",
                           section="advanced", ui="toggle")
    # Polyak averaging (airbench's lookahead, below, is its cousin that feeds back into training). Per batch: 0.98 averages the last ~50 batches
    ema_decay: float = knob(0.0, help="validate an exponential moving average of the weights with this decay "
                                      "per batch (0: off)", low=0, high=0.9999, section="advanced")
    # airbench: a picture seen the same way twice in a row teaches less than its mirror image
    alternate_flip: bool = knob(False, help="mirror each training picture every other epoch (chosen at random in "
                                            "the first) instead of at random each time (airbench's alternating "
                                            "flip); for augmentations that flip", section="advanced", ui="toggle")
    # airbench's other average: unlike the EMA it feeds back into training
    lookahead: bool = knob(False, help="every 5 batches move the weights to a slow average of them, the average "
                                       "pulling harder towards the end of the run (airbench's lookahead)",
                           section="advanced", ui="toggle")
    name: str = knob("", help="a name for the run", section="run", ui="text")

    def __post_init__(self):
        object.__setattr__(self, "options", dict(self.options))
        problems = validate(self)
        if problems:
            raise ConfigError(problems)

    def replace(self, **changes) -> "TrainConfig":
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """Build from a dict, ignoring keys this version does not know (older/newer run cards)."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values.setdefault("val_carve", "share")  # stored before capped carving: the whole share was held out
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> "TrainConfig":
        return cls.from_dict(json.loads(text))

    def describe(self) -> str:
        """A one-line human summary, e.g. ``resnet18 finetune on hymenoptera, 3 ep, lr 0.001``."""
        opts = ",".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        arch = f"{self.arch}[{opts}]" if opts else self.arch
        probe = f"@{self.probe_layer}" if self.mode == "probe" else ""
        return f"{arch} {self.mode}{probe} on {self.dataset}, {self.epochs} ep, lr {self.lr:g}"


def knobs() -> tuple[dataclasses.Field, ...]:
    """``TrainConfig``'s fields, each with its schema in ``.metadata``."""
    return dataclasses.fields(TrainConfig)


@functools.cache
def _hints() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


def value_type(f: dataclasses.Field) -> tuple[type, bool]:
    """(the field's base type, whether None is allowed), e.g. ``(int, True)`` for ``int | None``."""
    hint = _hints()[f.name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    optional = type(None) in typing.get_args(hint)
    base = args[0] if optional and len(args) == 1 else hint
    return typing.get_origin(base) or base, optional


def _problem(f: dataclasses.Field, value: Any) -> str | None:
    """What is wrong with one field's value according to its metadata, or None."""
    meta = f.metadata
    base, optional = value_type(f)
    if value is None:
        return None if optional else f"{f.name} must be given"
    if base in (int, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
        return f"{f.name} must be a number; got {value!r}"
    if base is int and isinstance(value, float) and not value.is_integer():
        return f"{f.name} must be a whole number; got {value!r}"
    if meta["choices"] and value not in meta["choices"]:
        return f"{f.name} must be one of {', '.join(meta['choices'])}; got {value!r}"
    low, high = meta["low"], meta["high"]
    if low is not None and (value <= low if meta["open_low"] else value < low):
        words = "a positive number" if meta["open_low"] and low == 0 else f"at least {low:g}"
        return f"{f.name} must be {words}; got {value}"
    if high is not None and value > high:
        return f"{f.name} must be at most {high:g}; got {value}"
    return None


def validate(config: TrainConfig) -> list[str]:
    """Every problem the schema alone can see (choices, bounds, fields that need each other); [] when none.

    Checks that need the registries (architecture, options, probe points, input size)
    are ``cnnviz.training.checks.validate_config``.
    """
    problems = [p for f in knobs() if (p := _problem(f, getattr(config, f.name))) is not None]
    if config.mode == "probe" and not config.probe_layer:
        problems.append("probe mode needs probe_layer (a probe point of the architecture, or 'input')")
    if config.nesterov and not nesterov_applies(config.optimizer, config.momentum):
        problems.append("nesterov needs the sgd optimizer with momentum above 0")
    return problems


def nesterov_applies(optimizer: str, momentum: float) -> bool:
    """Whether Nesterov momentum means anything for these settings: SGD with momentum above 0."""
    return optimizer == "sgd" and momentum > 0


def evaluation_views(tta_flip: bool, tta_shift: bool, *, mode: str = "scratch") -> int:
    """Forward passes per picture an evaluation makes (``training.parts.evaluation_logits``): 1, 2, 3 or 6.

    Freeze and probe runs evaluate a frozen body's features, which are no pictures to mirror or shift: 1.
    """
    if mode in FROZEN_MODES:
        return 1
    return (2 if tta_flip else 1) * (3 if tta_shift else 1)
