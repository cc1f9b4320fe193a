"""``report --run ID | --experiment KEY [--format md|html] [-o FILE]``: a lab report to hand in."""

from __future__ import annotations

import sys
from pathlib import Path

from cnnviz.cli.common import UsageError


def add_parser(sub) -> None:
    """Register ``report``."""
    p = sub.add_parser("report", help="a lab report of a run or of an experiment's last group (Markdown or HTML)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", type=int, metavar="ID", help="the run to report on")
    which.add_argument("--experiment", metavar="KEY", help="the experiment whose last launched group to report on")
    p.add_argument("--format", choices=("md", "html"), default=None,
                   help="md (default) or html: one self-contained page with the charts embedded")
    p.add_argument("--output", "-o", type=Path, help="write to this file (its suffix picks the format) instead of stdout")
    p.set_defaults(func=run)


def build_report(store, *, run_id: int | None = None, experiment: str | None = None):
    """The ``Report`` of a run (with its experiment's published figures) or of an experiment's last group."""
    import cnnviz.experiments as ex
    from cnnviz.reports import experiment_report, run_report

    if experiment is not None:
        exp = ex.get_experiment(experiment)
        outcomes = ex.group_outcomes(exp, store)
        if not outcomes:
            raise UsageError(f"{experiment} has no launched group in {store.path}; run "
                             f"`python -m cnnviz reproduce {experiment}` or launch it from the Experiments page")
        return experiment_report(ex.report_summary(exp, outcomes), store)
    run = store.get(run_id)
    published = []
    tag = ex.run_tag(run)
    if tag:
        try:
            exp = ex.get_experiment(tag[0])
        except ValueError:
            exp = None
        if exp is not None:
            published = ex.published_rows(exp, ex.outcome_from_run(run, store.epochs(run.id)))
    return run_report(store, run.id, published=published)


def run(args) -> int:
    """Write the report to stdout or ``--output``."""
    from cnnviz.reports import render
    from cnnviz.runs import RunStore

    fmt = args.format or ("html" if args.output and args.output.suffix.lower() in (".html", ".htm") else "md")
    text = render(build_report(RunStore(), run_id=args.run, experiment=args.experiment), fmt)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
