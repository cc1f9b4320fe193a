"""``load_dataset`` and ``load_splits``: pick the split, subset it, decode once, cache.

Splits are the official ones where a dataset has them (hymenoptera's val,
CIFAR's test used as validation); otherwise, or when asked
(``val_split="random"``), a stratified 80/20 split of the training pictures,
seeded. ``subset`` keeps that many pictures per class, also stratified and
seeded. Decoded pictures are cached per source, split and size, so a second
run (or a restart) does not decode again.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Protocol

import torch

from cnnviz import paths
from cnnviz.data import cache
from cnnviz.data.base import DatasetError, ImageData, get_dataset_spec
from cnnviz.data.sources import DatasetIndex, SplitIndex

VAL_FRACTION = 0.2  # the 80/20 split the course reports use
SPLITS = ("train", "val", "test")
VAL_SPLITS = ("official", "random")
FULL_DECODE_FRACTION = 0.5  # selecting more than this of a split decodes (and caches) the whole split

_indexes: "OrderedDict[tuple, DatasetIndex]" = OrderedDict()  # a few recent indexes (CIFAR pickles are 180 MB to read)
_index_lock = threading.Lock()
_decode_locks: dict[str, threading.Lock] = {}


def _stamp(path: Path) -> tuple:
    try:
        st = path.stat()
    except OSError:
        return (str(path), None)
    return (str(path), st.st_mtime_ns, st.st_size)


def _index(name: str, root: Path, path: Path | None, labels: str) -> DatasetIndex:
    """The dataset's index, remembered while its files' stamps are unchanged (folders are always re-listed)."""
    spec = get_dataset_spec(name)
    watched = [path] if path is not None else sorted(root.iterdir()) if root.is_dir() else []
    key = (name, str(root), str(path), labels, tuple(_stamp(p) for p in watched))
    with _index_lock:
        if key in _indexes:
            _indexes.move_to_end(key)
            return _indexes[key]
    index = spec.indexer(root=root, path=path, labels=labels)
    if not index.cacheable:
        return index
    with _index_lock:
        _indexes[key] = index
        while len(_indexes) > 3:
            _indexes.popitem(last=False)
    return index


def _generator(seed: int, salt: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + salt)


def stratified_split(labels: torch.Tensor, *, seed: int = 0, val_fraction: float = VAL_FRACTION,
                     classes: list[str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions of a seeded, stratified train/val split: ``val_fraction`` of every class goes to val."""
    g = _generator(seed, 1)
    train, val = [], []
    for c in torch.unique(labels).tolist():
        rows = (labels == c).nonzero().flatten()
        if len(rows) < 2:
            name = repr(classes[c]) if classes else str(c)
            raise DatasetError(f"class {name} has only {len(rows)} picture; a train/val split needs at least 2 per class: add pictures")
        rows = rows[torch.randperm(len(rows), generator=g)]
        n_val = min(len(rows) - 1, max(1, round(len(rows) * val_fraction)))
        val.append(rows[:n_val])
        train.append(rows[n_val:])
    return torch.cat(train).sort().values, torch.cat(val).sort().values


def subset_per_class(labels: torch.Tensor, per_class: int, *, seed: int = 0) -> torch.Tensor:
    """Positions of at most ``per_class`` pictures of every class, chosen at random (seeded), in file order."""
    if per_class < 1:
        raise DatasetError(f"subset must be at least 1 picture per class; got {per_class}")
    g = _generator(seed, 2)
    keep = []
    for c in torch.unique(labels).tolist():
        rows = (labels == c).nonzero().flatten()
        keep.append(rows[torch.randperm(len(rows), generator=g)[:per_class]])
    return torch.cat(keep).sort().values


def _select(index: DatasetIndex, split: str, val_split: str, seed: int, labels: str) -> tuple[str, torch.Tensor | None]:
    """Which index split and which positions in it ``split`` means (None: all of it)."""
    official_val = "val" if "val" in index.splits else "test" if "test" in index.splits else None
    if split == "test" and official_val is not None:
        return ("test" if "test" in index.splits else "val"), None
    if split in ("train", "val") and val_split == "official" and official_val is not None:
        return ("train" if split == "train" else official_val), None
    classes = index.coarse_classes if labels == "coarse" else index.classes
    train, val = stratified_split(_labels(index.splits["train"], labels), seed=seed, classes=classes)
    return "train", (train if split == "train" else val)


def _labels(split: SplitIndex, labels: str) -> torch.Tensor:
    return split.coarse if labels == "coarse" else split.labels


