"""Where cnnviz keeps its runs and looks for datasets (no torch import here)."""

from __future__ import annotations

import os
from pathlib import Path


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
