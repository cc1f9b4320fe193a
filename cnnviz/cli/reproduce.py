"""``reproduce EXPERIMENT [--size quick|full] [--out DIR] [--json]``: run an experiment's plan in the
foreground, one run after another through the workers' own entry (``cnnviz.jobs.run_training``, so
the runs appear in the app), and write its results beside the published figures as Markdown and CSV."""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

from cnnviz.cli.common import UsageError, print_json

DEFAULT_OUT = Path("docs/results")


def add_parser(sub) -> None:
    """Register ``reproduce``."""
    p = sub.add_parser("reproduce", help="run an experiment's plan and write its table beside the published figures")
    p.add_argument("experiment", metavar="EXPERIMENT", help="an experiment key (exp1 ... exp6)")
    p.add_argument("--size", choices=("quick", "full"), default="quick", help="the plan's size (default quick)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"folder for the tables (default {DEFAULT_OUT})")
    p.add_argument("--dataset", help="a stand-in dataset for the experiment's own (e.g. shapes)")
    p.add_argument("--only", action="append", metavar="RUN_KEY", help="only this planned run (repeatable)")
    p.add_argument("--subset", type=int, help="override: training (and at most as many validation and test) "
                                              "images per class, for a fast check")
    p.add_argument("--epochs", type=int, help="override: epochs of every run")
    p.add_argument("--random-init", action="store_true",
                   help="runs planned from ImageNet weights start from random weights instead (a baseline, labelled "
                        "so in the table), where the weights files are not here")
    p.add_argument("--from-runs", type=int, nargs="+", metavar="RUN_ID",
                   help="train nothing: write the table from these finished runs of the experiment (e.g. trained "
                        "over several days); settings that differ from the plan are named in the table's header")
    p.add_argument("--json", action="store_true", help="print one JSON document (progress stays on stderr)")
    p.set_defaults(func=run)


def planned(args):
    """(experiment, the planned runs with the command line's overrides applied)."""
    import cnnviz.experiments as ex

    exp = ex.get_experiment(args.experiment)
    plans = exp.plan(ex.Choices(size=args.size, dataset=args.dataset))
    if getattr(args, "random_init", False):
        pretrained = {p.config.arch for p in plans if p.config.init == ex.IMAGENET}
        plans = exp.plan(ex.Choices(size=args.size, dataset=args.dataset, inits=dict.fromkeys(pretrained, ex.SCRATCH)))
    if args.only:
        unknown = set(args.only) - {p.key for p in plans}
        if unknown:
            raise UsageError(f"{exp.key} plans no run {sorted(unknown)[0]!r}; its runs: "
                             f"{', '.join(p.key for p in plans)}")
        plans = [p for p in plans if p.key in args.only]
    changes = {}
    if args.epochs:
        changes["epochs"] = args.epochs
    out = []
    for plan in plans:
        config = plan.config
        if args.subset:
            cap = lambda v: min(v, args.subset) if v else args.subset  # noqa: E731
            changes.update(subset=args.subset, val_subset=cap(config.val_subset), test_subset=cap(config.test_subset))
        out.append(ex.PlannedRun(plan.key, plan.label, config.replace(**changes) if changes else config))
    return exp, out


def missing(exp, plans) -> str | None:
    """What the planned runs need that is not on this machine (ImageNet weights, a dataset), and what
    to do, in one line; None when every run can start. Checked before any run trains: otherwise each
    would fail on its own after the ones before it had trained."""
    import cnnviz.experiments as ex

    weights = sorted({p.config.arch for p in plans if p.config.init == ex.IMAGENET
                      and not ex.imagenet_weights_available(p.config.arch)})
    if weights:
        files = "; ".join(ex.weights_file_hint(arch) for arch in weights)
        return (f"{exp.key} starts runs from ImageNet weights that are not here ({files}): run `python -m cnnviz "
                "prefetch` where there is internet or copy the files there, or add --random-init to train those runs "
                "from random weights as a baseline")
    for dataset in sorted({p.config.dataset for p in plans}):
        problem = ex.dataset_problem(dataset)
        if problem:
            return f"{exp.key} cannot run here: {problem} Or run it on a stand-in with --dataset (e.g. cifar10)"
    return None


def run(args) -> int:
    """Train every planned run in turn, then write ``<out>/<experiment>-<size>.md`` and ``.csv``."""
    import cnnviz.experiments as ex
    from cnnviz.jobs import run_training
    from cnnviz.runs import RunStore

    exp, plans = planned(args)
    store = RunStore()
    if args.from_runs:
        return _from_runs(args, exp, plans, store)
    problem = missing(exp, plans)
    if problem:
        raise UsageError(problem)
    group = ex.next_group(store.list(), exp)
    began = time.time()
    ids = []
    for i, plan in enumerate(plans, start=1):
        name = ex.run_name(exp, group, plan)
        run_id = store.create(plan.config.replace(name=name), name=name, experiment=exp.key, group=group,
                              run_key=plan.key, label=plan.label)
        print(f"[{i}/{len(plans)}] run {run_id}: {plan.label}", file=sys.stderr)
        result = run_training(plan.config.replace(name=name), store=store, run_id=run_id)
        print(f"    {result.status}: {result.message}", file=sys.stderr)
        ids.append(run_id)
    wall = time.time() - began
    overrides = " ".join([*(f"--only {key}" for key in args.only or ()),
                          *(f"--{k} {v}" for k, v in (("dataset", args.dataset), ("subset", args.subset),
                                                       ("epochs", args.epochs)) if v),
                          *(["--random-init"] if args.random_init else [])])
    return _written(args, exp, ids, store, wall=wall, overrides=overrides)


def _from_runs(args, exp, plans, store) -> int:
    """``--from-runs``: the table of runs already trained, each checked against the plan it was made from."""
    from cnnviz.runs import RunNotFound

    by_key = {p.key: p for p in plans}
    departures, runs = [], []
    for run_id in args.from_runs:
        try:
            run = store.get(run_id)
        except RunNotFound:
            raise UsageError(f"no run {run_id} in {store.path}") from None
        runs.append(run)
        if run.experiment != exp.key or run.run_key not in by_key:
            raise UsageError(f"run {run_id} is not one of {exp.key}'s planned runs ({', '.join(by_key)}); "
                             f"it was made as {run.experiment or 'a plain run'}/{run.run_key or '-'}")
        if run.status != "finished":
            raise UsageError(f"run {run_id} is {run.status}, not finished: resume it or leave it out")
        planned_config = by_key[run.run_key].config
        changed = [f"{f} {getattr(run.config, f)!r} (plan {getattr(planned_config, f)!r})"
                   for f in ("epochs", "subset", "val_subset", "test_subset", "batch_size", "lr", "image_size",
                             "dataset", "precision")
                   if getattr(run.config, f) != getattr(planned_config, f)]
        if changed:
            departures.append(f"run {run_id} ({run.run_key}): " + ", ".join(changed))
    wall = sum(run.train_seconds or 0.0 for run in runs)
    dates = sorted(time.strftime("%Y-%m-%d", time.localtime(run.created_at or 0)) for run in runs)
    note = (f"Assembled from runs already trained (`--from-runs {' '.join(map(str, args.from_runs))}`, "
            f"{dates[0]}{f' to {dates[-1]}' if dates[-1] != dates[0] else ''}); the time is their training time "
            "added up. " + ("Where they differ from the plan: " + "; ".join(departures) + "." if departures else
                            "Each was trained with the plan's own settings."))
    return _written(args, exp, list(args.from_runs), store, wall=wall, note=note)


def _written(args, exp, ids: list[int], store, *, wall: float, overrides: str = "", note: str = "") -> int:
    """Write the table of runs ``ids`` and say where (or print it as JSON)."""
    import cnnviz.experiments as ex

    outcomes = [ex.outcome_from_run(store.get(i), store.epochs(i)) for i in ids]
    paths = write_results(exp, outcomes, size=args.size, out=args.out, wall_seconds=wall, store=store,
                          overrides=overrides, note=note)
    if args.json:
        table = ex.results_table(exp, outcomes)
        print_json({"experiment": exp.key, "size": args.size, "runs": ids, "wall_seconds": wall,
                    "markdown": str(paths[0]), "csv": str(paths[1]),
                    "results": table.astype(object).where(table.notna(), None).to_dict(orient="records")})
    else:
        print(f"wrote {paths[0]} and {paths[1]} ({len(ids)} run{'s' * (len(ids) != 1)}, {ex.format_duration(wall)})")
    return 0


def _frame(exp, outcomes, store):
    """The results table with what a reader needs to trust it: run ids, split sizes and seconds."""
    import cnnviz.experiments as ex

    table = ex.results_table(exp, outcomes)
    splits = [store.get(o.run_id).splits or {} for o in outcomes]
    table.insert(0, "run id", [o.run_id for o in outcomes])
    table["seconds"] = [round(o.train_seconds, 1) if o.train_seconds else None for o in outcomes]
    for name in ("val", "test"):
        table[f"{name} images"] = [(s.get(name) or {}).get("images") for s in splits]
    return table, splits


def write_results(exp, outcomes, *, size: str, out: Path, wall_seconds: float, store,
                  overrides: str = "", note: str = "") -> tuple[Path, Path]:
    """Write the experiment's table (Markdown with the published figures, and CSV); returns both paths.

    ``overrides`` are the command line's changes to the plan; ``note`` replaces the sentence about when
    and how the runs were trained (a table assembled from earlier runs).
    """
    import cnnviz.experiments as ex
    from cnnviz.reports.render import markdown_table

    out.mkdir(parents=True, exist_ok=True)
    md, csv = out / f"{exp.key}-{size}.md", out / f"{exp.key}-{size}.csv"
    table, splits = _frame(exp, outcomes, store)
    table.to_csv(csv, index=False)
    published = ex.report_summary(exp, outcomes)
    runs = f"{len(outcomes)} run{'s' * (len(outcomes) != 1)}"
    when = (f"{runs}, {ex.format_duration(wall_seconds)} of training. {note}" if note else
            f"run {time.strftime('%Y-%m-%d %H:%M')}; {runs} in {ex.format_duration(wall_seconds)} "
            f"of wall time." + (f" Overridden on the command line: `{overrides}` (not the plan's own settings)."
                                if overrides else ""))
    lines = [f"# Experiment {exp.number}: {exp.title}", "",
             f"Size **{size}** ({exp.settings.get(size, '')}), on {platform.machine()} with {os.cpu_count()} CPU "
             f"core(s); {when}",
             "",
             "*best val acc* chose the best epoch; *test acc* was evaluated once, at the end, on those weights. "
             "*published split* is the split the report measured; *compared on* is this run's split set beside it "
             "(test where the run has a test set).", "",
             markdown_table(table), "", "## Where each split comes from", ""]
    for o, s in zip(outcomes, splits):
        parts = [f"{k} {v['images']:,} ({v['from']})" for k, v in s.items() if v]
        lines.append(f"- {o.label}: " + ("; ".join(parts) if parts else "no split recorded")
                     + ("" if s.get("test") else "; no test set"))
    lines += ["", "## Conclusions", ""] + [f"- {line}" for line in published["conclusions"]]
    lines += ["", "## Published figures", "", "| figure | value | split | run | source |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {p['label']} | {p['value']} | {p['split']} | {p['run']} | {p['citation']} |"
              for p in published["published"]]
    md.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return md, csv



