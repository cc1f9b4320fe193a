"""Read-only file trees (a folder or a .zip) and the class-folder layouts found in them.

A zip is never extracted: members are read into memory one by one. Before
anything is read the whole archive is checked: member paths that would escape
it (absolute, ``..``), too many members, too many bytes once uncompressed and
compression ratios only a zip bomb has are refused with a ``DatasetError``.
"""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from cnnviz.data.base import DatasetError
from cnnviz.data.images import EXTENSIONS

# The single-picture loader's extensions, plus netpbm files that datasets sometimes ship.
IMAGE_EXTENSIONS = {f".{ext}" for ext in EXTENSIONS} | {".ppm", ".pgm"}
# Largest .zip of class folders an uploader takes: Streamlit holds an upload in memory, and a class server
# may have under 3 GB. Enough for the course's datasets as JPEGs (CIFAR-10 ~60 MB, hymenoptera ~45 MB).
MAX_ZIP_MB = 200
MAX_MEMBERS = 500_000  # CIFAR-10 as JPEGs is 60,000
MAX_TOTAL_BYTES = 8 * 1024**3  # uncompressed; ImageNet-sized uploads are out of scope for a class
MAX_RATIO = 100  # JPEG/PNG barely compress; a ratio like this is a zip bomb
RATIO_CHECK_BYTES = 1024**2  # tiny members may legitimately compress well
MAX_FILE_BYTES = 256 * 1024**2  # one picture bigger than this is skipped as unreadable, never read into memory
SPLIT_DIRS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
_IGNORED = {"__MACOSX", "Thumbs.db", "desktop.ini"}


def _is_ignored(parts: tuple[str, ...]) -> bool:
    return any(p.startswith(".") or p in _IGNORED for p in parts)


