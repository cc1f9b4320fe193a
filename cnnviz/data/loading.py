"""``load_dataset``, ``load_splits`` and ``load_test``: pick the split, subset it, decode once, cache.

Three splits, never mixed: train, validation (chooses the best epoch) and test (evaluated once,
at the end, on the best-validation weights). Under ``val_split="official"`` (the default)
validation is the dataset's own val split where it has one (hymenoptera's val/, the generated
shapes, a folder's val/); otherwise it is carved from the training files, seeded and
stratified (``DatasetSpec.val_fraction`` of each class: 10% for CIFAR; with ``val_per_class``, a
run's ``val_subset``, at most that many, the rest training). The test set is the
dataset's own test split (CIFAR, shapes), or a part carved from the training files where the
spec asks for one and every class is large enough (a user's folder), else there is none
(hymenoptera: its val folder is the validation set, as the course reports used it).
``val_split="random"`` always carves validation from the training files; a dataset's own val
split then becomes its test set where it has no test split. ``subset`` keeps that many pictures
per class, also stratified and seeded. Decoded pictures are cached per source, split and size,
so a second run (or a restart) does not decode again.
"""

from __future__ import annotations

import math
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
MIN_PER_CLASS = 10  # fewer validation (or carved test) images per class than this cannot rank runs
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


def stratified_parts(labels: torch.Tensor, fractions: tuple[float, ...], *, seed: int = 0,
                     classes: list[str] | None = None, caps: tuple[int | None, ...] | None = None
                     ) -> list[torch.Tensor]:
    """Positions of a seeded, stratified split: [rest, part 1, part 2...], each part ``fractions[i]`` of every class.

    Every part gets at least one picture of each class and the rest keeps at least one. ``caps[i]``
    (None: no cap) bounds part i to that many pictures per class; what the cap leaves stays in the rest.
    """
    caps = caps or (None,) * len(fractions)
    g = _generator(seed, 1)
    parts: list[list[torch.Tensor]] = [[] for _ in range(len(fractions) + 1)]
    for c in torch.unique(labels).tolist():
        rows = (labels == c).nonzero().flatten()
        if len(rows) < len(fractions) + 1:
            name = repr(classes[c]) if classes else str(c)
            raise DatasetError(f"class {name} has only {len(rows)} picture; a train/val split needs at least "
                               f"{len(fractions) + 1} per class: add pictures")
        rows = rows[torch.randperm(len(rows), generator=g)]
        start = 0
        for i, fraction in enumerate(fractions, start=1):
            left = len(rows) - start - (len(fractions) - i) - 1  # room for the later parts and the rest
            n = min(left, max(1, round(len(rows) * fraction)), caps[i - 1] or len(rows))
            parts[i].append(rows[start:start + n])
            start += n
        parts[0].append(rows[start:])
    return [torch.cat(p).sort().values for p in parts]


