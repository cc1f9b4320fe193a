"""Streamlit pieces of the Experiments page: one guided card per course comparison.

Everything worth testing without a browser (presets, estimates, tables, conclusions) lives in
``cnnviz.experiments``; this module only draws it, from each experiment's spec (its results
view is chosen by ``Experiment.chart``). A card's widgets have keys starting with its
experiment key (``<key>_size``, ``<key>_launch``...). The last launched group of each
experiment is read back from the run store, so a closed tab or a restart loses nothing.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import pandas as pd
import streamlit as st

from cnnviz import charts, recipes
from cnnviz import experiments as ex
from cnnviz.experiments.groups import running_epoch_text
from cnnviz.jobs.estimates import FROM_BENCHMARK
from cnnviz.ui.cached import benchmark_seconds
from cnnviz.ui.widgets import open_store

POLL_SECONDS = 2.0
LAUNCH_GUARD_SECONDS = 10.0
ACTIVE = ("queued", "running")
TRAIN_PAGE = "pages/train.py"
COMPARE_PAGE = "pages/compare.py"


# -- cached library calls ------------------------------------------------------------------------

@st.cache_data(ttl=30, show_spinner=False)
def dataset_problem(name: str) -> str | None:
    """The DatasetUnavailable message when ``name``'s files are missing, else None (re-checked every 30 s)."""
    return ex.dataset_problem(name)


@st.cache_data(ttl=30, show_spinner=False)
def weights_available(arch: str) -> bool:
    """Whether ``arch``'s ImageNet weights are in the torch cache."""
    return ex.imagenet_weights_available(arch)


@st.cache_data(show_spinner=False)
def weights_hint(arch: str) -> str:
    """Which weights file to place where for ``arch``."""
    return ex.weights_file_hint(arch)


# -- the card ----------------------------------------------------------------------------------

def card(exp: ex.Experiment, *, store, runs: Sequence[Any]) -> None:
    """One experiment: question, expectation, published figures, setup and launch, results."""
    st.subheader(f"{exp.number}. {exp.title}")
    st.markdown(f"**The question.** {exp.question}")
    st.markdown(f"**What to expect.** {exp.expectation}")
    with st.expander("Why", expanded=False):
        st.markdown(exp.why)
    if exp.published:
        _published(exp)
    with st.container(border=True):
        choices = setup(exp, runs)
        if choices is not None:
            plan_and_launch(exp, choices, store=store)
    results(exp, store=store)


def _published(exp: ex.Experiment) -> None:
    rows = [{"published figure": p.label, "value": p.shown(), "source": p.citation} for p in exp.published]
    st.caption("Published figures")
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")


def setup(exp: ex.Experiment, runs: Sequence[Any]) -> ex.Choices | None:
    """Size, dataset (or its fallback), initialisations and the probe layer; None when nothing can run."""
    size = st.radio("Size", ex.SIZES, key=f"{exp.key}_size", horizontal=True,
                    format_func=lambda s: f"{s}: {exp.settings.get(s, '')}")
    dataset = _dataset_choice(exp)
    if dataset is None:
        return None
    inits, init_options = _init_choices(exp, runs)
    probe_layer = None
    if exp.probe_arch:
        points = ex.intermediate_points(exp.probe_arch)
        probe_layer = st.selectbox("Intermediate layer to compare", points, key=f"{exp.key}_probe_layer",
                                   index=points.index(ex.default_probe_pick(exp.probe_arch)),
                                   help="Every layer is probed for the depth curve; this one is highlighted.")
    return ex.Choices(size=size, dataset=None if dataset == exp.dataset else dataset, inits=inits,
                      init_options=init_options, probe_layer=probe_layer)


def _dataset_choice(exp: ex.Experiment) -> str | None:
    """The experiment's dataset, or a stand-in the student picks when its files are missing."""
    problem = dataset_problem(exp.dataset)
    if problem is None:
        st.caption(f"Dataset: **{exp.dataset}** (found in the data folder).")
        return exp.dataset
    st.warning(problem, icon=":material/folder_off:")
    usable = [name for name in exp.fallbacks if dataset_problem(name) is None]
    if not usable:
        st.info(f"Nothing to launch until the files are there: `python -m cnnviz prefetch --datasets {exp.dataset}` "
                "on a machine with internet puts them in the data folder; then reload this page.")
        return None
    # The experiment's own dataset is not offered while its files are missing: a launch would only
    # queue runs that fail on a download an offline classroom cannot make.
    labels = {name: f"{name} (stand-in: same comparison, numbers not comparable with the reports)" for name in usable}
    return st.selectbox("Run it on", usable, format_func=labels.get, key=f"{exp.key}_dataset")


