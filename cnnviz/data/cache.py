"""Decoded-image caches: a small in-memory LRU and tensor files under ``cnnviz.paths.cache_dir()``.

A key is a digest of everything that changes the pixels (the source's path,
modification time and size, the split, the selection, the image size and a
format version), so a changed file is decoded again and a stale cache is never
read. Files are written atomically (temp file + replace) and read with
``torch.load(weights_only=True)``: a cache file can never run code.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from cnnviz import paths

FORMAT = 1  # bump when the decoding changes, so old caches are ignored
MEMORY_BUDGET = int(os.environ.get("CNNVIZ_DATA_MEMORY_MB", "3072")) * 1024**2  # decoded bytes kept in RAM
DISK_LIMIT = int(os.environ.get("CNNVIZ_DATA_DISK_MB", "8192")) * 1024**2  # larger decodes are not written

_memory: "OrderedDict[str, dict[str, Any]]" = OrderedDict()
_lock = threading.Lock()


def make_key(*parts: Any) -> str:
    """A short stable digest of ``parts`` (strings, numbers, tuples)."""
    text = repr((FORMAT, *parts))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _nbytes(entry: dict[str, Any]) -> int:
    return sum(v.numel() * v.element_size() for v in entry.values() if isinstance(v, torch.Tensor))


def _file(key: str) -> Path:
    folder = paths.cache_dir() / "datasets"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{key}.pt"


def get(key: str) -> dict[str, Any] | None:
    """The cached entry for ``key`` from memory, else from disk (then kept in memory), else None."""
    with _lock:
        if key in _memory:
            _memory.move_to_end(key)
            return _memory[key]
    path = _file(key)
    if not path.exists():
        return None
    try:
        entry = torch.load(path, weights_only=True, mmap=True)
    except Exception:  # a truncated or foreign file: decode again and overwrite it
        path.unlink(missing_ok=True)
        return None
    _remember(key, entry)
    return entry


def _remember(key: str, entry: dict[str, Any]) -> None:
    size = _nbytes(entry)
    if size > MEMORY_BUDGET:
        return
    with _lock:
        _memory[key] = entry
        _memory.move_to_end(key)
        while sum(_nbytes(e) for e in _memory.values()) > MEMORY_BUDGET and len(_memory) > 1:
            _memory.popitem(last=False)


def put(key: str, entry: dict[str, Any], *, disk: bool = True) -> None:
    """Keep ``entry`` (a dict of tensors and plain values) in memory and, if ``disk``, in the cache folder."""
    _remember(key, entry)
    if not disk or _nbytes(entry) > DISK_LIMIT:
        return
    path = _file(key)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(entry, tmp)
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)  # a full disk only costs the next start a decode


def clear_memory() -> None:
    """Forget every in-memory entry (the disk cache stays)."""
    with _lock:
        _memory.clear()
