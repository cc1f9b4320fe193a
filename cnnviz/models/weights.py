"""Loading weights: torchvision's ImageNet weights through the torch hub cache, local files,
and cnnviz checkpoints, all through one safe path (``torch.load(weights_only=True)``).

Compatibility rule: loading is strict (every key present, every shape equal), with one
exception: options that only ADD squeeze-and-excitation blocks. Their parameters are absent
from the file and stay randomly initialised; everything else loads. Any other difference
(a removed shortcut, a different stem, batch norm the weights never had) fails with a
message listing the differing keys and the options the weights were trained with.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from .blocks import SqueezeExcitation

CHECKPOINT_FORMAT = "cnnviz-checkpoint/1"


class WeightsUnavailable(RuntimeError):
    """Pretrained weights are neither in the torch cache nor downloadable; says where to put the file."""


class WeightsError(ValueError):
    """A weights file that cannot be used: unsafe (pickled code), unreadable, or not fitting the model."""


def hub_checkpoints_dir() -> Path:
    """The folder torchvision's weights API caches files in (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def weights_file_name(weights_name: str) -> str:
    """The file name torchvision downloads ``weights_name`` to, e.g. ``alexnet-owt-7be5be79.pth``."""
    return os.path.basename(urlparse(_weights_enum(weights_name).url).path)


def _weights_enum(weights_name: str):
    from torchvision.models import get_weight

    return get_weight(weights_name)


def imagenet_state_dict(weights_name: str, *, progress: bool = False) -> dict[str, torch.Tensor]:
    """torchvision's state_dict for ``weights_name``: from the hub cache, else downloaded into it.

    Goes through ``WeightsEnum.get_state_dict`` (torch.hub), so a file placed in the cache
    folder by hand is used exactly like one the API downloaded.
    """
    weights = _weights_enum(weights_name)
    folder, name = hub_checkpoints_dir(), weights_file_name(weights_name)
    try:
        return weights.get_state_dict(progress=progress, weights_only=True, map_location="cpu")
    except OSError as exc:  # no network (URLError), a timeout, or a cache folder that cannot be written
        raise WeightsUnavailable(
            f"Pretrained weights {weights_name} are not in the torch cache and could not be downloaded "
            f"({exc.__class__.__name__}: {getattr(exc, 'reason', None) or exc}). Place the file {name} "
            f"(from {weights.url}) in the folder {folder} and try again."
        ) from None
    except Exception as exc:  # a corrupt or pickled file in the cache
        raise WeightsError(f"The cached weights file {folder / name} could not be loaded safely: {_short(exc)}. "
                           f"Delete it and place a fresh copy of {name} there.") from None


def load_weights_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a weights file safely: returns (state_dict, metadata).

    A plain torchvision state_dict gives empty metadata; a cnnviz checkpoint gives its
    payload without the state_dict (arch, options, num_classes, classes, ...).
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # weights_only refuses pickled code: say so plainly
        raise WeightsError(f"{path.name} cannot be loaded safely as weights only (a pickled object, or not a "
                           f"PyTorch file): {_short(exc)}") from None
    if not isinstance(payload, dict):
        raise WeightsError(f"{path.name} holds a {type(payload).__name__}, not a state_dict or cnnviz checkpoint")
    if payload.get("format") == CHECKPOINT_FORMAT:
        state = payload.get("state_dict")
        if not isinstance(state, dict):
            raise WeightsError(f"{path.name} is a cnnviz checkpoint without a state_dict")
        return state, {k: v for k, v in payload.items() if k != "state_dict"}
    if "format" in payload and not isinstance(payload.get("format"), torch.Tensor):
        raise WeightsError(f"{path.name} has unknown format {payload['format']!r} (expected {CHECKPOINT_FORMAT})")
    if not all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise WeightsError(f"{path.name} is neither a state_dict (names -> tensors) nor a cnnviz checkpoint")
    return payload, {}


def load_into(model: nn.Module, state: dict[str, torch.Tensor], *, source: str,
              trained_with: dict[str, Any] | None = None, chosen: dict[str, Any] | None = None) -> None:
    """Load ``state`` into ``model`` (strict except for SE blocks the file lacks), or WeightsError."""
    own = model.state_dict()
    se_prefixes = tuple(f"{name}." for name, m in model.named_modules() if isinstance(m, SqueezeExcitation))
    missing = [k for k in own if k not in state and not k.startswith(se_prefixes)]
    unexpected = [k for k in state if k not in own]
    mismatched = [f"{k} {tuple(state[k].shape)} in the file vs {tuple(own[k].shape)} in the model"
                  for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or mismatched:
        lines = [f"The weights from {source} do not fit this model."]
        for title, keys in (("missing in the file", missing), ("not in the model", unexpected),
                            ("different shapes", mismatched)):
            if keys:
                lines.append(f"{title} ({len(keys)}): {', '.join(keys[:6])}{' ...' if len(keys) > 6 else ''}")
        if trained_with:
            differ = {k: v for k, v in trained_with.items() if chosen is not None and chosen.get(k) != v}
            if differ:
                wanted = ", ".join(f"{k}={v}" for k, v in differ.items())
                lines.append(f"These weights were trained with {wanted}; choose those options to load them.")
        raise WeightsError("\n".join(lines))
    model.load_state_dict(state, strict=False)  # only SE keys can be absent here (checked above)


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0] if text else ''}"[:300]


def weights_location(arch: str, options: dict[str, Any] | None = None) -> Path | None:
    """Where ``arch``'s ImageNet weights file (for ``options``) lives in the torch cache; None without weights."""
    from .registry import get_spec, resolve_options  # the registry is imported after this module

    name, _ = get_spec(arch).weights_for(resolve_options(arch, options or {}))
    return hub_checkpoints_dir() / weights_file_name(name) if name else None


def weights_present(arch: str, options: dict[str, Any] | None = None) -> bool:
    """Whether ``arch``'s ImageNet weights are already in the torch cache (never downloads)."""
    where = weights_location(arch, options)
    return where is not None and where.is_file()
