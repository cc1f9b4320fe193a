"""Building models from the registry: initialisation, heads, freezing and probe points."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .registry import ModelSpec, get_spec, resolve_options
from cnnviz.paths import resolve_init

from .weights import WeightsError, imagenet_state_dict, load_into, load_weights_file


def get_model(name: str, *, num_classes: int, options: dict[str, Any] | None = None, init: str = "none") -> nn.Module:
    """Build architecture ``name`` with a ``num_classes``-way head.

    ``init``: ``"none"`` (random), ``"imagenet"`` (torchvision's weights via the torch hub cache;
    WeightsUnavailable when absent and not downloadable), ``"run:<id>"`` (that run's best
    checkpoint, through the resolver ``cnnviz.runs`` registers; see ``resolve_init``) or a path
    to a torchvision state_dict or cnnviz checkpoint. Weights load
    strictly, except that SE blocks the file lacks stay random (see ``cnnviz.models.weights``).
    The loaded head is kept when it already has ``num_classes`` outputs and replaced by a
    fresh one otherwise. A cnnviz checkpoint supplies its own options when ``options`` is None.
    The model carries ``cnnviz_arch`` and ``cnnviz_options``.
    """
    spec = get_spec(name)
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    if init == "none":
        resolved = resolve_options(name, options)
        return _tag(spec.builder(num_classes=num_classes, **resolved), spec, resolved)
    if init == "imagenet":
        resolved = resolve_options(name, options)
        weights, trained_with = spec.weights_for(resolved)
        if weights is None:
            raise WeightsError(f"{name} has no pretrained ImageNet weights; use init='none'")
        state, source = imagenet_state_dict(weights), weights
    else:
        try:
            path = resolve_init(init)
        except WeightsError:
            raise
        except ValueError as exc:  # a resolver's message, e.g. "run:8 has no checkpoint"
            raise WeightsError(str(exc)) from None
        state, meta = load_weights_file(path)
        if meta.get("arch") not in (None, name):
            raise WeightsError(f"{path.name} is a checkpoint of {_named(meta['arch'])}, not of the {spec.label} ({name})")
        if options is None and isinstance(meta.get("options"), dict):
            options = meta["options"]
        resolved = resolve_options(name, options)
        trained_with, source = meta.get("options") or spec.weights_for(resolved)[1], path.name
    head_key = f"{spec.head}.weight"
    if head_key not in state or state[head_key].dim() != 2:
        raise WeightsError(f"the weights from {source} have no {head_key} (the classifier of {name})")
    model = _tag(spec.builder(num_classes=state[head_key].shape[0], **resolved), spec, resolved)
    load_into(model, state, source=source, trained_with=trained_with, chosen=resolved)
    if head_module(model).out_features != num_classes:
        replace_head(model, num_classes)
    return model


def _named(arch: Any) -> str:
    """An architecture's name with its display name (the name alone when it is not registered)."""
    try:
        return f"{arch}, the {get_spec(arch).label}"
    except (ValueError, TypeError):
        return str(arch)


def _tag(model: nn.Module, spec: ModelSpec, options: dict[str, Any]) -> nn.Module:
    model.cnnviz_arch = spec.name
    model.cnnviz_options = dict(options)
    return model


def _spec_of(model: nn.Module) -> ModelSpec:
    arch = getattr(model, "cnnviz_arch", None)
    if arch is None:
        raise ValueError("this model was not built by cnnviz.models.get_model (no cnnviz_arch attribute)")
    return get_spec(arch)


def head_module(model: nn.Module) -> nn.Linear:
    """The final classifier layer (``spec.head``)."""
    spec = _spec_of(model)
    head = model.get_submodule(spec.head)
    if not isinstance(head, nn.Linear):
        raise TypeError(f"{spec.name}: {spec.head} is a {type(head).__name__}, expected nn.Linear")
    return head


def replace_head(model: nn.Module, num_classes: int) -> nn.Module:
    """Swap the final layer for a fresh ``num_classes``-way ``nn.Linear`` (same device and dtype)."""
    spec = _spec_of(model)
    old = head_module(model)
    new = nn.Linear(old.in_features, num_classes, device=old.weight.device, dtype=old.weight.dtype)
    parent_name, _, attr = spec.head.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, new)
    return model


def freeze_backbone(model: nn.Module) -> nn.Module:
    """Turn off gradients everywhere except the head (the "freeze" fine-tuning phase).

    Batch-norm running statistics still update in train mode; put the model in eval mode
    to freeze them too.
    """
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for parameter in head_module(model).parameters():
        parameter.requires_grad_(True)
    return model


def probe_module(model: nn.Module, point: str) -> nn.Module:
    """The module whose output is the probe point ``point`` (ValueError listing the valid points)."""
    spec = _spec_of(model)
    if point not in spec.probe_points:
        known = ", ".join(spec.probe_points) or "none"
        raise ValueError(f"{spec.name} has no probe point {point!r} (probe points: {known})")
    return model.get_submodule(spec.probe_points[point])


def count_params(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters (optionally only those that train)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def meta_model(name: str, *, num_classes: int = 1000, options: dict[str, Any] | None = None) -> nn.Module:
    """The model on PyTorch's meta device: shapes only, no memory, built in milliseconds."""
    with torch.device("meta"):
        return get_model(name, num_classes=num_classes, options=options)
