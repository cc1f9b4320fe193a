"""Launched groups in the run store: submitting a group, numbering it, and reading its runs back.

Each run of a group is stored with its experiment's key, the launch number, its planned run's key
and label (``RunStore.create``), so a closed tab or a restarted app finds the last group of each
experiment and labels it as planned. Its name, ``exp<N>#<group>/<run key>``, is what a student
sees on the Compare page; runs stored before the tags existed are recognised by that name.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable, Sequence

from cnnviz.experiments.spec import Experiment, Outcome, PlannedRun
from cnnviz.jobs.estimates import Estimate, estimate_run
from cnnviz.recipes import estimate_run_seconds

_NAME = re.compile(r"^(exp\d+)#(\d+)/(.+)$")


def run_name(experiment: Experiment, group: int, plan: PlannedRun) -> str:
    """The stored name of one run of a group: ``exp1#3/alexnet-finetune``."""
    return f"{experiment.key}#{group}/{plan.key}"


def parse_run_name(name: str) -> tuple[str, int, str] | None:
    """(experiment key, group number, run key) from a stored name, or None."""
    match = _NAME.match(name or "")
    return (match.group(1), int(match.group(2)), match.group(3)) if match else None


def run_tag(run: Any) -> tuple[str, int, str] | None:
    """(experiment key, group number, run key) of a stored run, or None when no experiment launched it."""
    if getattr(run, "experiment", None) and run.group is not None and run.run_key:
        return run.experiment, int(run.group), run.run_key
    # Runs stored before the tags: the config keeps the original name even after a rename.
    return parse_run_name(getattr(run.config, "name", "") or "") or parse_run_name(run.name)


def next_group(runs: Iterable[Any], experiment: Experiment) -> int:
    """The number for a new launch of ``experiment`` (one more than any stored)."""
    numbers = [t[1] for t in map(run_tag, runs) if t and t[0] == experiment.key]
    return max(numbers, default=0) + 1


def latest_group(runs: Iterable[Any], experiment: Experiment) -> list[Any]:
    """The runs of ``experiment``'s last launched group, in launch order (empty when never launched)."""
    tagged = [(t, r) for r in runs if (t := run_tag(r)) and t[0] == experiment.key]
    if not tagged:
        return []
    last = max(t[1] for t, _ in tagged)
    return sorted((r for t, r in tagged if t[1] == last), key=lambda r: r.id)


def launch(experiment: Experiment, plans: Sequence[PlannedRun], *, manager: Any, runs: Iterable[Any],
           student: str | None = None) -> list[int]:
    """Submit ``plans`` in order as ``student``'s runs (they share the queue fairly with others'); returns the ids.

    ``manager`` is anything with ``submit`` (``cnnviz.jobs.get_manager(store)``); ``student=None``
    leaves the student to it.
    """
    group = next_group(runs, experiment)
    ids = []
    who = {} if student is None else {"student": student}
    for plan in plans:
        name = run_name(experiment, group, plan)
        ids.append(manager.submit(plan.config.replace(name=name), name=name, experiment=experiment.key,
                                  group=group, run_key=plan.key, label=plan.label, **who))
    return ids


def outcome_from_run(run: Any, epochs: list[dict], *, labels: dict[str, str] | None = None) -> Outcome:
    """An ``Outcome`` from a stored run and its epoch rows (``labels``: run key -> label for untagged runs)."""
    tag = run_tag(run)
    key = tag[2] if tag else str(run.id)
    label = getattr(run, "run_label", None) or (labels or {}).get(key) or run.name or key
    return Outcome(key=key, label=label, config=run.config, status=run.status, best_val_acc=run.best_val_acc,
                   best_epoch=run.best_epoch, train_seconds=run.train_seconds, epochs=list(epochs),
                   confusion=run.confusion, classes=list(run.classes or []), run_id=run.id, message=run.message,
                   group=tag[1] if tag else None, test_acc=getattr(run, "test_acc", None),
                   test_loss=getattr(run, "test_loss", None))


def group_outcomes(experiment: Experiment, store: Any) -> list[Outcome]:
    """Outcomes of the last launched group of ``experiment`` read from ``store`` (a RunStore)."""
    group = latest_group(store.list(), experiment)
    labels = {}
    if any(not getattr(r, "run_label", None) for r in group):
        # Runs stored before labels were: the default plan's labels are the closest words for them.
        labels = {p.key: p.label for p in experiment.plan()}
    return [outcome_from_run(r, store.epochs(r.id), labels=labels) for r in group]


def estimate_group_seconds(plans: Sequence[PlannedRun], *, flops_per_second: float) -> float:
    """Total seconds for a whole group (runs queue one after another)."""
    return sum(estimate_run_seconds(p.config, flops_per_second=flops_per_second) for p in plans)


def estimate_plans(plans: Sequence[PlannedRun], store: Any, *, fallback: Callable[[Any], float]) -> list[Estimate]:
    """Each planned run's time on this server: from its own model's epochs in ``store``, else ``fallback(config)``."""
    return [estimate_run(p.config, store, fallback=fallback) for p in plans]


def running_epoch_text(finished: int, epochs: int) -> str:
    """Where a running run is, e.g. ``epoch 2 of 3``; ``finishing`` once every epoch is recorded."""
    if finished >= epochs:
        return f"all {epochs} epochs done, finishing"
    return f"epoch {finished + 1} of {epochs}"
