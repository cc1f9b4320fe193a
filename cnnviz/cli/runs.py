"""``runs list|show|export|rename|delete|stop|resume``: the run store from the command line (no torch needed)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from cnnviz.cli.common import Parser, epoch_line, fmt, print_json


def add_parser(sub) -> None:
    """Register ``runs`` and its actions."""
    p = sub.add_parser("runs", help="list, show, export, rename, delete, stop or resume runs")
    runs = p.add_subparsers(dest="action", parser_class=Parser, metavar="ACTION", required=True)
    q = runs.add_parser("list", help="all runs, newest first")
    q.add_argument("--status", action="append", help="only runs with this status (repeatable)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=list_runs)
    q = runs.add_parser("show", help="one run: config, results, epochs")
    q.add_argument("run_id", type=int, metavar="ID")
    q.add_argument("--json", action="store_true", help="the JSON run card")
    q.set_defaults(func=show)
    q = runs.add_parser("export", help="a run's epochs as CSV (or its JSON run card with --json)")
    q.add_argument("run_id", type=int, metavar="ID")
    q.add_argument("--json", action="store_true", help="the JSON run card instead of CSV")
    q.add_argument("--output", "-o", type=Path, help="write to this file instead of stdout")
    q.set_defaults(func=export)
    q = _one_run(runs, "rename", "give a run a name", rename)
    q.add_argument("name")
    _one_run(runs, "delete", "delete a run and its checkpoint", delete)
    _one_run(runs, "stop", "stop a run: a queued one at once, a running one within one batch", stop)
    _one_run(runs, "resume", "queue a stopped or interrupted run to continue from its last saved epoch", resume)


def _one_run(runs, name: str, help: str, func):
    """A ``runs`` subcommand that acts on one run: ``ID`` and ``--json``."""
    q = runs.add_parser(name, help=help)
    q.add_argument("run_id", type=int, metavar="ID")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=func)
    return q


def _store():
    from cnnviz.runs import RunStore

    return RunStore()


def _when(timestamp: float | None) -> str:
    return "-" if timestamp is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def list_runs(args) -> int:
    """One line per run, newest first."""
    store = _store()
    runs = store.list(tuple(args.status) if args.status else None)
    if args.json:
        print_json([{**r.summary(), "epochs_done": len(store.epochs(r.id))} for r in runs])  # student, times too
        return 0
    if not runs:
        print(f"no runs yet in {store.path}")
        return 0
    print(f"{'id':>4}  {'name':<24} {'student':<12} {'arch':<14} {'dataset':<12} {'mode':<9} {'status':<11} "
          f"{'val acc':>7} {'epochs':>6} {'time':>8}  created")
    for r in runs:
        done = len(store.epochs(r.id))
        print(f"{r.id:>4}  {r.label[:24]:<24} {(r.student or '-')[:12]:<12} {r.config.arch[:14]:<14} {r.config.dataset[:12]:<12} "
              f"{r.config.mode:<9} {r.status:<11} {fmt(r.best_val_acc, '.3f'):>7} {f'{done}/{r.config.epochs}':>6} "
              f"{fmt(r.train_seconds, '.1f'):>7}s  {_when(r.created_at)}")
    return 0


def show(args) -> int:
    """One run: its config, results and epochs."""
    store = _store()
    card = store.run_card(args.run_id)
    if args.json:
        print_json(card)
        return 0
    run, res = store.get(args.run_id), card["results"]
    print(f"run {run.id}: {run.label}  [{run.status}]" + (f"  {run.message}" if run.message else ""))
    print(f"  {run.config.describe()}")
    print(f"  created {_when(run.created_at)}, started {_when(run.started_at)}, finished {_when(run.finished_at)}")
    if res["params"] is not None:
        print(f"  parameters {res['params']:,}, FLOPs {res['flops'] or 0:,}, classes {', '.join(res['classes'][:10])}"
              + (" ..." if len(res["classes"]) > 10 else ""))
    if run.best_epoch:
        print(f"  best val acc {fmt(run.best_val_acc)} at epoch {run.best_epoch}, "
              f"training time {fmt(run.train_seconds, '.1f')} s")
        print(f"  test acc {fmt(run.test_acc)} (once, on the best-validation weights)" if run.test_acc is not None
              else "  no test set evaluated")
    if run.checkpoint:
        print(f"  checkpoint {run.checkpoint}")
    for row in card["epochs"]:
        print("  " + epoch_line(row))
    return 0


def export(args) -> int:
    """A run's epochs as CSV, or its JSON run card."""
    store = _store()
    text = json.dumps(store.run_card(args.run_id), indent=2) + "\n" if args.json else store.export_csv(args.run_id)
    if args.output:
        args.output.write_text(text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def rename(args) -> int:
    """Give a run a name."""
    store = _store()
    store.rename(args.run_id, args.name)
    if args.json:
        print_json({"run_id": args.run_id, "name": store.get(args.run_id).label})
    else:
        print(f"run {args.run_id} is now called {store.get(args.run_id).label!r}")
    return 0


def delete(args) -> int:
    """Delete a run and its checkpoint."""
    store = _store()
    store.delete(args.run_id)
    if args.json:
        print_json({"deleted": args.run_id})
    else:
        print(f"deleted run {args.run_id}")
    return 0


def stop(args) -> int:
    """Stop a queued or running run."""
    from cnnviz.jobs import stop as stop_run

    store = _store()
    asked = stop_run(args.run_id, store=store)
    status = store.get(args.run_id).status
    if args.json:
        print_json({"run_id": args.run_id, "stopping": asked, "status": status})
    elif not asked:
        print(f"run {args.run_id} had already ended ({status})")
    else:
        print(f"run {args.run_id}: " + ("stopped" if status == "stopped" else "stopping within one batch"))
    return 0


def resume(args) -> int:
    """Queue a stopped, interrupted or failed run to continue from its last saved epoch."""
    from cnnviz.jobs import resume as resume_run

    store = _store()
    run_id = resume_run(args.run_id, store=store)
    run = store.get(run_id)
    if args.json:
        print_json({"run_id": run_id, "status": run.status, "message": run.message})
    else:
        print(f"run {run_id} {run.message}; a worker continues it (python -m cnnviz worker, or the app's own)")
    return 0
