"""Architectures: build a network from its option schema and look inside it."""

import streamlit as st

from cnnviz.ui.nav import require_router, wait_for_torch

require_router()

st.title("Architectures")
st.caption("Pick a network, switch its residual shortcuts and squeeze-and-excitation blocks on and off, "
           "and watch parameters, FLOPs and the layer table change.")

# The title is drawn first: the imports below load torch, which the router's preload has started (seconds on a busy server's first visit).
wait_for_torch()
from cnnviz.ui import arch_view, cached  # noqa: E402
from cnnviz.ui.logic import options_key  # noqa: E402
from cnnviz.ui.widgets import PERSIST, architecture_picker, model_select  # noqa: E402

picked = architecture_picker(prefix="arch", default="alexnet")
problem = cached.input_size_problem(picked.arch, picked.image_size, picked.options)
if problem:
    st.error(problem)
else:
    arch_view.cost_metrics(picked.arch, picked.options, num_classes=picked.num_classes,
                           image_size=picked.image_size)
    table, diagram = st.columns([3, 2])
    with table:
        st.subheader("Layers")
        arch_view.layer_table(picked.arch, picked.options, num_classes=picked.num_classes,
                              image_size=picked.image_size)
    with diagram:
        st.subheader("Blocks")
        # Its natural size: stretched to a wide column, the diagram's text grew to 30 px.
        st.graphviz_chart(cached.block_diagram(picked.arch, options_key(picked.options)), width="content")
    arch_view.printed_model(picked.arch, picked.options, num_classes=picked.num_classes,
                            image_size=picked.image_size)

st.divider()
st.subheader("Side by side")
st.caption("Two architectures with their default options, at the same input size and number of classes.")
size_col, _ = st.columns([1, 3])
st.session_state.setdefault("arch_compare_size", 224)
compare_size = int(size_col.number_input("Input size for both (px)", min_value=1, max_value=1024, step=1,
                                         key="arch_compare_size", persist_state=PERSIST))
archs = []
for col, key, default in zip(st.columns(2), ("arch_left_model", "arch_right_model"), ("alexnet", "resnet18")):
    with col:
        archs.append(model_select(key=key, label="Architecture", default=default))
arch_view.side_by_side(archs, image_size=compare_size, num_classes=picked.num_classes or 1000)
