"""Datasets: a registry of named image datasets, decoded once into uint8 tensors, plus batched augmentation.

    from cnnviz.data import list_datasets, load_dataset, load_splits, augment_batch, normalize
    train = load_dataset("shapes", split="train", image_size=32)
    x = normalize(augment_batch(train.images[:64], "cifar"), *dataset_stats("shapes"))
"""

from __future__ import annotations

from cnnviz.data import sources as _sources  # noqa: F401  (registers the datasets)
from cnnviz.data.augment import (
    AUG_PRESETS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    augment_batch,
    channel_stats,
    normalize,
    resize_batch,
)
from cnnviz.data.base import (
    DatasetError,
    DatasetSpec,
    DatasetUnavailable,
    ImageData,
    dataset_display_name,
    get_dataset_spec,
    list_datasets,
    register,
)
from cnnviz.data.loading import (MIN_PER_CLASS, NoTestSet, load_dataset, load_splits, load_test, load_validation,
                                 no_test_reason, split_warnings, stratified_parts, stratified_split, subset_per_class)
from cnnviz.data.shapes import SHAPE_CLASSES, generate_shapes


def dataset_stats(name: str) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel (mean, std) in [0, 1] units for normalising from-scratch runs on ``name``.

    Published statistics for CIFAR, measured ones for ``shapes``, ImageNet's
    for photo datasets without their own (hymenoptera, your own folder).
    """
    spec = get_dataset_spec(name)
    return tuple(spec.mean), tuple(spec.std)


__all__ = [
    "AUG_PRESETS", "IMAGENET_MEAN", "IMAGENET_STD", "MIN_PER_CLASS", "SHAPE_CLASSES", "NoTestSet",
    "DatasetError", "DatasetSpec", "DatasetUnavailable", "ImageData",
    "augment_batch", "channel_stats", "dataset_display_name", "dataset_stats", "generate_shapes", "get_dataset_spec",
    "list_datasets", "load_dataset", "load_splits", "load_test", "load_validation", "no_test_reason", "normalize",
    "register", "resize_batch", "split_warnings", "stratified_parts", "stratified_split", "subset_per_class",
]