def _decode(index: DatasetIndex, split_name: str, positions: torch.Tensor | None, size: int,
            progress: Callable[[int, int], None] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoded pictures and ok flags of ``positions`` of a split, through the caches."""
    split = index.splits[split_name]
    total = len(split.labels)
    whole = positions is None or not split.partial or len(positions) > FULL_DECODE_FRACTION * total
    key = cache.make_key(index.key, split_name, size, "all" if whole else tuple(positions.tolist()))
    with _decode_locks.setdefault(key, threading.Lock()):  # two sessions asking at once decode once
        entry = cache.get(key)
        if entry is None:
            images, ok = split.read(None if whole else positions, size, progress)
            entry = {"images": images, "ok": ok}
            cache.put(key, entry)
    if whole and positions is not None:
        return entry["images"][positions], entry["ok"][positions]
    return entry["images"], entry["ok"]


def _check_classes(classes: list[str], wanted: torch.Tensor, kept: torch.Tensor, what: str) -> None:
    """A class that had pictures but lost them all to decoding errors is named, not silently dropped."""
    before = torch.bincount(wanted, minlength=len(classes))
    after = torch.bincount(kept, minlength=len(classes))
    for c, (b, a) in enumerate(zip(before.tolist(), after.tolist())):
        if b > 0 and a == 0:
            raise DatasetError(f"{what}: none of the {b} pictures of class {classes[c]!r} could be read; replace them with JPEG or PNG files")


def load_dataset(name: str, *, root: str | Path | None = None, split: str = "train", image_size: int | None = None,
                 subset: int | None = None, seed: int = 0, labels: str = "fine", path: str | Path | None = None,
                 val_split: str = "official", progress: Callable[[int, int], None] | None = None) -> ImageData:
    """Load one split of dataset ``name`` as uint8 (N, 3, S, S) tensors, decoding once and caching.

    ``root`` is the data folder (default ``cnnviz.paths.data_root()``), ``path``
    the folder/.zip of the ``folder`` dataset. ``split`` is train, val or test
    (test is the official held-out set; where a dataset has only one, val and
    test are the same). ``subset`` keeps that many pictures per class of this
    split. ``progress(done, total)`` is called while decoding.
    """
    spec = get_dataset_spec(name)
    if split not in SPLITS:
        raise DatasetError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    if val_split not in VAL_SPLITS:
        raise DatasetError(f"val_split must be one of {', '.join(VAL_SPLITS)}; got {val_split!r}")
    if labels not in spec.label_sets:
        raise DatasetError(f"{name} has no {labels!r} labels; use {' or '.join(repr(s) for s in spec.label_sets)}")
    size = int(image_size or spec.native_size)
    if size < 8:
        raise DatasetError(f"image_size must be at least 8 px; got {size}")
    root_path = Path(root).expanduser() if root else paths.data_root()
    path_obj = Path(os.fspath(path)).expanduser() if path else None
    index = _index(name, root_path, path_obj, labels)
    classes = index.coarse_classes if labels == "coarse" else index.classes
    split_name, positions = _select(index, split, val_split, seed, labels)
    split_index = index.splits[split_name]
    all_labels = _labels(split_index, labels)
    if subset is not None:
        chosen = all_labels if positions is None else all_labels[positions]
        picked = subset_per_class(chosen, int(subset), seed=seed)
        positions = picked if positions is None else positions[picked]
    images, ok = _decode(index, split_name, positions, size, progress)
    chosen_labels = all_labels if positions is None else all_labels[positions]
    source = path_obj.name if path_obj is not None and spec.needs_path else spec.label  # the user's file, by its name
    _check_classes(classes, chosen_labels, chosen_labels[ok], f"{source} ({split})")
    coarse = split_index.coarse if positions is None or split_index.coarse is None else split_index.coarse[positions]
    return ImageData(
        images=images[ok] if not bool(ok.all()) else images,
        labels=chosen_labels[ok].clone(),
        classes=list(classes),
        name=name,
        split=split,
        skipped=int((~ok).sum()),
        coarse_labels=None if coarse is None else coarse[ok].clone(),
        coarse_classes=None if index.coarse_classes is None else list(index.coarse_classes),
        source=index.source,
    )


class SplitRequest(Protocol):
    """What ``load_splits`` reads of a run's config (a ``TrainConfig`` is one)."""

    dataset: str
    data_root: str | None
    data_path: str | None
    labels: str
    seed: int
    val_split: str
    subset: int | None
    val_subset: int | None


def load_splits(config: SplitRequest, *, image_size: int,
                progress: Callable[[int, int], None] | None = None) -> tuple[ImageData, ImageData]:
    """(train, val) for a run: official val where it exists (random 80/20 on request); ``subset`` / ``val_subset`` per class."""
    common = dict(root=config.data_root, image_size=image_size, seed=config.seed, labels=config.labels,
                  path=config.data_path, val_split=config.val_split, progress=progress)
    train = load_dataset(config.dataset, split="train", subset=config.subset, **common)
    val = load_dataset(config.dataset, split="val", subset=config.val_subset, **common)
    return train, val
