"""Train: pick data, model and settings, launch a background run and watch it; reattaches via ?run=<id>."""

import streamlit as st

from cnnviz.ui.nav import require_router, wait_for_torch
from cnnviz.ui.sidebar import device_hint

require_router()
st.title("Train")
st.caption(f"Runs train in the background on **{device_hint()}**: you can switch pages or close the tab; "
           "come back to this page (or its URL) to see the run again.")

# The title is drawn first: the imports below load torch, which the router's preload has started (seconds on a busy server's first visit).
wait_for_torch()
from cnnviz.data import dataset_display_name  # noqa: E402
from cnnviz.models import get_spec  # noqa: E402
from cnnviz.recipes import default_start  # noqa: E402
from cnnviz.ui import run_view, state, train_setup  # noqa: E402
from cnnviz.ui.launch import launch  # noqa: E402
from cnnviz.ui.student import current_student  # noqa: E402
from cnnviz.ui.widgets import architecture_picker  # noqa: E402

train_setup.your_runs(current_student())
run_id = state.attached_run_id()
watching = run_id is not None and run_view.show_run(run_id)
if watching:
    st.divider()

with st.expander("Set up a run", expanded=not watching):
    train_setup.recipe_picker()

    st.subheader("1. Data")
    data = train_setup.dataset_section()
    num_classes = len(data.preview["classes"])

    st.subheader("2. Model")
    picked = architecture_picker(prefix="train", default=default_start(data.name)[0], size=False, classes=False)
    cost_slot = st.container()

    st.subheader("3. Mode and starting weights")
    mode = train_setup.mode_section(picked.arch, picked.options)

    st.subheader("4. Settings")
    why = train_setup.apply_recipe(picked.arch, data, mode)
    train_setup.hyperparameter_section(why, num_classes)
    train_setup.run_images_line(data)
    train_setup.lr_finder(picked.options)
    train_setup.augmentation_preview(data.preview, st.session_state["train_augment"])
    with cost_slot:
        train_setup.cost_and_estimate(picked.arch, picked.options, num_classes=num_classes, data=data)

    name_col, button_col = st.columns([3, 1])
    name_col.text_input("Run name (optional)", key="train_name", placeholder=f"e.g. {get_spec(picked.arch).label} "
                        f"on {dataset_display_name(data.name, data.path)}", persist_state=state.PERSIST)
    if button_col.button("Start training", key="train_launch", type="primary", width="stretch"):
        launch(picked.options, data)
