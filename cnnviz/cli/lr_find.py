"""``lr-find``: a short learning-rate sweep on the run the train flags describe; prints the suggested rate.

Takes every ``train`` flag (and ``--recipe``), so ``python -m cnnviz lr-find --dataset shapes``
sweeps the default run; nothing goes into the run store.
"""

from __future__ import annotations

import sys

from cnnviz.cli.common import PROG, fmt, print_json
from cnnviz.cli.train import add_run_flags, config_from_args, prepare


def add_parser(sub) -> None:
    """Register ``lr-find`` with the train flags and the sweep's own."""
    p = sub.add_parser("lr-find", help="sweep the learning rate over a few batches and suggest one",
                       description="The run is the one `train` with the same flags would start; the sweep grows "
                                   "the learning rate exponentially, one mini-batch per step (Smith 2015).")
    add_run_flags(p)
    p.add_argument("--start", type=float, default=1e-7, help="first learning rate (default 1e-7)")
    p.add_argument("--end", type=float, default=10.0, help="last learning rate (default 10)")
    p.add_argument("--steps", type=int, default=100, help="mini-batches in the sweep (default 100)")
    p.add_argument("--json", action="store_true", help='print {"suggested_lr": ..., "lrs": [...], "losses": [...]}')
    p.set_defaults(func=run)


def run(args) -> int:
    """Sweep and print the suggestion (exit 1 when the loss never went down)."""
    from cnnviz.training.lr_find import lr_find

    config = config_from_args(args)
    prepare(config, command="lr-find")
    print(f"sweeping lr {args.start:g} -> {args.end:g} over up to {args.steps} batches of {config.describe()}",
          file=sys.stderr)
    result = lr_find(config, start=args.start, end=args.end, steps=args.steps)
    if args.json:
        print_json(result.to_dict())
    else:
        for lr, loss in zip(result.lrs, result.losses):
            print(f"lr {lr:10.3g}  smoothed loss {fmt(loss)}")
        print(f"suggested lr: {fmt(result.suggested_lr, '.3g')}" if result.suggested_lr is not None
              else "no suggestion: the loss never went down (try a smaller --start or more --steps)")
    if result.suggested_lr is None:
        print(f"{PROG} lr-find: the loss never went down", file=sys.stderr)
        return 1
    return 0
