"""A class at once: N students submit the same run; the worker pool against one worker training them in turn.

Both sides drain the same queue of runs through real ``python -m cnnviz worker`` processes and real
SQLite stores, in this one invocation:

- one after another: one worker with every core's threads (the old "one run at a time");
- the pool: ``cnnviz.jobs.pool``'s default sizes (or ``--workers``/``--threads``).

Prints the makespan of each and their ratio (target <= 1.15), each student's wait for a first
result (submit -> first finished epoch in the store) and the workers' peak memory (VmHWM).

    python benchmarks/bench_class.py                     # 30 students, the reduced default run
    python benchmarks/bench_class.py --students 6        # a quick look
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cnnviz.jobs import submit  # noqa: E402
from cnnviz.device import usable_cores  # noqa: E402
from cnnviz.jobs.pool import default_sizes  # noqa: E402
from cnnviz.recipes import default_config  # noqa: E402
from cnnviz.runs import RunStore  # noqa: E402


def start_workers(home: Path, count: int, threads: int) -> list[subprocess.Popen]:
    env = {**os.environ, "CNNVIZ_HOME": str(home), "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    return [subprocess.Popen([sys.executable, "-m", "cnnviz", "worker", "--threads", str(threads)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT) for _ in range(count)]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def drain(config, *, students: int, workers: int, threads: int, data_home: Path) -> dict:
    """Queue one run per student, train them all with ``workers`` x ``threads``; timings and memory."""
    home = Path(tempfile.mkdtemp(prefix="cnnviz-class-"))
    (home / "cache").symlink_to(data_home / "cache", target_is_directory=True)  # decoded data shared, warm
    store = RunStore(home)
    began = time.time()
    ids = [submit(config, student=f"student-{i:02d}", store=store) for i in range(students)]
    procs = start_workers(home, workers, threads)
    first: dict[int, float] = {}
    peak = 0.0
    try:
        while True:
            runs = {r.id: r for r in store.list()}
            for run_id in ids:
                if run_id not in first and store.epochs(run_id):
                    first[run_id] = time.time() - runs[run_id].created_at
            peak = max([peak] + [peak_rss_mb(p.pid) for p in procs if p.poll() is None])
            if not any(r.active for r in runs.values()):
                break
            time.sleep(0.5)
        makespan = time.time() - began
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
    bad = [r.status for r in store.list() if r.status != "finished"]
    assert not bad, f"runs did not finish: {bad}"
    waits = sorted(first.values())
    return {"makespan": makespan, "wait_median": statistics.median(waits), "wait_max": waits[-1], "peak_mb": peak}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--students", type=int, default=30)
    p.add_argument("--epochs", type=int, default=2, help="the default run's epochs (reduced: see README)")
    p.add_argument("--subset", type=int, default=40, help="images per class (reduced: see README)")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    cores = usable_cores()[0]
    workers, threads = default_sizes(cores)
    workers, threads = args.workers or workers, args.threads or threads
    config = default_config(epochs=args.epochs, subset=args.subset, val_subset=10, device="cpu")
    data_home = Path(tempfile.mkdtemp(prefix="cnnviz-class-data-"))
    (data_home / "cache").mkdir()
    warm = drain(config, students=1, workers=1, threads=cores, data_home=data_home)  # decode the data once
    print(f"{cores} cores; run: {config.describe()}; one run alone {warm['makespan']:.1f} s (warm-up)")
    serial = drain(config, students=args.students, workers=1, threads=cores, data_home=data_home)
    pool = drain(config, students=args.students, workers=workers, threads=threads, data_home=data_home)
    print(f"{'':<28}{'makespan s':>11}{'first result median s':>23}{'max s':>8}{'peak RSS MB/worker':>20}")
    for label, r in ((f"one after another (1x{cores})", serial), (f"pool ({workers}x{threads})", pool)):
        print(f"{label:<28}{r['makespan']:>11.1f}{r['wait_median']:>23.1f}{r['wait_max']:>8.1f}{r['peak_mb']:>20.0f}")
    print(f"makespan ratio pool / one after another: {pool['makespan'] / serial['makespan']:.2f} (target <= 1.15)")


if __name__ == "__main__":
    main()
