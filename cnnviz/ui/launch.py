"""Launching a run from the Train page, guarded so a rerun or a double click never starts it twice."""

from __future__ import annotations

import math

import streamlit as st

from cnnviz.runs import RunNotFound, RunStore
from cnnviz.jobs import submit
from cnnviz.training.checks import init_problem, validate_config
from cnnviz.training.config import ConfigError
from cnnviz.ui import state
from cnnviz.ui.logic import build_train_config, images_for_estimate
from cnnviz.ui.student import current_student


def launch(options: dict, data) -> None:
    """Build the config from the widgets, queue it as this student's run, attach the page to it and rerun."""
    try:
        config = build_train_config(st.session_state, options=options)
    except ValueError as exc:
        st.error(str(exc))
        return
    try:
        validate_config(config)  # everything the registries can tell, before anything is stored
    except ConfigError as exc:
        st.error("This run cannot start: " + "; ".join(exc.problems) + ".")
        return
    problem = init_problem(config)  # a weights file that does not fit fails here, not later in a worker
    if problem:
        st.error(f"This run cannot start: the starting weights do not fit: {problem}.")
        return
    launched = st.session_state.setdefault(state.LAUNCHED, {})
    previous = launched.get(config.to_json())
    if previous is not None and _still_active(previous):
        st.info(f"This exact run is already {RunStore().get(previous).status} (run {previous}); showing it.")
        state.attach(previous)
        st.rerun()
    try:
        run_id = submit(config, student=current_student(), name=config.name or None)
    except ValueError as exc:  # a config the registries refuse
        st.error(str(exc))
        return
    launched[config.to_json()] = run_id
    n_train, _ = images_for_estimate(train_counts=data.preview["counts"], val_counts=data.preview["val_counts"],
                                     subset=config.subset, val_subset=config.val_subset,
                                     val_carved=data.preview["val_carved"])
    st.session_state.setdefault("train_expected_batches", {})[run_id] = math.ceil(n_train / config.batch_size)
    state.attach(run_id)
    st.rerun()


def _still_active(run_id: int) -> bool:
    try:
        return RunStore().get(run_id).active
    except RunNotFound:
        return False
