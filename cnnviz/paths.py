"""Where cnnviz keeps its runs and looks for datasets, and which file an ``init`` string names
(no torch import here)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable


def home() -> Path:
    """The cnnviz home folder (``CNNVIZ_HOME``, default ``./.cnnviz``), created on first use."""
    path = Path(os.environ.get("CNNVIZ_HOME", ".cnnviz")).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_root() -> Path:
    """Where real datasets are looked for (``CNNVIZ_DATA``, default ``<home>/data``).

    A teacher preparing an offline class puts ``hymenoptera_data.zip``,
    ``cifar10.zip`` or torchvision's own CIFAR files here.
    """
    env = os.environ.get("CNNVIZ_DATA")
    path = Path(env).expanduser().resolve() if env else home() / "data"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    """Decoded-dataset and feature caches (safe to delete; rebuilt on demand)."""
    path = home() / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


# Resolvers for ``init="<prefix>:<rest>"`` (``cnnviz.runs`` registers ``run``). The table sits here,
# below every layer that reads it, and imports nothing, so registering one never imports torch.
_INIT_RESOLVERS: dict[str, Callable[[str], "Path | None"]] = {}


def register_init_resolver(prefix: str, resolver: Callable[[str], "Path | None"]) -> None:
    """Let ``init="<prefix>:<rest>"`` name the file ``resolver(rest)`` returns (None: there is none)."""
    _INIT_RESOLVERS[prefix] = resolver


def resolve_init(init: str) -> Path | None:
    """The weights file an ``init`` string names; None for ``none`` and ``imagenet``; ValueError if none."""
    if init in ("none", "imagenet"):
        return None
    prefix, sep, rest = init.partition(":")
    if sep and prefix in _INIT_RESOLVERS:
        path = _INIT_RESOLVERS[prefix](rest)
        if path is None:
            raise ValueError(f"{init} has no checkpoint")
        return Path(path)
    if sep and prefix == "run":
        raise ValueError(f"init={init!r} names a run, but the run store is not loaded (import cnnviz.runs)")
    return Path(init).expanduser()
