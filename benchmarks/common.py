"""Shared bits of the benchmarks: arguments, a private cnnviz home, the real data, a results table.

Benchmarks are scripts, not tests: each runs cnnviz and a plain hand-written PyTorch loop on the
same data in the same invocation and prints a small table with the ratio.
"""

from __future__ import annotations

import argparse
import os
import subprocess
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


# -- a running app, for the benchmarks that drive it as a class would --------------------------------

CHROMIUM = Path(os.environ.get("CNNVIZ_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthy(url: str, timeout: float = 2.0) -> bool:
    """Whether the app at ``url`` answers 200 on ``/_stcore/health``."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


def start_app(home: Path, *, workers: int, threads: int = 1, port: int | None = None,
              wait: float = 120.0, root: Path = ROOT) -> tuple[subprocess.Popen, str]:
    """``streamlit run app.py`` on 127.0.0.1 with ``CNNVIZ_HOME=home`` and ``workers`` workers; (process, url).

    ``root``: the checkout whose app runs (another commit's worktree, for a baseline in the same invocation).
    """
    port = port or free_port()
    env = dict(os.environ, CNNVIZ_HOME=str(home), CNNVIZ_DATA=str(home / "data"), CNNVIZ_WORKERS=str(workers),
               CNNVIZ_THREADS=str(threads), PYTHONPATH=str(root))
    log = open(home / "streamlit.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.headless", "true", "--server.address", "127.0.0.1",
                             "--browser.gatherUsageStats", "false"],
                            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + wait
    while not healthy(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            tail = (home / "streamlit.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the app did not start; log:\n{tail}")
        time.sleep(0.5)
    return proc, url


def open_app(url: str) -> None:
    """Open the Home page in headless Chromium once: the server runs ``app.py``, which starts its workers."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page()
            tab.goto(url, timeout=120_000)
            tab.locator("h1").first.wait_for(timeout=120_000)
        finally:
            browser.close()


def child_pids(pid: int) -> list[int]:
    """The direct children of ``pid`` (the app's workers), from /proc: every thread's, as threads start them."""
    children: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children.update(int(p) for p in (task / "children").read_text().split())
        except OSError:
            pass
    return sorted(children)


def stop_app(proc, timeout: float = 20.0) -> None:
    """SIGTERM the app (its pool stops the workers at exit), SIGKILL after ``timeout``."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values`` by linear interpolation; nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    at = (len(ordered) - 1) * q / 100
    low = int(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)
