"""``submit``: queue a run for the workers (the same flags as ``train``) and print its id."""

from __future__ import annotations

from cnnviz.cli.common import add_student_flag, print_json
from cnnviz.cli.train import add_run_flags, check_config, check_init, config_from_args


def add_parser(sub) -> None:
    """Register ``submit`` with ``train``'s flags."""
    p = sub.add_parser("submit", help="queue a run for the workers and print its id",
                       description="Takes train's flags; a worker (python -m cnnviz worker, or the app's own) "
                                   "trains it when its turn comes.")
    add_run_flags(p)
    add_student_flag(p)
    p.add_argument("--json", action="store_true", help='print {"run_id": N, "status": "queued"}')
    p.set_defaults(func=run)


def run(args) -> int:
    """Queue the configured run."""
    from cnnviz.jobs import submit
    from cnnviz.runs import RunStore

    config = config_from_args(args)
    check_config(config, command="submit")
    check_init(config)  # a wrong weights file is refused here, not later in a worker
    store = RunStore()
    run_id = submit(config, student=args.student, name=config.name or None, store=store)
    position = store.queue_position(run_id)
    if args.json:
        print_json({"run_id": run_id, "status": "queued"})
    else:
        print(f"run {run_id} queued for {args.student}" + (f" (position {position} in line)" if position else ""))
    return 0
