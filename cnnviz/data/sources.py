"""Where each registered dataset's pictures come from: one indexer per dataset, registered here.

An indexer finds the files (or generates the pictures), lists every split
with its labels, and hands back readers that decode any selection of a split
at any size. Looking for real data goes: the data root (torchvision's own
files, an extracted folder, the same .zip a user would download), then a
download where the network allows, else ``DatasetUnavailable`` naming the
file to place and the folder to place it in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from cnnviz.data import cifar, shapes
from cnnviz.data.archive import DirTree, FileTree, find_class_folders, open_tree
from cnnviz.data.augment import IMAGENET_MEAN, IMAGENET_STD, resize_batch
from cnnviz.data.base import DatasetError, DatasetSpec, DatasetUnavailable, get_dataset_spec, register
from cnnviz.data.download import fetch
from cnnviz.data.images import decode_files

Reader = Callable[[torch.Tensor | None, int], tuple[torch.Tensor, torch.Tensor]]  # (positions|all, size) -> (uint8 images, ok)


@dataclass
class SplitIndex:
    """One split before decoding: a label per picture and a reader for any of them."""

    labels: torch.Tensor  # int64 (N,)
    read: Reader
    coarse: torch.Tensor | None = None
    partial: bool = True  # reading a selection costs less than reading everything (False: generated data)


@dataclass
class DatasetIndex:
    """Everything known about a dataset's files without decoding them."""

    classes: list[str]
    splits: dict[str, SplitIndex]  # "train" plus the official "val" and/or "test" where they exist
    key: str  # identity of the files for the decoded cache (path + mtime + size)
    source: str  # shown to users: where the pictures came from
    coarse_classes: list[str] | None = None
    cacheable: bool = True  # False for folders, whose files can change without changing any stamp we watch


HYMENOPTERA_URL = "https://download.pytorch.org/tutorial/hymenoptera_data.zip"


def _tree_split(tree: FileTree, items: list[tuple[str, int]]) -> SplitIndex:
    names = [n for n, _ in items]

    def read(positions: torch.Tensor | None, size: int, progress=None):
        chosen = names if positions is None else [names[i] for i in positions.tolist()]
        return decode_files(tree.read, chosen, size, progress=progress)

    return SplitIndex(labels=torch.tensor([c for _, c in items], dtype=torch.int64), read=read)


def index_class_folders(path: Path, *, what: str, need_official: bool = False) -> DatasetIndex:
    """Index a folder or .zip of class folders (optionally ``{train,val|test}/<class>/*``)."""
    tree = open_tree(path)
    found = find_class_folders(tree, what=what)
    if need_official and len(found.splits) < 2:
        raise DatasetError(f"{what} has no val/ or test/ folder next to train/; use the layout {{train,val}}/<class>/*")
    splits = {name: _tree_split(tree, items) for name, items in found.splits.items()}
    return DatasetIndex(classes=found.classes, splits=splits, key=tree.key, source=str(path),
                        cacheable=not isinstance(tree, DirTree))


def _array_split(images: torch.Tensor, labels, coarse=None) -> SplitIndex:
    def read(positions: torch.Tensor | None, size: int, progress=None):
        chosen = images if positions is None else images[positions]
        out = torch.empty(len(chosen), 3, size, size, dtype=torch.uint8)
        for start in range(0, len(chosen), 1024):  # resizing in blocks bounds the float copy
            out[start:start + 1024] = resize_batch(chosen[start:start + 1024], size)
        return out, torch.ones(len(chosen), dtype=torch.bool)

    return SplitIndex(labels=torch.as_tensor(labels, dtype=torch.int64), read=read,
                      coarse=None if coarse is None else torch.as_tensor(coarse, dtype=torch.int64))


def _index_cifar_arrays(source: Path, layout: cifar.CifarLayout) -> DatasetIndex:
    arrays = cifar.read_cifar(source, layout)
    splits = {
        split: _array_split(torch.from_numpy(arrays.images[split]), arrays.labels[split],
                            None if arrays.coarse is None else arrays.coarse[split])
        for split in ("train", "test")
    }
    st = source.stat()
    key = f"cifar:{source.resolve()}:{st.st_mtime_ns}:{st.st_size}"
    return DatasetIndex(classes=arrays.classes, splits=splits, key=key, source=str(source), coarse_classes=arrays.coarse_classes)


