"""The architecture registry: one ``ModelSpec`` per architecture.

``register`` adds a spec and refuses duplicates; ``list_models`` / ``get_spec`` /
``get_model`` are the only way in, so pages fill their selectboxes from here and
tests are parametrized over ``list_models()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn


@dataclass(frozen=True)
class Option:
    """One option of an architecture, as a page draws it and the CLI parses it.

    ``kind`` is ``bool``, ``choice`` (one of ``choices``), ``int`` (one of
    ``choices`` when given, else between ``low`` and ``high``) or ``float``.
    ``group`` gathers per-block toggles (``"block 1"``) so a page can lay them
    out together.
    """

    name: str
    kind: str
    default: Any
    label: str = ""
    help: str = ""
    choices: tuple = ()
    low: float | None = None
    high: float | None = None
    group: str | None = None

    def parse(self, value: Any) -> Any:
        """Convert ``value`` (possibly a CLI string) to this option's type, or raise ValueError."""
        if self.kind == "bool":
            if isinstance(value, str):
                low = value.strip().lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError(f"option {self.name} expects true/false, got {value!r}")
            return bool(value)
        if self.kind in ("int", "float"):
            cast = int if self.kind == "int" else float
            try:
                number = cast(value)
            except (TypeError, ValueError):
                raise ValueError(f"option {self.name} expects a number, got {value!r}") from None
            if self.choices and number not in self.choices:
                raise ValueError(f"option {self.name} must be one of {list(self.choices)}, got {number}")
            if self.low is not None and number < self.low or self.high is not None and number > self.high:
                raise ValueError(f"option {self.name} must be between {self.low} and {self.high}, got {number}")
            return number
        if self.kind == "choice":
            if value not in self.choices:
                raise ValueError(f"option {self.name} must be one of {list(self.choices)}, got {value!r}")
            return value
        raise ValueError(f"unknown option kind {self.kind!r}")


@dataclass(frozen=True)
class ModelSpec:
    """Everything the app needs to know about one architecture.

    ``builder(num_classes=..., **options)`` returns a fresh randomly initialised
    model. ``head`` is the dotted path of the final classifier layer (an
    ``nn.Linear``) that ``replace_head`` swaps. ``probe_points`` maps a readable
    name (in network order, shallow to deep) to the dotted path of the module
    whose output a linear probe reads. ``weights`` names a torchvision weights
    enum value (``"ResNet18_Weights.IMAGENET1K_V1"``) or is None when no
    pretrained weights exist; ``weights_options`` are the option values those
    weights were trained with (other values cannot load them). ``family`` names
    the network it descends from (``"alexnet"`` for AlexNet and its hybrids), so
    recipes can follow that paper's training. ``cam_layer`` is the dotted path of
    the module whose output Grad-CAM reads (the last feature map at the last
    convolution's size); it may depend on the options, so read it with
    ``cam_layer_for``. None: no convolution, so no Grad-CAM.
    """

    name: str
    label: str
    builder: Callable[..., nn.Module]
    options: tuple[Option, ...] = ()
    default_size: int = 224
    min_size: int = 32
    head: str = "fc"
    probe_points: dict[str, str] = field(default_factory=dict)
    weights: str | None = None
    weights_options: dict[str, Any] = field(default_factory=dict)
    paper: str = ""
    description: str = ""
    presets: dict[str, Any] = field(default_factory=dict)
    family: str = ""
    cam_layer: str | Callable[[dict[str, Any]], str] | None = None
    # more_weights: further (weights enum name, options they need) pairs, e.g. VGG16's
    # batch-norm weights; weights_for() picks the pair matching the chosen options.
    more_weights: tuple[tuple[str, dict[str, Any]], ...] = ()
    # diagram(options) -> list of cnnviz.models.blocks.Stage, drawn by cnnviz.inspect.block_diagram.
    diagram: Callable[[dict[str, Any]], list] | None = None

    def weights_for(self, options: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
        """The (weights name, options they need) that fit ``options`` best; the default pair otherwise."""
        for weights, needs in self.more_weights:
            if all(options.get(key) == value for key, value in needs.items()):
                return weights, needs
        return self.weights, self.weights_options

    def cam_layer_for(self, options: dict[str, Any]) -> str | None:
        """The dotted path Grad-CAM reads in a model built with ``options`` (None: no convolution)."""
        return self.cam_layer(options) if callable(self.cam_layer) else self.cam_layer

    def option(self, name: str) -> Option:
        for opt in self.options:
            if opt.name == name:
                return opt
        known = ", ".join(o.name for o in self.options) or "none"
        raise ValueError(f"{self.name} has no option {name!r} (options: {known})")

    def defaults(self) -> dict[str, Any]:
        """The full option dict with this spec's defaults and presets applied."""
        values = {opt.name: opt.default for opt in self.options}
        values.update(self.presets)
        return values


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add ``spec`` to the registry; a second spec with the same name is an error."""
    if spec.name in _REGISTRY:
        raise ValueError(f"architecture {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def list_models() -> list[str]:
    """Names of every registered architecture, in registration order."""
    return list(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    """The spec of ``name``, or ValueError naming the known architectures."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; choose one of: {', '.join(_REGISTRY)}") from None


def resolve_options(name: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validate ``options`` for ``name`` and fill in the defaults (ValueError on a bad one)."""
    spec = get_spec(name)
    values = spec.defaults()
    for key, value in (options or {}).items():
        values[key] = spec.option(key).parse(value)
    return values
