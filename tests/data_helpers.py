"""Tiny datasets written in their real on-disk formats, for any test that needs pictures.

    from data_helpers import write_class_folders, write_cifar100_pickles
    zip_path = write_class_folders(tmp_path, ["cats", "dogs"], n=6, size=24, zip=True)
    load_dataset("folder", path=zip_path)

Pictures of class k are filled with a distinct colour plus noise, so a model
can learn them in a few steps (trainer tests) and tests can tell classes apart.
"""

from __future__ import annotations

import io
import pickle
import tarfile
import zipfile
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

PALETTE = [(230, 40, 40), (40, 200, 60), (50, 80, 230), (240, 220, 40), (200, 60, 220), (40, 220, 220), (250, 140, 20),
           (120, 120, 120), (255, 255, 255), (20, 20, 20)]


def class_colour(k: int) -> tuple[int, int, int]:
    """The base colour of class ``k`` (distinct for the first ten, then cycling with a shift)."""
    r, g, b = PALETTE[k % len(PALETTE)]
    shift = 37 * (k // len(PALETTE))
    return ((r + shift) % 256, (g + 2 * shift) % 256, (b + 3 * shift) % 256)


def class_array(k: int, size: int | tuple[int, int], *, seed: int = 0) -> np.ndarray:
    """An (H, W, 3) uint8 picture of class ``k``: its colour plus a little noise."""
    w, h = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(seed * 1009 + k)
    base = np.array(class_colour(k), dtype=np.int16)[None, None, :]
    noise = rng.integers(-20, 21, size=(h, w, 3), dtype=np.int16)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def image_bytes(k: int, size: int | tuple[int, int] = 24, *, fmt: str = "JPEG", seed: int = 0) -> bytes:
    """The encoded file of one class-``k`` picture (JPEG or PNG)."""
    buf = io.BytesIO()
    Image.fromarray(class_array(k, size, seed=seed)).save(buf, format=fmt)
    return buf.getvalue()


def write_class_folders(tmp: Path, classes: Sequence[str], n: int | Sequence[int], size: int | tuple[int, int] = 24, *,
                        zip: bool = False, splits: Iterable[str] | None = None, wrapper: str | None = None,
                        name: str = "pictures", fmt: str = "JPEG", n_val: int | None = None) -> Path:
    """Write ``<class>/<i>.jpg`` (or ``<split>/<class>/<i>.jpg`` for each of ``splits``) under ``tmp/name``.

    ``n`` is pictures per class (or a list, one count per class); ``n_val``
    (default ``n``) for splits other than train. ``wrapper`` puts everything
    inside one more folder, as zips made from a folder often are. With
    ``zip=True`` the tree goes into ``tmp/name.zip`` instead and that path is
    returned; otherwise the folder is returned.
    """
    counts = [n] * len(classes) if isinstance(n, int) else list(n)
    ext = ".jpg" if fmt.upper() == "JPEG" else "." + fmt.lower()
    files: dict[str, bytes] = {}
    for split in (splits or [None]):
        for k, cls in enumerate(classes):
            count = counts[k] if split in (None, "train") or n_val is None else n_val
            for i in range(count):
                parts = [p for p in (wrapper, split, cls, f"{i:04d}{ext}") if p]
                files["/".join(parts)] = image_bytes(k, size, fmt=fmt, seed=i + (1000 if split not in (None, "train") else 0))
    tmp = Path(tmp)
    if zip:
        target = tmp / f"{name}.zip"
        write_zip(target, files)
        return target
    folder = tmp / name
    for rel, data in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return folder


def write_zip(target: Path, files: dict[str, bytes], *, compression: int = zipfile.ZIP_STORED) -> Path:
    """A zip holding ``files`` (member name -> bytes), names written as given (even unsafe ones)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", compression=compression) as zf:
        for member, data in files.items():
            zf.writestr(member, data)
    return target


def write_hymenoptera(root: Path, *, n: int = 6, size: int = 40, zip: bool = True) -> Path:
    """``root/hymenoptera_data.zip`` (or the extracted folder) in the tutorial's layout, tiny."""
    return write_class_folders(root, ["ants", "bees"], n, (size + 12, size), zip=zip, splits=["train", "val"],
                               wrapper="hymenoptera_data" if zip else None, name="hymenoptera_data", n_val=max(2, n // 2))


def _cifar_array(labels: Sequence[int], colour_of: Sequence[int], seed: int) -> np.ndarray:
    """(N, 3072) uint8 rows in CIFAR's channel-major order, coloured by ``colour_of[label]``."""
    rows = [class_array(colour_of[c], 32, seed=seed + i).transpose(2, 0, 1).reshape(-1) for i, c in enumerate(labels)]
    return np.stack(rows) if rows else np.zeros((0, 3072), np.uint8)


def _dump(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=2))  # the originals are protocol-2 (Python 2) pickles


def _tar(folder: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive


def coarse_of(fine: int, *, n_fine: int = 100, n_coarse: int = 20) -> int:
    """The superclass the tiny CIFAR-100 gives fine class ``fine`` (a fixed, non-trivial mapping)."""
    return (fine * 7) % n_coarse if n_fine >= n_coarse else fine % n_coarse


def write_cifar100_pickles(root: Path, *, per_class: int = 2, test_per_class: int = 1, n_fine: int = 100,
                           n_coarse: int = 20, tar: bool = False) -> Path:
    """``root/cifar-100-python/{train,test,meta}`` in torchvision's format (or the .tar.gz with ``tar=True``).

    Pickle dicts with b'data' (N x 3072 uint8), b'fine_labels', b'coarse_labels',
    b'filenames'; meta with b'fine_label_names' and b'coarse_label_names'.
    Fine class k belongs to superclass ``coarse_of(k)``; pictures are coloured
    by superclass. Returns ``root``.
    """
    folder = Path(root) / "cifar-100-python"
    mapping = [coarse_of(k, n_fine=n_fine, n_coarse=n_coarse) for k in range(n_fine)]
    for split, count, seed in (("train", per_class, 0), ("test", test_per_class, 50_000)):
        fine = [k for _ in range(count) for k in range(n_fine)]
        _dump(folder / split, {
            b"data": _cifar_array(fine, mapping, seed),
            b"fine_labels": fine,
            b"coarse_labels": [mapping[k] for k in fine],
            b"filenames": [f"img_{i}.png".encode() for i in range(len(fine))],
            b"batch_label": f"{split} batch".encode(),
        })
    _dump(folder / "meta", {
        b"fine_label_names": [f"fine_{k:02d}".encode() for k in range(n_fine)],
        b"coarse_label_names": [f"coarse_{c:02d}".encode() for c in range(n_coarse)],
    })
    if tar:
        _tar(folder, Path(root) / "cifar-100-python.tar.gz")
        _remove_tree(folder)
    return Path(root)


def write_cifar10_pickles(root: Path, *, per_class: int = 3, test_per_class: int = 2, tar: bool = False) -> Path:
    """``root/cifar-10-batches-py/`` (data_batch_1..5, test_batch, batches.meta) in torchvision's format."""
    folder = Path(root) / "cifar-10-batches-py"
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    for b in range(1, 6):
        labels = [k for _ in range(per_class) for k in range(10)]
        _dump(folder / f"data_batch_{b}", {b"data": _cifar_array(labels, range(10), b * 1000), b"labels": labels})
    labels = [k for _ in range(test_per_class) for k in range(10)]
    _dump(folder / "test_batch", {b"data": _cifar_array(labels, range(10), 90_000), b"labels": labels})
    _dump(folder / "batches.meta", {b"label_names": [n.encode() for n in names], b"num_cases_per_batch": 10 * per_class})
    if tar:
        _tar(folder, Path(root) / "cifar-10-python.tar.gz")
        _remove_tree(folder)
    return Path(root)


def _remove_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    folder.rmdir()