def _init_choices(exp: ex.Experiment, runs: Sequence[Any]) -> tuple[dict[str, str], dict[str, dict]]:
    """For each architecture that wants ImageNet weights: ImageNet when present, else a stand-in."""
    missing = [arch for arch in exp.pretrained_archs if not weights_available(arch)]
    inits: dict[str, str] = {}
    init_options: dict[str, dict] = {}
    if not missing:
        if exp.pretrained_archs:
            st.caption("Pretrained runs start from ImageNet weights (found in the torch cache).")
        return inits, init_options
    hints = "; ".join(f"{arch}: {weights_hint(arch)}" for arch in missing)
    st.info("ImageNet weights are not on this machine (they cannot be downloaded offline), so the runs that "
            f"should start from them need a stand-in. To get them, place {hints}. Closest thing that runs: start "
            "from an earlier run of the same architecture (its learned filters), or from random weights — the "
            "labels say which.", icon=":material/cloud_off:")
    by_id = {r.id: r for r in runs}
    cols = st.columns(len(missing))
    for col, arch in zip(cols, missing):
        offered = ex.init_choices(arch, runs, imagenet_available=False)
        labels = dict(offered)
        with col:
            value = st.selectbox(f"{arch} starts from", list(labels), format_func=labels.get,
                                 key=f"{exp.key}_init_{arch}")
        inits[arch] = value
        if value.startswith("run:") and int(value[4:]) in by_id:
            init_options[arch] = dict(by_id[int(value[4:])].config.options)
    return inits, init_options


def estimate_source(estimates: Sequence[Any]) -> str:
    """Where a group's estimate comes from: this server's epochs, a FLOPs benchmark, or some of each."""
    measured = sum(e.source != FROM_BENCHMARK for e in estimates)
    arch, size = recipes.REFERENCE_STEP
    benchmark = f"a FLOPs benchmark (a {arch} test step at {size} px)"
    if measured == len(estimates):
        return "measured from this server's epochs of the same models"
    if not measured:
        return "from " + benchmark
    return f"{measured} measured from this server's epochs of the same models, the others from {benchmark}"


def plan_and_launch(exp: ex.Experiment, choices: ex.Choices, *, store) -> None:
    """The runs a launch would queue, their estimated time on this device, and the launch button."""
    try:
        plans = exp.plan(choices)
    except ValueError as exc:
        st.error(str(exc))
        return
    warning = ex.same_start_warning(plans)
    if warning:
        st.warning(warning)
    estimates = ex.estimate_plans(plans, store, fallback=benchmark_seconds)
    seconds = [e.seconds for e in estimates]
    table = pd.DataFrame([{
        "run": p.label, "model": p.config.arch, "mode": p.config.mode + (f" @ {p.config.probe_layer}" if p.config.probe_layer else ""),
        "labels": p.config.labels, "images/class": p.config.subset or "all", "px": p.config.image_size,
        "epochs": p.config.epochs, "estimate": ex.format_duration(s)} for p, s in zip(plans, seconds)])
    if set(table["labels"]) == {"fine"}:
        table = table.drop(columns="labels")
    # The run's label is long: a medium column keeps sizes, epochs and the estimate in view on a narrow screen.
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={"run": st.column_config.TextColumn("run", width="medium")})
    total = sum(seconds)
    low, high = sum(e.low for e in estimates), sum(e.high for e in estimates)
    st.markdown(f"**Estimated total on this device: {ex.format_duration(total)}** "
                f"({ex.format_duration(low)} to {ex.format_duration(high)}; {len(plans)} runs one after another; "
                f"{estimate_source(estimates)}).")
    if choices.size == "full" and total > 3 * 3600:
        st.caption("The full size matches the reports' settings, which they ran on GPUs; on this device it is an "
                   "overnight job. The quick size shows the same comparison in minutes.")
    if st.button(f"Launch {len(plans)} runs", key=f"{exp.key}_launch", type="primary"):
        guard = f"{exp.key}_launched_at"
        if time.time() - st.session_state.get(guard, 0.0) < LAUNCH_GUARD_SECONDS:
            st.toast("Already launched: the runs are queued below.")  # a double click must not queue twice
            return
        from cnnviz.jobs import get_manager
        from cnnviz.ui.student import current_student

        ids = ex.launch(exp, plans, manager=get_manager(store), runs=store.list(), student=current_student())
        st.session_state[guard] = time.time()
        st.toast(f"Queued runs {ids[0]}-{ids[-1]}; they train one after another.")
        st.rerun()


# -- results -----------------------------------------------------------------------------------