def _unavailable(name: str, root: Path, wanted: str, reason: BaseException | str) -> DatasetUnavailable:
    why = str(reason).splitlines()[0] if str(reason) else type(reason).__name__
    return DatasetUnavailable(f"{name} is not in {root} and could not be downloaded ({why}): place {wanted} in {root}")


def index_shapes(*, root: Path, path: Path | None, labels: str) -> DatasetIndex:
    """The generated shapes: fixed seeds per split, drawn at whatever size is asked for."""

    def split(name: str) -> SplitIndex:
        n = shapes.SPLIT_SIZES[name]

        def read(positions, size, progress=None):
            images, _ = shapes.generate_shapes(n, size=size, seed=shapes.SPLIT_SEEDS[name])
            images = images if positions is None else images[positions]
            return images, torch.ones(len(images), dtype=torch.bool)

        return SplitIndex(labels=torch.arange(n * len(shapes.SHAPE_CLASSES)) % len(shapes.SHAPE_CLASSES), read=read, partial=False)

    return DatasetIndex(classes=list(shapes.SHAPE_CLASSES), splits={s: split(s) for s in shapes.SPLIT_SIZES},
                        key=f"shapes:{shapes.GENERATOR_VERSION}", source="generated")


def index_hymenoptera(*, root: Path, path: Path | None, labels: str) -> DatasetIndex:
    """``hymenoptera_data/`` or ``hymenoptera_data.zip`` in the data root, downloaded there if possible."""
    folder, archive = root / "hymenoptera_data", root / "hymenoptera_data.zip"
    if not folder.is_dir() and not archive.is_file():
        try:
            fetch(HYMENOPTERA_URL, archive)
        except Exception as exc:  # offline, proxy, HTTP error: say what to place where
            raise _unavailable("hymenoptera", root, f"hymenoptera_data.zip (from {HYMENOPTERA_URL}) or its extracted hymenoptera_data/ folder", exc) from None
    source = folder if folder.is_dir() else archive
    return index_class_folders(source, what=source.name, need_official=True)


def _index_cifar(name: str, layout: cifar.CifarLayout, *, root: Path, labels: str) -> DatasetIndex:
    extracted, archive = root / layout.folder, root / layout.archive
    folders = [root / name, root / f"{name}.zip"]
    if extracted.is_dir():
        return _index_cifar_arrays(extracted, layout)
    if archive.is_file():
        return _index_cifar_arrays(archive, layout)
    for candidate in folders:
        if candidate.exists():
            if labels == "coarse":
                raise DatasetError(f"{candidate.name} holds class folders, which carry no superclass labels; place {layout.archive} (torchvision's file) in {root} for labels='coarse'")
            return index_class_folders(candidate, what=candidate.name, need_official=True)
    try:
        fetch(layout.url, archive, md5=layout.md5)
    except Exception as exc:
        wanted = f"{layout.archive} (from {layout.url}) or its extracted {layout.folder}/ folder, or {name}.zip of class folders {name}/{{train,test}}/<class>/*.jpg,"
        raise _unavailable(name, root, wanted, exc) from None
    return _index_cifar_arrays(archive, layout)


def index_cifar10(*, root: Path, path: Path | None, labels: str) -> DatasetIndex:
    """CIFAR-10 from torchvision's files or class folders in the data root."""
    return _index_cifar("cifar10", cifar.CIFAR10, root=root, labels=labels)


def index_cifar100(*, root: Path, path: Path | None, labels: str) -> DatasetIndex:
    """CIFAR-100 (with its 20 superclasses) from torchvision's files or class folders in the data root."""
    return _index_cifar("cifar100", cifar.CIFAR100, root=root, labels=labels)


def index_folder(*, root: Path, path: Path | None, labels: str) -> DatasetIndex:
    """A user's folder or .zip of class folders."""
    if path is None:
        raise DatasetError("the folder dataset needs a path: a folder or .zip with one sub-folder of pictures per class")
    return index_class_folders(Path(path).expanduser(), what=Path(path).name or str(path))


