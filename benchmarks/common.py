"""Shared bits of the benchmarks: arguments, a private cnnviz home, the real data, a results table.

Benchmarks are scripts, not tests: each runs cnnviz and a plain hand-written PyTorch loop on the
same data in the same invocation and prints a small table with the ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("CNNVIZ_SHARED_DATA", ROOT.parent / "shared" / "data")).resolve()


def parser(description: str) -> argparse.ArgumentParser:
    """Arguments every benchmark takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data-root", default=str(SHARED_DATA), help="folder with hymenoptera_data.zip / cifar10.zip")
    p.add_argument("--home", default=None, help="CNNVIZ_HOME for decoded caches (default: a fresh temp folder)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0)
    return p


def setup(args: argparse.Namespace) -> Path:
    """Point CNNVIZ_HOME at the benchmark's own folder and set the thread count; returns the home."""
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="cnnviz-bench-"))
    os.environ["CNNVIZ_HOME"] = str(home)
    if sys.path[0] != str(ROOT):
        sys.path.insert(0, str(ROOT))
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    data_root = Path(args.data_root)
    if not data_root.is_dir():
        sys.exit(f"no data folder at {data_root}: pass --data-root (the folder with the shared zips)")
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs, home {home}", flush=True)
    return home


def extract(zip_path: Path, folder_inside: str) -> Path:
    """Extract ``zip_path`` to a temp folder for torchvision's ImageFolder (untimed set-up); returns the folder."""
    target = Path(tempfile.mkdtemp(prefix="cnnviz-bench-plain-"))
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(target)
    return target / folder_inside


@contextmanager
def timed(results: dict, name: str):
    """Record the wall time of the block in ``results[name]``."""
    began = time.perf_counter()
    yield
    results[name] = time.perf_counter() - began


def table(rows: list[dict], columns: list[str]) -> str:
    """A plain-text table (left-aligned first column, right-aligned numbers)."""
    def cell(v):
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
        return "" if v is None else str(v)

    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(columns, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for row in cells:
        lines.append("  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths))))
    return "\n".join(lines)