def stratified_split(labels: torch.Tensor, *, seed: int = 0, val_fraction: float = VAL_FRACTION,
                     classes: list[str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions of a seeded, stratified train/val split: ``val_fraction`` of every class goes to val."""
    train, val = stratified_parts(labels, (val_fraction,), seed=seed, classes=classes)
    return train, val


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


class NoTestSet(DatasetError):
    """The dataset, split this way, has no test set (the message says why and what would give one)."""


def _carve_test(spec, counts: torch.Tensor) -> bool:
    """Whether a test part is carved from the training files: the spec asks and every class is large enough."""
    return spec.test_fraction > 0 and int(counts.min()) * spec.test_fraction >= MIN_PER_CLASS


def _plan(index: DatasetIndex, name: str, val_split: str, seed: int, val_per_class: int | None = None
          ) -> dict[str, tuple[str, torch.Tensor | None, str] | None]:
    """For train, val and test: (index split, positions in it or None for all, where it comes from in words).

    Carved validation takes at most ``val_per_class`` pictures of each class: pictures it would
    hold out and never look at train instead.
    """
    spec = get_dataset_spec(name)
    own_val, own_test = "val" in index.splits, "test" in index.splits
    carve_val = val_split == "random" or not own_val
    # Carved by the fine labels whatever the run predicts, so fine and coarse runs hold out the same pictures.
    train_labels = index.splits["train"].labels
    carve_test = not own_test and not (own_val and carve_val) and _carve_test(spec, torch.bincount(train_labels))
    fractions = (spec.val_fraction if carve_val else 0.0, spec.test_fraction if carve_test else 0.0)
    plan: dict[str, tuple[str, torch.Tensor | None, str] | None] = {"train": ("train", None, "the training files")}
    if carve_val or carve_test:
        caps = (val_per_class if carve_val else None, None)
        if caps[0] is not None and round(int(torch.bincount(train_labels).max()) * fractions[0]) <= caps[0]:
            caps = (None, None)  # no class's share is bigger than the cap: say it as a share
        shares = [f"at most {cap} picture{'s' * (cap != 1)}" if cap else f"{f:.0%}" for f, cap in zip(fractions, caps)]
        wanted = [(f, cap) for f, cap in zip(fractions, caps) if f > 0]
        parts = iter(stratified_parts(train_labels, tuple(f for f, _ in wanted), seed=seed, classes=index.classes,
                                      caps=tuple(cap for _, cap in wanted)))
        rest = next(parts)
        carved = {k: next(parts) for k, f in zip(("val", "test"), fractions) if f > 0}
        held = " and ".join(f"{shares[i]} for {w}" for i, w in enumerate(("validation", "test")) if fractions[i])
        plan["train"] = ("train", rest, f"the training files less {held} (seed {seed}, stratified)")
        for key, positions in carved.items():
            plan[key] = ("train", positions, f"{shares[0 if key == 'val' else 1]} of each class of the "
                                             f"training files, carved at random (seed {seed}, stratified)")
    if not carve_val:
        plan["val"] = ("val", None, "the dataset's own val split")
    if own_test:
        plan["test"] = ("test", None, "the dataset's own test split")
    elif own_val and carve_val:
        plan["test"] = ("val", None, "the dataset's own val split (validation was carved from the training files)")
    elif not carve_test:
        plan["test"] = None
    return plan


def _no_test_message(name: str) -> str:
    spec = get_dataset_spec(name)
    if spec.test_fraction:
        return (f"{name} has no test set: no test/ folder, and a test part is carved only when every class has at "
                f"least {round(MIN_PER_CLASS / spec.test_fraction)} pictures")
    return (f"{name} has no test set: its val split is the validation set; with val_split='random' validation is "
            "carved from the training files and the val split becomes the test set")


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
                 val_split: str = "official", val_per_class: int | None = None,
                 progress: Callable[[int, int], None] | None = None) -> ImageData:
    """Load one split of dataset ``name`` as uint8 (N, 3, S, S) tensors, decoding once and caching.

    ``root`` is the data folder (default ``cnnviz.paths.data_root()``), ``path``
    the folder/.zip of the ``folder`` dataset. ``split`` is train, val or test
    (see the module's docstring for which files each one is; a dataset without a test set
    raises ``NoTestSet``). ``subset`` keeps that many pictures per class of this
    split. Where validation is carved from the training files, ``val_per_class`` carves at most
    that many pictures of each class and the rest train: give every split of one run the same value
    (``load_splits`` passes the run's ``val_subset``). ``progress(done, total)`` is called while decoding.
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
    if val_per_class is not None and labels == "coarse" and index.coarse_classes:
        # Carving goes by the fine labels (fine and coarse runs hold out the same pictures): a cap per coarse
        # class is that many over all its fine classes.
        val_per_class = math.ceil(val_per_class * len(index.coarse_classes) / len(index.classes))
    chosen_plan = _plan(index, name, val_split, seed, val_per_class)[split]
    if chosen_plan is None:
        raise NoTestSet(_no_test_message(name))
    split_name, positions, origin = chosen_plan
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
        origin=origin,
        carved=split != "train" and split_name == "train",
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
    test_subset: int | None
    val_carve: str  # "capped": carved validation holds out only val_subset per class; "share": the whole share


def load_splits(config: SplitRequest, *, image_size: int,
                progress: Callable[[int, int], None] | None = None) -> tuple[ImageData, ImageData]:
    """(train, val) for a run: the dataset's own val where it has one, else carved from train; ``subset`` / ``val_subset`` per class."""
    train = load_dataset(config.dataset, split="train", subset=config.subset, **_common(config, image_size, progress))
    return train, load_validation(config, image_size=image_size, progress=progress)


def load_validation(config: SplitRequest, *, image_size: int,
                    progress: Callable[[int, int], None] | None = None) -> ImageData:
    """The run's validation set (``val_subset`` per class), the same pictures ``load_splits`` gives it."""
    return load_dataset(config.dataset, split="val", subset=config.val_subset, **_common(config, image_size, progress))


def load_test(config: SplitRequest, *, image_size: int,
              progress: Callable[[int, int], None] | None = None) -> ImageData | None:
    """The run's test set (``test_subset`` per class), or None when the dataset has none split this way."""
    try:
        return load_dataset(config.dataset, split="test", subset=getattr(config, "test_subset", None),
                            **_common(config, image_size, progress))
    except NoTestSet:
        return None


def no_test_reason(config: SplitRequest) -> str:
    """Why a run has no test set, in one sentence (for messages and reports)."""
    return _no_test_message(config.dataset)


def split_warnings(val: ImageData) -> list[str]:
    """Sentences about a validation set too small to rank runs (fewer than ``MIN_PER_CLASS`` per class)."""
    small = {c: n for c, n in val.class_counts().items() if n < MIN_PER_CLASS}
    if not small:
        return []
    worst = min(small, key=small.get)
    return [f"validation has only {small[worst]} picture(s) of class {worst!r} (fewer than {MIN_PER_CLASS} per class "
            f"in {len(small)} class(es)): its accuracy moves in big steps and cannot tell runs apart; add pictures"]


def _common(config: SplitRequest, image_size: int, progress) -> dict:
    capped = config.val_carve == "capped"
    return dict(root=config.data_root, image_size=image_size, seed=config.seed, labels=config.labels,
                path=config.data_path, val_split=config.val_split, val_per_class=config.val_subset if capped else None,
                progress=progress)