register(DatasetSpec(
    name="shapes", label="Shapes (generated)", generated=True, native_size=64, num_classes=len(shapes.SHAPE_CLASSES),
    description=f"{len(shapes.SHAPE_CLASSES)} classes of coloured shapes and patterns on textured, noisy backgrounds, "
                f"drawn in code ({shapes.SPLIT_SIZES['train']} train / {shapes.SPLIT_SIZES['val']} val / "
                f"{shapes.SPLIT_SIZES['test']} test per class, each drawn apart): always available, trains in a minute.",
    how_to_get="Nothing to do: generated on the fly.",
    mean=(0.4038, 0.4021, 0.4035), std=(0.2563, 0.2537, 0.2548), indexer=index_shapes,  # channel_stats of train
    split_images={split: n * len(shapes.SHAPE_CLASSES) for split, n in shapes.SPLIT_SIZES.items()},
))
register(DatasetSpec(
    name="hymenoptera", label="Ants vs bees (hymenoptera)", native_size=224, num_classes=2,
    description="The PyTorch transfer-learning tutorial's 398 photos of ants and bees (245 train, 153 val; no test "
                "set of its own): small, so pretrained weights matter.",
    how_to_get=f"Put hymenoptera_data.zip ({HYMENOPTERA_URL}) or its extracted hymenoptera_data/ folder in the data folder.",
    mean=IMAGENET_MEAN, std=IMAGENET_STD, indexer=index_hymenoptera, split_images={"train": 245, "val": 153},
))
register(DatasetSpec(
    name="cifar10", label="CIFAR-10", native_size=32, num_classes=10,
    description="60,000 tiny 32x32 photos in 10 classes: 50,000 train (10% of them carved for validation) and "
                "10,000 test, evaluated once at the end.",
    how_to_get=f"Put torchvision's {cifar.CIFAR10.archive} (or its extracted {cifar.CIFAR10.folder}/), or cifar10.zip of class folders cifar10/{{train,test}}/<class>/*, in the data folder.",
    mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616), indexer=index_cifar10,
    split_images={"train": 50_000, "test": 10_000}, official_val=False, val_fraction=0.1,
))
register(DatasetSpec(
    name="cifar100", label="CIFAR-100", native_size=32, num_classes=100,
    description="60,000 32x32 photos in 100 fine classes grouped into 20 superclasses (labels='coarse'): "
                "50,000 train (10% carved for validation) and 10,000 test.",
    how_to_get=f"Put torchvision's {cifar.CIFAR100.archive} (or its extracted {cifar.CIFAR100.folder}/) in the data folder; class folders cifar100/{{train,test}}/<class>/* work for fine labels only.",
    mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762), label_sets=("fine", "coarse"), indexer=index_cifar100,
    split_images={"train": 50_000, "test": 10_000}, coarse_classes=20, official_val=False, val_fraction=0.1,
))
register(DatasetSpec(
    name="folder", label="Your own pictures (folder or .zip)", native_size=128, num_classes=None,
    description="A folder or .zip with one sub-folder of pictures per class (optionally inside train/ and val/ or "
                "test/); without them 20% is held out for validation, and 20% more for a test set when every class "
                "has 50 pictures or more.",
    how_to_get="Upload a .zip (or give a folder) laid out as <class>/<picture>, e.g. cats/1.jpg, dogs/2.jpg.",
    needs_path=True, official_val=False, mean=IMAGENET_MEAN, std=IMAGENET_STD, indexer=index_folder,
    test_fraction=0.2,
))


def dataset_locations(name: str, root: Path) -> list[Path]:
    """The files or folders in ``root`` the indexer reads ``name`` from (any one is enough); [] for generated data."""
    if name == "hymenoptera":
        return [root / "hymenoptera_data", root / "hymenoptera_data.zip"]
    layout = {"cifar10": cifar.CIFAR10, "cifar100": cifar.CIFAR100}.get(name)
    if layout is not None:
        return [root / layout.folder, root / layout.archive, root / name, root / f"{name}.zip"]
    return []


def dataset_present(name: str, root: Path | str | None = None) -> bool:
    """Whether ``name`` loads without a download: generated, or its files are in ``root`` (the data folder).

    Only looks for files (indexing would start a download). A dataset that needs a user's path
    (``folder``) is never present on its own.
    """
    from cnnviz.paths import data_root

    spec = get_dataset_spec(name)
    if spec.needs_path:
        return False
    candidates = dataset_locations(name, Path(root) if root else data_root())
    return not candidates or any(p.exists() for p in candidates)
