"""The app's own workers: ``python -m cnnviz worker`` subprocesses, sized to the cores, replaced when one dies.

``streamlit run app.py`` calls ``ensure_workers(store)`` once per server process, so one command
still does everything on one machine. Workers are started as new interpreters (``Popen``, never
``fork`` of a process that has imported torch), stop with the server (``atexit``, and each worker
exits when its parent does), and a crash of one never touches the server: its run is marked
``interrupted`` and ``check()`` starts a replacement.

``CNNVIZ_WORKERS`` (0: none, for a server whose workers run elsewhere) and ``CNNVIZ_THREADS``
(torch threads per run) override the sizes derived from the cores; ``CNNVIZ_WORKER_NICE`` sets how
far below the web server the workers' CPU priority is.
"""

from __future__ import annotations

import atexit
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from cnnviz.device import usable_cores
from cnnviz.runs.store import RunStore

log = logging.getLogger(__name__)

MONITOR_SECONDS = 2.0  # how often the pool looks for a dead worker
WORKER_NICENESS = 5  # training yields the CPU to the web server's page scripts (CNNVIZ_WORKER_NICE overrides)
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding the cnnviz package


def default_sizes(cores: int | None = None) -> tuple[int, int]:
    """(workers, torch threads per run) with workers x threads <= cores.

    Small CNNs scale worse over threads than over processes (measured in benchmarks/README.md),
    so a class gets more runs side by side with few threads each: 1 thread up to 2 cores, then 2,
    then 4 from 16 cores.
    """
    cores = cores or usable_cores()[0]
    threads = 1 if cores <= 2 else 2 if cores < 16 else 4
    return max(1, cores // threads), threads


def worker_niceness(env: dict | None = None) -> int:
    """How much lower than the server's the workers' CPU priority is: ``CNNVIZ_WORKER_NICE`` (0-19), else
    ``WORKER_NICENESS``. Niceness only matters while both want the CPU: idle pages cost training nothing."""
    value = (os.environ if env is None else env).get("CNNVIZ_WORKER_NICE", "").strip()
    try:
        return WORKER_NICENESS if value == "" else min(19, max(0, int(value)))
    except ValueError:
        log.warning("CNNVIZ_WORKER_NICE=%r is not a whole number from 0 to 19: using %d", value, WORKER_NICENESS)
        return WORKER_NICENESS


def configured_sizes(env: dict | None = None) -> tuple[int, int]:
    """(workers, threads) from ``CNNVIZ_WORKERS`` / ``CNNVIZ_THREADS``, else ``default_sizes()``."""
    env = os.environ if env is None else env
    workers, threads = default_sizes()
    if env.get("CNNVIZ_THREADS"):
        threads = max(1, int(env["CNNVIZ_THREADS"]))
        workers = max(1, usable_cores()[0] // threads)
    if env.get("CNNVIZ_WORKERS") not in (None, ""):
        workers = max(0, int(env["CNNVIZ_WORKERS"]))
    return workers, threads


class WorkerPool:
    """``count`` local worker processes training runs from the store at ``home``."""

    def __init__(self, home: Path | str, *, count: int, threads: int):
        self.home = Path(home)
        self.count = count
        self.threads = threads
        self.processes: list[subprocess.Popen] = []
        self.replaced = 0
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._monitor: threading.Thread | None = None

    def start(self) -> "WorkerPool":
        """Start the workers and a thread that replaces any that die."""
        with self._lock:
            while len(self.processes) < self.count:
                self.processes.append(self._spawn(len(self.processes)))
        if self._monitor is None:
            self._monitor = threading.Thread(target=self._watch, name="cnnviz-worker-pool", daemon=True)
            self._monitor.start()
        return self

    def check(self) -> int:
        """Replace workers that exited (their runs are marked interrupted); returns how many were replaced."""
        if self._closed.is_set():
            return 0
        replaced = 0
        with self._lock:
            for i, proc in enumerate(self.processes):
                if proc.poll() is not None:
                    log.warning("worker %s exited with %s; starting another", proc.pid, proc.returncode)
                    self.processes[i] = self._spawn(i)
                    replaced += 1
        if replaced:
            self.replaced += replaced
            RunStore(self.home).mark_interrupted()
        return replaced

    def pids(self) -> list[int]:
        """The pids of the workers running now."""
        with self._lock:
            return [p.pid for p in self.processes if p.poll() is None]

    def stop(self, timeout: float = 10.0) -> None:
        """Ask every worker to stop (its run ends within one batch, marked interrupted), then wait."""
        self._closed.set()
        with self._lock:
            processes, self.processes = self.processes, []
        for proc in processes:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + timeout
        for proc in processes:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _spawn(self, index: int) -> subprocess.Popen:
        logs = self.home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "CNNVIZ_HOME": str(self.home), "OMP_NUM_THREADS": str(self.threads),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(_PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))}
        command = [sys.executable, "-m", "cnnviz", "worker", "--threads", str(self.threads), "--exit-with-parent",
                   "--nice", str(worker_niceness())]
        with open(logs / f"worker-{index}.log", "ab") as out:
            return subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    cwd=str(_PACKAGE_ROOT))

    def _watch(self) -> None:
        while not self._closed.wait(MONITOR_SECONDS):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - the monitor must outlive any one failure
                log.exception("worker pool check failed")


_POOLS: dict[str, WorkerPool] = {}
_POOLS_LOCK = threading.Lock()


def ensure_workers(store: RunStore | None = None, *, count: int | None = None,
                   threads: int | None = None) -> WorkerPool | None:
    """The local workers of ``store``, started on the first call in this process; None when ``CNNVIZ_WORKERS=0``."""
    store = store or RunStore()
    workers, per_run = configured_sizes()
    count = workers if count is None else count
    threads = per_run if threads is None else threads
    if count <= 0:
        return None
    key = str(store.path.resolve())
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            pool = _POOLS[key] = WorkerPool(store.home, count=count, threads=threads).start()
            atexit.register(pool.stop)
    pool.check()
    return pool


def stop_all() -> None:
    """Stop every pool this process started."""
    with _POOLS_LOCK:
        pools = list(_POOLS.values())
        _POOLS.clear()
    for pool in pools:
        pool.stop()
