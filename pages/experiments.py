"""Experiments: the course reports' comparisons, one guided card each, next to the published figures."""

import streamlit as st

from cnnviz.ui.nav import require_router, wait_for_torch

require_router()

st.title("Experiments")
st.caption("Each card redoes one comparison from the course reports: the question, what to expect and why, "
           "a group of runs launched together (they queue one after another on this device), and your numbers "
           "beside the published ones. Start with the **quick** size: it fits in a class period on a laptop CPU. "
           "You can leave the page while runs train; your results are here when you come back.")

# The title is drawn first: the imports below load torch, which the router's preload has started (seconds on a busy server's first visit).
wait_for_torch()
from cnnviz import experiments as ex  # noqa: E402
from cnnviz.ui import experiments_view as view  # noqa: E402
from cnnviz.ui.widgets import open_store  # noqa: E402

store = open_store()
runs = store.list()
experiments = [ex.get_experiment(key) for key in ex.list_experiments()]
tabs = st.tabs([f"{e.number}. {e.short_title}" for e in experiments], key="experiment_tab", bind="query-params")
for tab, exp in zip(tabs, experiments):
    if tab.open is False:  # lazy: only the chosen card runs (and polls)
        continue
    with tab:
        view.card(exp, store=store, runs=runs)
