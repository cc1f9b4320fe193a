"""The default run, as a student first meets it: ``python -m cnnviz train --dataset shapes``, over seeds.

Each seed runs the real command line in a child process with a fresh CNNVIZ_HOME (so the shapes are
generated again and nothing is cached), and reports its best validation accuracy, the trainer's own
seconds and the wall time of the whole command (interpreter start, imports, data, training, saving).
The goal: at least 90% on every seed within 60 s on two CPU cores.

    python benchmarks/bench_defaults.py               # seeds 0 1 2, 2 threads
    python benchmarks/bench_defaults.py --seeds 0 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL_ACC, GOAL_SECONDS = 0.90, 60.0


def run_default(seed: int, threads: int, extra: list[str]) -> dict:
    """One ``train --dataset shapes --seed SEED --json`` in a child process; its report plus the wall time."""
    env = {**os.environ, "CNNVIZ_HOME": tempfile.mkdtemp(prefix="cnnviz-bench-defaults-"),
           "OMP_NUM_THREADS": str(threads), "CNNVIZ_OFFLINE": "1"}
    load = os.getloadavg()[0]
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "cnnviz", "train", "--dataset", "shapes", "--seed", str(seed),
                           "--json", *extra], capture_output=True, text=True, cwd=ROOT, env=env)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        sys.exit(f"seed {seed} failed ({done.returncode}):\n{done.stderr}")
    report = json.loads(done.stdout)
    return {"seed": seed, "acc": report["best_val_acc"], "train_s": report["train_seconds"], "wall_s": wall,
            "load": load, "describe": f"{report['config']['arch']} {report['config']['epochs']} epochs"}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS of each run (default 2)")
    p.add_argument("extra", nargs="*", help="more train flags after --, e.g. -- --epochs 4")
    args = p.parse_args()
    print(f"# python -m cnnviz train --dataset shapes {' '.join(args.extra)}, {args.threads} threads, "
          f"{os.cpu_count()} CPUs", flush=True)
    print("| seed | best val acc | train s | wall s | load avg before |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    rows = []
    for seed in args.seeds:
        row = run_default(seed, args.threads, args.extra)
        rows.append(row)
        print(f"| {seed} | {row['acc']:.3f} | {row['train_s']:.1f} | {row['wall_s']:.1f} | {row['load']:.2f} |",
              flush=True)
    ok = all(r["acc"] >= GOAL_ACC and r["wall_s"] <= GOAL_SECONDS for r in rows)
    print(f"# {rows[0]['describe']}; min acc {min(r['acc'] for r in rows):.3f}, max wall "
          f"{max(r['wall_s'] for r in rows):.1f} s: {'meets' if ok else 'misses'} the goal "
          f"(>= {GOAL_ACC:.0%} within {GOAL_SECONDS:.0f} s, every seed); load average now {os.getloadavg()[0]:.2f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
