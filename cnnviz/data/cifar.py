"""CIFAR-10/100 in torchvision's on-disk format, read safely (and with CIFAR-100's coarse labels).

torchvision's ``CIFAR10``/``CIFAR100`` classes check each file's MD5 against
the official archive (so a tiny test-written file in the same format is
refused), unpickle with plain ``pickle.load`` (a hostile file could run code)
and expose only CIFAR-100's fine labels. We therefore read the pickles
ourselves with an unpickler that only rebuilds numpy arrays and builtins, from
the extracted ``cifar-10-batches-py/`` / ``cifar-100-python/`` folder or
straight out of the ``.tar.gz`` torchvision downloads (no extraction needed).
"""

from __future__ import annotations

import io
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnviz.data.base import DatasetError


@dataclass(frozen=True)
class CifarLayout:
    folder: str  # the folder inside the archive / data root
    archive: str  # torchvision's download file name
    url: str
    md5: str  # of the archive, as torchvision checks it
    train: tuple[str, ...]
    test: tuple[str, ...]
    meta: str


CIFAR10 = CifarLayout(
    folder="cifar-10-batches-py", archive="cifar-10-python.tar.gz",
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", md5="c58f30108f718f92721af3b95e74349a",
    train=tuple(f"data_batch_{i}" for i in range(1, 6)), test=("test_batch",), meta="batches.meta",
)
CIFAR100 = CifarLayout(
    folder="cifar-100-python", archive="cifar-100-python.tar.gz",
    url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", md5="eb9058c3a382ffc7106e4002c42a8d85",
    train=("train",), test=("test",), meta="meta",
)

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """Rebuilds dicts, lists, strings and numpy arrays; refuses every other global (no code can run)."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a dataset file")
        if module == "numpy.core.multiarray" and hasattr(np, "_core"):
            module = "numpy._core.multiarray"  # numpy 2 moved it; the old name only warns
        return super().find_class(module, name)


def load_pickle(data: bytes, *, what: str) -> dict:
    """One CIFAR pickle (Python 2 or 3 written) -> dict with str keys."""
    try:
        obj = _ArrayUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as exc:
        raise DatasetError(f"{what} is not a CIFAR pickle ({exc}); replace it with the file from the official archive") from None
    if not isinstance(obj, dict):
        raise DatasetError(f"{what} is not a CIFAR pickle (no dict inside); replace it with the file from the official archive")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _names(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


@dataclass
class CifarArrays:
    """Everything in one CIFAR download: uint8 (N, 3, 32, 32) images and labels per split."""

    classes: list[str]
    coarse_classes: list[str] | None
    images: dict[str, np.ndarray]  # split -> (N, 3, 32, 32)
    labels: dict[str, np.ndarray]
    coarse: dict[str, np.ndarray] | None


def _read_members(source: Path, layout: CifarLayout) -> dict[str, bytes]:
    """The raw bytes of the needed files, from the folder or the .tar.gz."""
    wanted = (*layout.train, *layout.test, layout.meta)
    if source.is_dir():
        missing = [n for n in wanted if not (source / n).is_file()]
        if missing:
            raise DatasetError(f"{source} is incomplete: {', '.join(missing)} missing; put the whole {layout.folder}/ folder there (or {layout.archive})")
        return {n: (source / n).read_bytes() for n in wanted}
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(source, "r:*") as tar:
            for member in tar:
                base = member.name.rsplit("/", 1)[-1]
                if member.isfile() and base in wanted and member.name.startswith(layout.folder + "/"):
                    found[base] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DatasetError(f"{source.name} is not a readable CIFAR archive ({exc}); download it again") from None
    missing = [n for n in wanted if n not in found]
    if missing:
        raise DatasetError(f"{source.name} lacks {layout.folder}/{missing[0]}; download {layout.archive} again")
    return found


def read_cifar(source: Path, layout: CifarLayout) -> CifarArrays:
    """Read a CIFAR folder or archive; CIFAR-100 also yields its coarse labels and superclass names."""
    raw = _read_members(source, layout)
    meta = load_pickle(raw[layout.meta], what=f"{source.name}/{layout.meta}")
    is_100 = "fine_label_names" in meta
    classes = _names(meta["fine_label_names"] if is_100 else meta.get("label_names", []))
    coarse_classes = _names(meta["coarse_label_names"]) if is_100 and "coarse_label_names" in meta else None
    images, labels, coarse = {}, {}, {} if coarse_classes else None
    for split, files in (("train", layout.train), ("test", layout.test)):
        parts = [load_pickle(raw[f], what=f"{source.name}/{f}") for f in files]
        try:
            data = np.concatenate([np.asarray(p["data"], dtype=np.uint8).reshape(-1, 3, 32, 32) for p in parts])
            key = "fine_labels" if is_100 else "labels"
            labels[split] = np.concatenate([np.asarray(p[key], dtype=np.int64) for p in parts])
            if coarse is not None:
                coarse[split] = np.concatenate([np.asarray(p["coarse_labels"], dtype=np.int64) for p in parts])
        except (KeyError, ValueError) as exc:
            raise DatasetError(f"{source.name}: {split} data is not in the CIFAR format ({exc}); download the archive again") from None
        if len(labels[split]) != len(data):
            raise DatasetError(f"{source.name}: {split} has {len(data)} images but {len(labels[split])} labels; download the archive again")
        images[split] = data
    if not classes or max(int(v.max(initial=0)) for v in labels.values()) >= len(classes):
        raise DatasetError(f"{source.name}: the label names in {layout.meta} do not match the labels; download the archive again")
    return CifarArrays(classes=classes, coarse_classes=coarse_classes, images=images, labels=labels, coarse=coarse)
