"""``worker``: claim queued runs from the run store and train them, until stopped (or once with ``--once``)."""

from __future__ import annotations

import logging
import os
import sys

from cnnviz.cli.common import PROG, UsageError, print_json


def add_parser(sub) -> None:
    """Register ``worker``."""
    p = sub.add_parser("worker", help="train queued runs from the run store (the app starts its own)",
                       description="Claims the fair next queued run, trains it, repeats. Start as many as the "
                                   "machine has room for: runs x threads <= cores.")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads per run (default: CNNVIZ_THREADS, else derived from the cores)")
    p.add_argument("--once", action="store_true", help="train at most one queued run, then exit")
    p.add_argument("--executor", choices=("local", "ray"), default=os.environ.get("CNNVIZ_EXECUTOR") or "local",
                   help="local: train in this process; ray: hand each run to a Ray cluster (default: "
                        "CNNVIZ_EXECUTOR, else local)")
    p.add_argument("--address", default=os.environ.get("RAY_ADDRESS"),
                   help="the Ray cluster's address (default: RAY_ADDRESS)")
    p.add_argument("--exit-with-parent", action="store_true",
                   help="exit when the process that started this worker exits (the app's own workers)")
    p.add_argument("--nice", type=int, default=0, help="lower this worker's CPU priority by N")
    p.add_argument("--json", action="store_true", help="with --once: print whether a run was trained")
    p.set_defaults(func=run)


def make_executor(kind: str, address: str | None):
    """The executor named on the command line (Ray is imported only when asked for)."""
    if kind == "ray":
        try:
            from cnnviz.jobs.ray_executor import RayExecutor
        except ImportError as exc:
            raise UsageError(f"--executor ray needs Ray installed ({exc}); pip install 'ray[default]'") from None
        return RayExecutor(address=address)
    from cnnviz.jobs import LocalExecutor

    return LocalExecutor()


def run(args) -> int:
    """Train queued runs until stopped."""
    if args.nice:  # first: the imports below (torch) already compete with the web server for the cores
        os.nice(args.nice)
    from cnnviz.jobs import Worker
    from cnnviz.jobs.pool import configured_sizes
    from cnnviz.runs import RunStore

    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(process)d: %(message)s", stream=sys.stderr)
    threads = args.threads or configured_sizes()[1]
    worker = Worker(RunStore(), executor=make_executor(args.executor, args.address), threads=threads,
                    exit_with_parent=args.exit_with_parent)
    print(f"{PROG} worker {worker.name}: {threads} torch thread(s), {args.executor} executor", file=sys.stderr)
    if args.once:
        trained = worker.run_once()
        if args.json:
            print_json({"worker": worker.name, "trained": trained})
        return 0
    worker.run_forever()
    return 0
