"""Dataset types shared by every source: ``ImageData``, ``DatasetSpec``, the errors and the registry.

``register`` adds a spec and refuses duplicates (the style of
``cnnviz.models.registry``); ``list_datasets`` and ``get_dataset_spec`` are the
only way in, so pages fill their selectboxes from here and tests are
parametrized over ``list_datasets()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Callable

import torch


class DatasetUnavailable(RuntimeError):
    """The dataset's files are not there and cannot be downloaded; the message says what to place where."""


class DatasetError(ValueError):
    """The dataset is there but unusable (too few classes, an empty class, an unsafe archive...)."""


@dataclass
class ImageData:
    """Decoded images of one split, ready for a model.

    ``images`` is uint8 ``(N, 3, H, W)``; ``labels`` int64 ``(N,)`` indexes
    ``classes``. ``coarse_labels`` / ``coarse_classes`` carry the CIFAR-100
    superclasses of each image when the source has them. ``skipped`` counts
    unreadable files that were left out. ``images`` may share memory with
    the decoded cache: treat it as read-only (augment into new tensors).
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    name: str
    split: str
    skipped: int = 0
    coarse_labels: torch.Tensor | None = None
    coarse_classes: list[str] | None = None
    source: str = ""  # where the pictures came from (a path, or "generated")
    origin: str = ""  # which part of the files this split is, in words ("10% of each class of train, carved...")
    carved: bool = False  # a part carved from the training files (validation or test), not a split of its own

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def image_size(self) -> int:
        """Side length of the (square) images."""
        return int(self.images.shape[-1])

    def class_counts(self) -> dict[str, int]:
        """Images per class, in class order."""
        counts = torch.bincount(self.labels, minlength=len(self.classes)).tolist()
        return dict(zip(self.classes, counts))

    def take(self, index: torch.Tensor) -> "ImageData":
        """A new ImageData holding the rows ``index`` (same classes)."""
        return ImageData(
            images=self.images[index],
            labels=self.labels[index],
            classes=list(self.classes),
            name=self.name,
            split=self.split,
            skipped=self.skipped,
            coarse_labels=None if self.coarse_labels is None else self.coarse_labels[index],
            coarse_classes=None if self.coarse_classes is None else list(self.coarse_classes),
            source=self.source,
            origin=self.origin,
        )


@dataclass(frozen=True)
class DatasetSpec:
    """What the app shows about a dataset and how it is indexed.

    ``native_size`` is the side length images are decoded at when no
    ``image_size`` is asked for. ``num_classes`` is None when it depends on the
    files (``folder``). ``how_to_get`` is the one paragraph a page shows when
    the files are missing. ``needs_path`` means the user must give a folder or
    .zip (``folder``). ``mean``/``std`` are per-channel statistics for
    from-scratch runs. ``indexer(root=..., path=..., labels=...)`` lists the
    files (private to ``cnnviz.data``). ``val_fraction``/``test_fraction`` say how much
    of each class of the training files is held out where the files bring no split of
    their own (see ``cnnviz.data.loading``).
    """

    name: str
    label: str
    description: str
    native_size: int
    num_classes: int | None
    how_to_get: str
    needs_path: bool = False
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    official_val: bool = True  # the files come with a validation split of their own (folder: depends on the layout)
    val_fraction: float = 0.2  # of each class of the training files, carved for validation where there is no own val
    test_fraction: float = 0.0  # carved for a test set where the files have none (0: never; only when large enough)
    label_sets: tuple[str, ...] = ("fine",)
    generated: bool = False  # made in code (nothing to download or place)
    split_images: dict[str, int] = field(default_factory=dict, compare=False)  # images per split; {} when it depends on the files
    coarse_classes: int | None = None  # classes under labels="coarse" (CIFAR-100's 20 superclasses)
    indexer: Callable[..., Any] | None = field(default=None, repr=False, compare=False)

    def classes_for(self, labels: str = "fine") -> int | None:
        """How many classes a run with ``labels`` ("fine" or "coarse") predicts; None when the files decide."""
        return self.coarse_classes if labels == "coarse" else self.num_classes


_REGISTRY: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> DatasetSpec:
    """Add ``spec`` to the registry; a second spec with the same name is an error."""
    if spec.name in _REGISTRY:
        raise ValueError(f"dataset {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def list_datasets() -> list[str]:
    """Names of every registered dataset, in registration order (``shapes`` first)."""
    return list(_REGISTRY)


def get_dataset_spec(name: str) -> DatasetSpec:
    """The spec of ``name``, or DatasetError naming the known datasets."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise DatasetError(f"unknown dataset {name!r}; choose one of: {', '.join(_REGISTRY)}") from None


def dataset_display_name(name: str, data_path: str | None = None) -> str:
    """How run names and tables call a dataset: its registry name, or for one read from a path (``folder``)
    the name of the user's folder or .zip (``pets.zip``), so two uploads are told apart."""
    spec = _REGISTRY.get(name)
    if spec is not None and spec.needs_path and data_path:
        return PurePath(str(data_path)).name or name
    return name
