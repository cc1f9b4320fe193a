"""Session-state and query-parameter keys shared by pages, and the run a Train page is attached to.

A launched run's id lives in ``st.session_state[TRAIN_RUN]`` (survives reruns
and page switches) and in the URL as ``?run=<id>`` (survives closing and
reopening the tab), so the Train page reattaches instead of starting again.
"""

from __future__ import annotations

import streamlit as st

from cnnviz.ui.logic import UPLOAD_PATH, WEIGHTS_PATH, parse_run_id, widget_values

PERSIST = "session"  # widget values survive switching pages and coming back
TRAIN_RUN = "train_run_id"  # int: the run the Train page shows
QUERY_RUN = "run"  # ?run=<id> in the Train page's URL
LAUNCHED = "train_launched"  # dict config-json -> run id launched from this session (double-click guard)
RECIPE_APPLIED = "train_recipe_applied"  # dict widget key -> the value a recipe (or a prefill) last put there
RECIPE_HELD = "train_recipe_held"  # dict widget key -> the recipe's value, not applied over a hand-typed one
RECIPE_HELD_FOR = "train_recipe_held_for"  # str: which recipe held them back ("freeze on shapes")


def attached_run_id() -> int | None:
    """The run this session's Train page shows: from session state, else from ``?run=``."""
    run_id = st.session_state.get(TRAIN_RUN)
    if run_id is None:
        run_id = parse_run_id(st.query_params.get(QUERY_RUN))
        if run_id is not None:
            st.session_state[TRAIN_RUN] = run_id
    if run_id is not None and st.query_params.get(QUERY_RUN) != str(run_id):
        st.query_params[QUERY_RUN] = str(run_id)  # keep the URL reattachable after a page switch
    return run_id


def attach(run_id: int) -> None:
    """Make ``run_id`` the run this session's Train page shows (and put it in the URL)."""
    st.session_state[TRAIN_RUN] = int(run_id)
    st.query_params[QUERY_RUN] = str(run_id)


def detach() -> None:
    """Stop showing a run on the Train page (the run itself carries on)."""
    st.session_state.pop(TRAIN_RUN, None)
    st.query_params.pop(QUERY_RUN, None)


def prefill_train_form(config) -> None:
    """Put a ``TrainConfig`` into the Train page's widgets (``train_*`` keys), e.g. to change one setting and rerun.

    Also marks the architecture and the recipe as applied, so the page's
    defaults do not overwrite what is filled in here.
    """
    from cnnviz.models import get_spec  # lazy: this module must stay torch-free for the sidebar

    spec = get_spec(config.arch)
    values = {**widget_values(config), "train_dataset": config.dataset, "train_labels": config.labels,
              "train_model": config.arch, "train_mode": config.mode}
    if config.image_size is None:  # the architecture's default, shown as a number
        values["train_image_size"] = spec.default_size
    st.session_state.update(values)
    st.session_state[RECIPE_APPLIED] = dict(values)  # filled in, not typed: a later recipe may replace them
    st.session_state.pop(RECIPE_HELD, None)
    for key, value in {**spec.defaults(), **config.options}.items():
        st.session_state[f"train_opt_{key}"] = value
    st.session_state["train_options_for"] = config.arch
    st.session_state["train_recipe_for"] = (config.arch, config.dataset, config.mode)
    if config.mode == "probe":
        st.session_state["train_probe_layer"] = config.probe_layer
    if config.dataset == "folder" and config.data_path:
        st.session_state[UPLOAD_PATH] = config.data_path
    init = config.init
    if init.startswith("run:"):
        st.session_state.update(train_init="run", train_init_run=int(init[4:]))
    elif init in ("imagenet", "none"):
        st.session_state["train_init"] = init
    else:
        st.session_state.update(train_init="file", **{WEIGHTS_PATH: init})
