"""Session-state and query-parameter keys shared by pages, and the run a Train page is attached to.

A launched run's id lives in ``st.session_state[TRAIN_RUN]`` (survives reruns
and page switches) and in the URL as ``?run=<id>`` (survives closing and
reopening the tab), so the Train page reattaches instead of starting again.
"""

from __future__ import annotations

import streamlit as st

from cnnviz.ui.logic import parse_run_id

PERSIST = "session"  # widget values survive switching pages and coming back
TRAIN_RUN = "train_run_id"  # int: the run the Train page shows
QUERY_RUN = "run"  # ?run=<id> in the Train page's URL
UPLOAD_PATH = "train_upload_path"  # str: the saved .zip of the last dataset upload
WEIGHTS_PATH = "train_weights_path"  # str: the saved weights file of the last upload
LAUNCHED = "train_launched"  # dict config-json -> run id launched from this session (double-click guard)


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
    values = {
        "dataset": config.dataset, "labels": config.labels, "model": config.arch, "mode": config.mode,
        "epochs": config.epochs, "batch_size": config.batch_size, "lr": config.lr, "optimizer": config.optimizer,
        "momentum": config.momentum, "weight_decay": config.weight_decay, "scheduler": config.scheduler,
        "step_size": config.step_size, "label_smoothing": config.label_smoothing, "loss": config.loss,
        "augment": config.augment, "image_size": config.image_size or spec.default_size,
        "subset": config.subset or 0, "val_subset": getattr(config, "val_subset", None) or 0,
        "val_split": config.val_split, "seed": config.seed, "grad_norms": config.track_grad_norms,
        "precision": getattr(config, "precision", "auto"), "name": config.name,
    }
    for key, value in values.items():
        st.session_state[f"train_{key}"] = value
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