def results(exp: ex.Experiment, *, store) -> None:
    """The last launched group's progress and results (polls the store while runs are active)."""
    outcomes = ex.group_outcomes(exp, store)
    if not outcomes:
        st.caption("No runs of this experiment yet: launch the quick size above.")
        return
    active = any(o.status in ACTIVE for o in outcomes)
    st.fragment(_results_body, run_every=POLL_SECONDS if active else None)(exp, was_active=active)


def _results_body(exp: ex.Experiment, *, was_active: bool) -> None:
    store = open_store()
    outcomes = ex.group_outcomes(exp, store)
    active = [o for o in outcomes if o.status in ACTIVE]
    if was_active and not active:
        st.rerun(scope="app")  # the group just finished: redraw once without polling
    group = outcomes[0].group
    st.markdown(f"#### Your results (launch #{group or '?'}, runs {outcomes[0].run_id}-{outcomes[-1].run_id})")
    if active:
        _progress(outcomes, exp)
    _failures(outcomes)
    st.dataframe(ex.results_table(exp, outcomes), hide_index=True, width="stretch",
                 column_config={"best val acc": st.column_config.NumberColumn(format="%.3f"),
                                "test acc": st.column_config.NumberColumn(format="%.3f")})
    lines = ex.conclude(exp, outcomes)
    if lines:
        st.markdown("**What your numbers say**")
        st.markdown("\n".join(f"- {line}" for line in lines))
    VIEWS[exp.chart](exp, outcomes)
    _report_texts(outcomes)
    if not active:
        st.download_button("Lab report of this group (HTML)", data=lambda: _report_html(exp.key),
                           file_name=f"cnnviz-{exp.key}-report.html", mime="text/html",
                           key=f"exp_report_{exp.key}", icon=":material/description:")


def _report_html(key: str) -> str:
    """The group's lab report as one self-contained HTML page (built when the button is pressed)."""
    from cnnviz.cli.report import build_report
    from cnnviz.reports import render

    return render(build_report(open_store(), experiment=key), "html")


def _progress(outcomes: Sequence[ex.Outcome], exp: ex.Experiment) -> None:
    from cnnviz.jobs import get_manager

    manager = get_manager(open_store())
    done = sum(1 for o in outcomes if o.status not in ACTIVE)
    running = [o for o in outcomes if o.status == "running"]
    text = f"{done} of {len(outcomes)} runs done"
    if running:
        o = running[0]
        text += f"; training **{o.label}**, {running_epoch_text(len(o.epochs), o.config.epochs)}"
    queued = [o for o in outcomes if o.status == "queued"]
    if queued and not running:
        pos = manager.status(queued[0].run_id).queue_position
        text += f"; waiting for the device (position {pos} in line)" if pos else "; waiting for the device"
    st.progress(done / len(outcomes), text=text)
    if st.button("Stop this group", key=f"{exp.key}_stop"):
        for o in outcomes:
            if o.status in ACTIVE:
                manager.stop(o.run_id)
        st.rerun(scope="app")


def _failures(outcomes: Sequence[ex.Outcome]) -> None:
    for o in outcomes:
        if o.status in ("failed", "diverged", "interrupted"):
            st.error(f"{o.label}: {o.status}. {o.message or ''}")


def _report_texts(outcomes: Sequence[ex.Outcome]) -> None:
    with st.expander("Per-epoch log in the reports' format"):
        for o in outcomes:
            if o.epochs:
                st.markdown(f"**{o.label}** (run {o.run_id})")
                st.code(ex.report_text(o), language=None)


def short_names(outcomes: Sequence[ex.Outcome]) -> dict[str, str]:
    """Run key -> label without its parenthesis (the full label where two would read the same)."""
    short = {o.key: o.label.split(" (")[0] for o in outcomes}
    clashes = {name for name in short.values() if list(short.values()).count(name) > 1}
    return {o.key: o.label if short[o.key] in clashes else short[o.key] for o in outcomes}


def _epochs_frame(outcomes: Sequence[ex.Outcome]) -> pd.DataFrame:
    names = short_names(outcomes)
    rows = [{**row, "run": names[o.key]} for o in outcomes for row in o.epochs]
    return pd.DataFrame(rows)


def _view_curves(exp: ex.Experiment, outcomes: Sequence[ex.Outcome]) -> None:
    frame = _epochs_frame(outcomes)
    if frame.empty:
        return
    left, right = st.columns(2)
    left.altair_chart(charts.curves(frame, metric="loss"), width="stretch")
    right.altair_chart(charts.curves(frame, metric="acc"), width="stretch")


