"""The six comparisons of the course reports as data: what each asks, the runs it launches, the
pairs it compares, the figures the reports published, and conclusions from a class's own results.

    from cnnviz.experiments import list_experiments, get_experiment, Choices
    exp = get_experiment(list_experiments()[0])
    plans = exp.plan(Choices(size="quick"))

One module per experiment holds its spec (``spec.Experiment``); ``conclude`` is the one concluder
that reads it; ``groups`` finds launched groups in the run store; ``tables`` draws the reports'
tables. No Streamlit here, and torch only where a model is built or counted.
"""

from __future__ import annotations

from cnnviz.experiments import alex_hybrids, cifar_transfer, degradation, fine_coarse, probes, transfer
from cnnviz.experiments.conclude import compare_pair, comparable, conclude, noise_line, ranking
from cnnviz.experiments.degradation import early_late_ratio, grad_norm_frame
from cnnviz.experiments.fine_coarse import (CIFAR10_SUPERCLASSES, CIFAR100_FINE_TO_COARSE, rollup_confusion,
                                            superclass_errors, superclass_map)
from cnnviz.experiments.groups import (estimate_group_seconds, estimate_plans, group_outcomes, latest_group, launch,
                                       next_group, outcome_from_run, parse_run_name, run_name, run_tag)
from cnnviz.experiments.planning import (dataset_problem, imagenet_weights_available, init_choices,
                                         same_start_warning, weights_file_hint)
from cnnviz.experiments.probes import PICKED, default_probe_pick, intermediate_points, probe_depth_frame, probe_points
from cnnviz.experiments.spec import (CHARTS, IMAGENET, SCRATCH, SIZES, Choices, Experiment, Outcome, Pair,
                                     PlannedRun, Published, Ranking)
from cnnviz.experiments.tables import (epochs_table, format_duration, published_rows, report_summary, report_text,
                                      results_table)

# In the order of the course reports.
_EXPERIMENTS: dict[str, Experiment] = {m.EXPERIMENT.key: m.EXPERIMENT for m in (
    transfer, cifar_transfer, probes, fine_coarse, alex_hybrids, degradation)}


def list_experiments() -> list[str]:
    """Keys of the experiments, in the order of the course reports."""
    return list(_EXPERIMENTS)


def get_experiment(key: str) -> Experiment:
    """The experiment ``key`` (see ``list_experiments``), or ValueError."""
    try:
        return _EXPERIMENTS[key]
    except KeyError:
        raise ValueError(f"unknown experiment {key!r}; choose one of: {', '.join(_EXPERIMENTS)}") from None


__all__ = [
    "CHARTS", "CIFAR10_SUPERCLASSES", "CIFAR100_FINE_TO_COARSE", "IMAGENET", "PICKED", "SCRATCH", "SIZES",
    "Choices", "Experiment", "Outcome", "Pair", "PlannedRun", "Published", "Ranking",
    "comparable", "compare_pair", "conclude", "dataset_problem", "default_probe_pick", "early_late_ratio",
    "epochs_table", "estimate_group_seconds", "estimate_plans", "format_duration", "get_experiment",
    "grad_norm_frame",
    "group_outcomes", "imagenet_weights_available", "init_choices", "intermediate_points", "latest_group",
    "launch", "list_experiments", "next_group", "noise_line", "outcome_from_run", "parse_run_name",
    "probe_depth_frame", "probe_points", "published_rows", "ranking", "report_summary", "report_text", "results_table", "rollup_confusion",
    "run_name", "run_tag", "same_start_warning", "superclass_errors", "superclass_map", "weights_file_hint",
]
