"""Disk use of checkpoints: per student, against a budget, and a cleanup that keeps each student's best.

No torch here: the teacher's page lists sizes and deletes files without loading any model.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from cnnviz.runs.store import ACTIVE, Run, RunStore

DISK_WARN_FRACTION = 0.8  # warn once checkpoints fill this share of the budget, before it is full
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_bytes(text: str | int | float) -> int:
    """``"5GB"``, ``"2.5 GiB"``, ``"700MB"`` or a plain number of bytes, as bytes (ValueError otherwise)."""
    if isinstance(text, (int, float)):
        return int(text)
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS:
        raise ValueError(f"{text!r} is not a size: write e.g. 5GB, 700MB or 2.5GiB")
    return int(float(match.group(1)) * _UNITS[unit])


def disk_budget(env: dict | None = None) -> int | None:
    """The checkpoint disk budget from ``CNNVIZ_DISK_BUDGET`` (e.g. ``5GB``), or None when unset."""
    value = (env if env is not None else os.environ).get("CNNVIZ_DISK_BUDGET", "").strip()
    return parse_bytes(value) if value else None


def _file_size(path: str | None) -> int:
    try:
        return Path(path).stat().st_size if path else 0
    except OSError:
        return 0


def checkpoint_bytes(run: Run) -> int:
    """The size of ``run``'s best checkpoint file (0 when it has none on disk)."""
    return _file_size(run.checkpoint)


NO_RUN = None  # disk_use_by_student's key for files in the checkpoint folder that no run points to


def run_files(store: RunStore, run: Run) -> set[Path]:
    """The checkpoint files ``run`` holds on disk (``RunStore.checkpoint_files`` that exist), resolved: a
    home spelled two ways is one folder."""
    return {p.resolve() for p in store.checkpoint_files(run) if p.is_file()}


def disk_use_by_student(store: RunStore) -> dict[str | None, int]:
    """Bytes of checkpoint files per student (``""``: runs without a student; ``NO_RUN``: files in the
    checkpoint folder no run points to), largest first. The values add up to ``checkpoint_folder_bytes``
    for a folder that holds only checkpoint files."""
    use: dict[str | None, int] = {}
    owned: set[Path] = set()
    for run in store.list():
        files = run_files(store, run) - owned
        owned |= files
        size = sum(_file_size(str(p)) for p in files)
        if size:
            use[run.student] = use.get(run.student, 0) + size
    stray = sum(_file_size(str(p)) for p in _folder_files(store) if p.resolve() not in owned)
    if stray:
        use[NO_RUN] = stray
    return dict(sorted(use.items(), key=lambda item: -item[1]))


def _folder_files(store: RunStore) -> list[Path]:
    folder = store.checkpoint_dir
    return [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []


def checkpoint_folder_bytes(store: RunStore) -> int:
    """Every file under the store's checkpoint folder, whether a run still points to it or not."""
    return sum(_file_size(str(p)) for p in _folder_files(store))


@dataclass(frozen=True)
class DiskStatus:
    """Checkpoint bytes against the budget; ``warning`` is a sentence once 80% of it is used."""

    used: int
    budget: int | None
    warning: str | None

    @property
    def fraction(self) -> float | None:
        """Share of the budget used (None without a budget)."""
        return self.used / self.budget if self.budget else None


def disk_status(store: RunStore, *, budget: int | None = None) -> DiskStatus:
    """How full the checkpoint folder is against ``budget`` (default: ``CNNVIZ_DISK_BUDGET``)."""
    budget = budget if budget is not None else disk_budget()
    used = checkpoint_folder_bytes(store)
    warning = None
    if budget and used >= DISK_WARN_FRACTION * budget:
        full = "is full" if used >= budget else f"is {used / budget:.0%} full"
        warning = (f"checkpoints use {used / 1e9:.2f} GB: the disk budget of {budget / 1e9:.2f} GB {full}; "
                   "keep each student's best checkpoints and delete the rest")
    return DiskStatus(used=used, budget=budget, warning=warning)


def _rank(run: Run) -> tuple:
    # Best validation accuracy first; among equals (or runs without one) the newest.
    return (run.best_val_acc is None, -(run.best_val_acc or 0.0), -run.id)


def cleanup_checkpoints(store: RunStore, *, keep_best: int) -> int:
    """Delete checkpoint files beyond each student's ``keep_best`` best runs; returns the bytes freed.

    A queued or running run's files are never touched (nor counted against its student's N);
    cleaned runs keep their metrics and lose only their weights.
    """
    if keep_best < 0:
        raise ValueError("keep_best must be 0 or more")
    by_student: dict[str, list[Run]] = {}
    for run in store.list():
        if run.status not in ACTIVE and checkpoint_bytes(run):
            by_student.setdefault(run.student, []).append(run)
    freed = 0
    for runs in by_student.values():
        for run in sorted(runs, key=_rank)[keep_best:]:
            freed += _delete_checkpoint(store, run)
    return freed


def _delete_checkpoint(store: RunStore, run: Run) -> int:
    size = checkpoint_bytes(run)
    Path(run.checkpoint).unlink(missing_ok=True)
    with store._write() as conn:  # same package: the store's own write path
        conn.execute("UPDATE runs SET checkpoint=NULL WHERE id=? AND checkpoint=?", (run.id, run.checkpoint))
    return size
