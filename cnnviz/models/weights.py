"""Loading weights: torchvision's ImageNet weights through the torch hub cache, and local files
(state_dicts and cnnviz checkpoints) through one safe reader (``torch.load(weights_only=True)``).

The reader lives here, in the lowest layer that loads weights, so that ``get_model(init=...)``
can use it; ``cnnviz.checkpoint`` reads through it and is its public face.

Compatibility rule: loading is strict (every key present, every shape equal), with one
exception: options that only ADD squeeze-and-excitation blocks. Their parameters are absent
from the file and stay randomly initialised; everything else loads. Any other difference
(a removed shortcut, a different stem, batch norm the weights never had) fails with a
message listing the differing keys and the options the weights were trained with.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from .blocks import se_modules

class WeightsUnavailable(RuntimeError):
    """Pretrained weights are neither in the torch cache nor downloadable; says where to put the file."""


# Largest weights file an uploader takes (Streamlit holds uploads in memory): ResNet-18/34/50's ImageNet
# weights are 45-98 MB and CIFAR-sized models a few MB; AlexNet's (233 MB) and VGG's (507-528 MB) files
# go in the torch cache folder (``hub_checkpoints_dir``), where they load offline, not through a browser.
MAX_WEIGHTS_MB = 200


class WeightsError(ValueError):
    """A weights file that cannot be used: unsafe (pickled code), unreadable, or not fitting the model.

    Its message is one line (``load_into``'s list of differing keys excepted).
    """


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


def load_weights_file(path: str | os.PathLike, *, what: str = "weights file"
                      ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a weights file safely: returns (state_dict, metadata); WeightsError in one line otherwise.

    A plain state_dict gives empty metadata; a ``{"state_dict": ...}`` wrapper (a cnnviz checkpoint
    among them) gives its other entries. A ``module.`` prefix (``nn.DataParallel``) is removed.
    This is the one place that unpickles a file a user can supply; ``cnnviz.checkpoint`` reads
    through it. ``what`` names the kind of file in messages.
    """
    path = Path(path).expanduser()
    payload = _read_torch_file(path, what)
    if isinstance(payload, dict) and isinstance(payload.get("state_dict"), dict):
        state, meta = payload["state_dict"], {k: v for k, v in payload.items() if k != "state_dict"}
    elif isinstance(payload, dict) and "state_dict" not in payload:
        state, meta = payload, {}
    else:
        raise WeightsError(f"{path.name} holds {_describe(payload)}, not a state_dict (names -> tensors)")
    if not state or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        if state is payload:
            raise WeightsError(f"{path.name} holds {_describe(state)}, not a state_dict (names -> tensors)")
        raise WeightsError(f"{path.name} has a state_dict holding {_describe(state)}, not names -> tensors")
    return _strip_prefix(state, "module."), meta


def _read_torch_file(path: Path, what: str) -> Any:
    """``torch.load(weights_only=True)`` on the CPU, with every failure said in one line."""
    if not path.is_file():
        raise WeightsError(f"{what} {path.name} not found: it does not exist in {path.parent}")
    if path.stat().st_size == 0:
        raise WeightsError(f"{path.name} is empty (0 bytes): not a {what}")
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols before refusing them
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        code = _PICKLED_CODE.search(text)
        if code:
            # weights_only refused a class or function reference: running it could run any code.
            found = code.group("name") or code.group("blocked")
            raise WeightsError(f"{path.name} contains Python code (pickled objects); refused: only tensors and "
                               f"plain values load safely{f' (it references {found})' if found else ''}") from None
        raise WeightsError(f"{path.name} is not a readable {what}: not a PyTorch file") from None
    except Exception as exc:  # noqa: BLE001 - whatever else torch raises on foreign bytes, in one line
        if _starts_like_zip(path):  # torch's own format, cut short by a failed copy or download
            raise WeightsError(f"{path.name} is not a readable {what}: the file is truncated or damaged") from None
        # Foreign bytes reach torch's legacy reader, which fails in many ways (IndexError, EOFError, ...).
        raise WeightsError(f"{path.name} is not a readable {what}: not a PyTorch file ({_short(exc)})") from None


def _starts_like_zip(path: Path) -> bool:
    """Whether the file begins like the zip archives ``torch.save`` writes."""
    with open(path, "rb") as fh:
        return fh.read(4) == b"PK\x03\x04"


# The wording of torch's weights_only unpickler (torch 2.6 to 2.14) when a file names a global or builds an object.
_PICKLED_CODE = re.compile(r"Unsupported global: GLOBAL (?P<name>\S+)|unsupported GLOBAL (?P<blocked>\S+)"
                           r"|Can only (?:create new object|build)|Trying to call reduce")


def _describe(value: Any) -> str:
    """What a loaded object is, in a few words: ``a list``, ``a dict with keys epoch, model``."""
    if isinstance(value, dict):
        if not value:
            return "an empty dict"
        keys = [str(k) for k in value][:6]
        more = " ..." if len(value) > 6 else ""
        if all(isinstance(v, torch.Tensor) for v in value.values()):
            return f"a dict of {len(value)} tensors"
        return f"a dict with keys {', '.join(keys)}{more}"
    kind = type(value).__name__
    return f"an {kind}" if kind[:1].lower() in "aeiou" else f"a {kind}"


def _strip_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return state


def load_into(model: nn.Module, state: dict[str, torch.Tensor], *, source: str,
              trained_with: dict[str, Any] | None = None, chosen: dict[str, Any] | None = None) -> None:
    """Load ``state`` into ``model`` (strict except for SE blocks the file lacks), or WeightsError."""
    own = model.state_dict()
    se_prefixes = tuple(f"{name}." for name, _ in se_modules(model))
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
