"""Compare runs: the table of every run, curves overlaid, accuracy against cost,
confusion matrices side by side and the images where two runs disagree."""

import streamlit as st

from cnnviz.ui.nav import require_router, wait_for_torch

require_router()

st.title("Compare runs")
st.caption("Every run trained here, side by side: which architecture learns fastest per epoch and per minute, "
           "what its accuracy costs, which classes it confuses, and which pictures two models disagree on.")

# The title is drawn first: the imports below load torch, which the router's preload has started (seconds on a busy server's first visit).
wait_for_torch()
from cnnviz.ui import compare_view as view  # noqa: E402
from cnnviz.ui.widgets import link_to_train, open_store  # noqa: E402

store = open_store()
runs = store.list()
if not runs:
    link_to_train("No runs yet. Train a model first (a `shapes` run takes about a minute), then come back "
                       "to compare it with others.")
    st.stop()

table = view.load_table(store, runs)
shown = view.filtered_table(table)

st.subheader("Compare chosen runs")
chosen_ids = view.pick_runs(table, shown)
by_id = {run.id: run for run in runs}
chosen = [by_id[i] for i in chosen_ids]
if not chosen:
    st.info("Choose one or more runs above to draw their curves and matrices.")
else:
    curves, cost, confusion, disagree = st.tabs(["Curves", "Accuracy vs cost", "Confusion matrices", "Where they disagree"])
    with curves:
        view.curves_section(store, chosen)
    with cost:
        view.cost_section(table[table["id"].isin(chosen_ids)], chosen)
    with confusion:
        view.confusion_section(chosen)
    with disagree:
        view.disagreement_section(chosen)

with st.expander("Rename or delete a run", icon=":material/edit:"):
    view.manage_section(store, table)
