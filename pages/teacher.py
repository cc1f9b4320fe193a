"""Teacher: the queue with estimated start and end, who trains what, cancel any run, disk use and cleanup."""

import streamlit as st

from cnnviz.ui.nav import require_router, wait_for_torch

require_router()
st.title("Teacher")

# The title is drawn first: the imports below load torch, which the router's preload has started (seconds on a busy server's first visit).
wait_for_torch()
from cnnviz.ui import teacher_view as view  # noqa: E402
from cnnviz.ui.cached import benchmark_seconds  # noqa: E402
from cnnviz.ui.widgets import open_store  # noqa: E402

view.require_teacher()
st.caption("The whole class at a glance: what waits, what trains, and how much disk the checkpoints take.")
st.button("Refresh", key="teacher_refresh", icon=":material/refresh:")

store = open_store()
runs = store.list()
running = [run for run in runs if run.status == "running"]
queued = store.queue()

view.running_section(store, running, benchmark_seconds)
view.queue_section(store, running, queued, benchmark_seconds)
view.cancel_section(store, [*running, *queued])
st.divider()
view.disk_section(store)