def _published_chart(exp: ex.Experiment, outcomes: Sequence[ex.Outcome]) -> None:
    by = {o.key: o for o in outcomes if ex.comparable(exp, o)}
    rows = []
    for pub in exp.published:
        o = by.get(pub.run_key) if pub.run_key else None
        if o is None or o.best_val_acc is None or pub.value is None:
            continue
        yours, _ = o.figure(pub.split)  # test against a published test figure, where the run has a test set
        rows.append({"run": short_names(outcomes)[o.key], "yours": yours, "published": pub.value})
    if rows:
        st.altair_chart(charts.published_bars(pd.DataFrame(rows)), width="stretch")


def _view_transfer(exp: ex.Experiment, outcomes: Sequence[ex.Outcome]) -> None:
    _published_chart(exp, outcomes)
    table = ex.epochs_table(outcomes)
    if not table.empty:
        st.caption("Per epoch, as the reports tabulate it (time is cumulative)")
        st.dataframe(table, hide_index=True, width="stretch")
    _view_curves(exp, outcomes)


def _view_probes(exp: ex.Experiment, outcomes: Sequence[ex.Outcome]) -> None:
    frame = ex.probe_depth_frame(outcomes)
    if not frame.empty:
        st.caption("Probe accuracy by depth")
        classes = {len(o.classes) for o in outcomes if o.classes}
        chance = 1 / classes.pop() if len(classes) == 1 else None
        st.altair_chart(charts.probe_depth(frame, chance=chance), width="stretch")


def _view_superclasses(exp: ex.Experiment, outcomes: Sequence[ex.Outcome]) -> None:
    fine = [o for o in outcomes if o.config.labels == "fine" and o.confusion and o.classes]
    mapped = [(o, m) for o in fine if (m := ex.superclass_map(o.classes))]
    if not mapped:
        _view_curves(exp, outcomes)
        return
    labels = [o.label for o, _ in mapped]
    pick = st.selectbox("Confusion matrix of", labels, key=f"{exp.key}_confusion_run")
    o, mapping = mapped[labels.index(pick)]
    rolled, groups = ex.rollup_confusion(o.confusion, o.classes, mapping)
    errors = ex.superclass_errors(o.confusion, o.classes, mapping)
    a, b, c = st.columns(3)
    a.metric("errors in the right superclass", f"{errors.share:.0%}", help=f"{errors.within} of {errors.errors} errors")
    b.metric("if errors were random", f"{errors.chance:.0%}")
    c.metric("accuracy after mapping to superclasses", f"{errors.rolled_accuracy:.3f}")
    st.altair_chart(charts.confusion(charts.confusion_frame(rolled, groups), size=420))
    _view_curves(exp, outcomes)


def _view_hybrids(exp: ex.Experiment, outcomes: Sequence[ex.Outcome]) -> None:
    _published_chart(exp, outcomes)
    names = short_names(outcomes)
    frame = pd.DataFrame([{"run": names[o.key], "train_seconds": o.train_seconds,
                           "best_val_acc": o.best_val_acc} for o in outcomes if o.best_val_acc is not None])
    if not frame.empty:
        st.caption("Accuracy against training time")
        st.altair_chart(charts.cost_scatter(frame), width="stretch")
    _view_curves(exp, outcomes)


def _view_degradation(exp: ex.Experiment, outcomes: Sequence[ex.Outcome]) -> None:
    frame = _epochs_frame(outcomes)
    if not frame.empty:
        st.caption("Training loss: does the deeper plain network fit its own training data worse?")
        # Training loss only: a plain deep net's validation loss can explode early and flatten the chart.
        train_only = frame.drop(columns=[c for c in ("val_loss",) if c in frame.columns])
        st.altair_chart(charts.curves(train_only, metric="loss"), width="stretch")
    norms = ex.grad_norm_frame(outcomes)
    if not norms.empty:
        keys = sorted(set(norms["key"]))
        default = [k for k in exp.highlight if k in keys] or keys[:2]
        left, right = st.columns([3, 1])
        shown = left.multiselect("Gradient norms of", keys, default=default, key=f"{exp.key}_grad_runs")
        epochs = sorted(set(norms["epoch"]))
        epoch = (right.select_slider("epoch", epochs, value=epochs[0], key=f"{exp.key}_grad_epoch")
                 if len(epochs) > 1 else epochs[0])
        st.caption("Gradient norm reaching each layer. In a plain deep network it grows or shrinks by orders of "
                   "magnitude from the output back to the input; with shortcuts every layer gets about the same. "
                   "Slide through the epochs to see how that changes over training.")
        picked = norms[norms["key"].isin(shown) & (norms["epoch"] == epoch)]
        st.altair_chart(charts.grad_norms(picked), width="stretch")


# Experiment.chart -> the results view drawn under the conclusions.
VIEWS = {"curves": _view_curves, "published": _view_transfer, "probe_depth": _view_probes,
         "superclasses": _view_superclasses, "cost": _view_hybrids, "grad_norms": _view_degradation}