def is_image_name(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in IMAGE_EXTENSIONS


class FileTree:
    """A folder or zip of files, addressed by relative POSIX paths."""

    path: Path
    key: str  # changes whenever the files change (path + mtime + size)

    def files(self) -> list[str]:
        raise NotImplementedError

    def dirs(self) -> list[str]:
        """Folders, including empty ones."""
        raise NotImplementedError

    def read(self, names: list[str]) -> list[bytes | None]:
        """The bytes of each file, None where it cannot be read."""
        raise NotImplementedError


class DirTree(FileTree):
    """A folder on disk (symlinked folders are not followed)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._files: list[str] = []
        self._dirs: list[str] = []
        count = total = latest = 0
        for dirpath, dirnames, filenames in os.walk(self.path):
            dirnames[:] = sorted(d for d in dirnames if not _is_ignored((d,)))
            self._dirs += [Path(dirpath, d).relative_to(self.path).as_posix() for d in dirnames]
            for name in sorted(filenames):
                full = Path(dirpath, name)
                rel = full.relative_to(self.path).as_posix()
                if _is_ignored(PurePosixPath(rel).parts):
                    continue
                self._files.append(rel)
                try:
                    st = full.stat()
                except OSError:
                    continue
                count, total, latest = count + 1, total + st.st_size, max(latest, st.st_mtime_ns)
        self.key = f"dir:{self.path.resolve()}:{count}:{total}:{latest}"

    def files(self) -> list[str]:
        return list(self._files)

    def dirs(self) -> list[str]:
        return list(self._dirs)

    def read(self, names: list[str]) -> list[bytes | None]:
        out: list[bytes | None] = []
        for name in names:
            try:
                path = self.path / name
                out.append(None if path.stat().st_size > MAX_FILE_BYTES else path.read_bytes())
            except OSError:
                out.append(None)
        return out


def _check_member_name(archive: Path, name: str) -> str:
    clean = name.replace("\\", "/")
    parts = PurePosixPath(clean).parts
    if clean.startswith("/") or re.match(r"^[A-Za-z]:", clean) or ".." in parts:
        raise DatasetError(f"refusing {archive.name}: member {name!r} points outside the archive; re-create the zip from the folder itself")
    return clean


def check_zip(archive: Path, infos: list[zipfile.ZipInfo]) -> None:
    """Refuse archives with escaping paths, too many members or bomb-like sizes (DatasetError)."""
    if len(infos) > MAX_MEMBERS:
        raise DatasetError(f"refusing {archive.name}: {len(infos):,} files is more than the {MAX_MEMBERS:,} allowed; split the dataset or use a subset")
    total = packed = 0
    for info in infos:
        _check_member_name(archive, info.filename)
        total += info.file_size
        packed += info.compress_size
        if info.file_size > RATIO_CHECK_BYTES and info.file_size > MAX_RATIO * max(1, info.compress_size):
            raise DatasetError(f"refusing {archive.name}: member {info.filename!r} expands {info.file_size // max(1, info.compress_size):,}x (a zip bomb?); use a zip of ordinary images")
    if total > MAX_TOTAL_BYTES:
        raise DatasetError(f"refusing {archive.name}: {total / 1024**3:.1f} GB uncompressed is more than the {MAX_TOTAL_BYTES / 1024**3:.0f} GB allowed; use a smaller dataset or a subset")
    if total > RATIO_CHECK_BYTES and total > MAX_RATIO * max(1, packed):
        raise DatasetError(f"refusing {archive.name}: it expands {total // max(1, packed):,}x when unpacked (a zip bomb?); use a zip of ordinary images")


class ZipTree(FileTree):
    """A .zip read in place after ``check_zip``, through one open handle."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self._zip = zipfile.ZipFile(self.path)  # kept open: re-reading a 60,000-entry directory per chunk costs seconds
            infos = self._zip.infolist()
        except (zipfile.BadZipFile, OSError) as exc:
            raise DatasetError(f"{self.path.name} is not a readable .zip file ({exc}); re-create it or pick another file") from None
        try:
            check_zip(self.path, infos)
        except DatasetError:
            self._zip.close()
            raise
        self._names: dict[str, zipfile.ZipInfo] = {}  # clean relative path -> member
        self._dirs: list[str] = []
        for info in infos:
            clean = _check_member_name(self.path, info.filename)
            if _is_ignored(PurePosixPath(clean).parts):
                continue
            if info.is_dir():
                self._dirs.append(clean.rstrip("/"))
            else:
                self._names[clean] = info
        st = self.path.stat()
        self.key = f"zip:{self.path.resolve()}:{st.st_mtime_ns}:{st.st_size}"

    def files(self) -> list[str]:
        return list(self._names)

    def dirs(self) -> list[str]:
        return list(self._dirs)

    def read(self, names: list[str]) -> list[bytes | None]:
        out: list[bytes | None] = []
        for name in names:  # ZipFile serialises concurrent reads of its shared handle itself
            info = self._names[name]
            if info.file_size > MAX_FILE_BYTES:
                out.append(None)
                continue
            try:
                out.append(self._zip.read(info))
            except Exception:  # CRC errors, encrypted members, truncated archives: that file is unreadable
                out.append(None)
        return out

    def __del__(self):
        zf = getattr(self, "_zip", None)
        if zf is not None:
            zf.close()


def open_tree(path: Path) -> FileTree:
    """A ``ZipTree`` for a .zip file, a ``DirTree`` for a folder; DatasetUnavailable/DatasetError otherwise."""
    path = Path(path).expanduser()
    if path.is_dir():
        return DirTree(path)
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise DatasetError(f"{path.name} is neither a folder nor a .zip file; give a folder of class folders or a .zip of one")
        return ZipTree(path)
    raise DatasetError(f"{path} does not exist; give a folder of class folders or a .zip of one")


@dataclass
class ClassFolders:
    """Image files found under class folders, per split (``train`` and, when present, ``val``/``test``)."""

    classes: list[str]
    splits: dict[str, list[tuple[str, int]]]  # split -> [(file name in the tree, class index)]
    ignored: int = 0  # image files outside any class folder


def _wrapper_depth(paths: list[tuple[str, ...]]) -> int:
    """How many top-level folders wrap everything (``hymenoptera_data/``), keeping at least class/file."""
    depth = 0
    while paths and all(len(p) >= depth + 3 for p in paths) and len({p[depth] for p in paths}) == 1:
        if paths[0][depth].lower() in SPLIT_DIRS:
            break  # a lone train/ folder is a split, not a wrapper
        depth += 1
    return depth


def _folders(tree: FileTree, depth: int) -> set[tuple[str, ...]]:
    """Every folder in the tree (empty ones included), as parts below the wrappers."""
    found: set[tuple[str, ...]] = set()
    for name in [*tree.files(), *(d + "/x" for d in tree.dirs())]:
        parts = PurePosixPath(name).parts[depth:-1]
        for i in range(1, len(parts) + 1):
            found.add(parts[:i])
    return found


def find_class_folders(tree: FileTree, *, what: str) -> ClassFolders:
    """Find ``<class>/*`` or ``{train,val|test}/<class>/*`` (under optional wrapper folders) in ``tree``.

    ``what`` names the dataset in messages. Fewer than two classes, a class
    folder without images, or a val/test class that train lacks is a DatasetError.
    """
    names = [f for f in tree.files() if is_image_name(f)]
    parts = [PurePosixPath(f).parts for f in names]
    if not names:
        raise DatasetError(f"no images found in {what} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))}); put the pictures in one folder per class")
    depth = _wrapper_depth(parts)
    rel = [p[depth:] for p in parts]
    split_layout = any(len(p) >= 3 and p[0].lower() == "train" for p in rel)
    level = 2 if split_layout else 1  # how deep class folders sit below the wrappers
    by_split: dict[str, list[tuple[str, str]]] = {}
    ignored = 0
    for name, p in zip(names, rel):
        split = SPLIT_DIRS.get(p[0].lower(), None) if split_layout else "train"
        if split is None or len(p) <= level:
            ignored += 1  # loose pictures without a class folder cannot be labelled
            continue
        by_split.setdefault(split, []).append((name, p[level - 1]))
    if "train" not in by_split:
        raise DatasetError(f"{what} has no class folders; put the pictures in one folder per class (e.g. ants/, bees/)")
    classes = sorted({c for _, c in by_split["train"]})
    if len(classes) < 2:
        raise DatasetError(f"{what} has only one class ({classes[0]!r}); a classifier needs at least 2 class folders")
    present = {split: {c for _, c in items} for split, items in by_split.items()}
    for folder in sorted(_folders(tree, depth)):
        if len(folder) != level or (split_layout and SPLIT_DIRS.get(folder[0].lower()) is None):
            continue
        split = SPLIT_DIRS[folder[0].lower()] if split_layout else "train"
        if folder[-1] not in present.get(split, set()):
            raise DatasetError(f"{what}: class folder {'/'.join(folder)!r} has no images; add pictures to it or remove it")
    index = {c: i for i, c in enumerate(classes)}
    splits: dict[str, list[tuple[str, int]]] = {}
    for split, items in by_split.items():
        unknown = sorted({c for _, c in items} - set(index))
        if unknown:
            raise DatasetError(f"{what}: {split} has class folder {unknown[0]!r} that train does not have; use the same class folders in every split")
        splits[split] = [(name, index[c]) for name, c in items]
    return ClassFolders(classes=classes, splits=splits, ignored=ignored)
