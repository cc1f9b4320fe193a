"""Learn: the ideas behind the architectures, each with its formula and a small live demo."""

import streamlit as st

from cnnviz.ui.nav import require_router, wait_for_torch

require_router()

st.title("Learn")
st.caption("Why AlexNet worked, why residual connections let networks go deep, what squeeze-and-excitation "
           "blocks do, and which loss to use for two classes. Every number below is computed live with the same "
           "PyTorch calls the models use.")

# The title is drawn first: the imports below load torch, which the router's preload has started (seconds on a busy server's first visit).
wait_for_torch()
from cnnviz.ui import learn_view as view  # noqa: E402

TOPICS = {
    "AlexNet's ingredients": (view.relu_vs_tanh, view.lrn, view.dropout, view.pca_colour, view.sgd_recipe),
    "Residual networks": (view.residual_blocks, view.bottleneck),
    "Squeeze-and-excitation": (view.squeeze_excitation,),
    "Losses for two classes": (view.losses,),
    "Inside a trained run": (view.filters_and_maps,),
}
tabs = st.tabs(list(TOPICS), key="learn_topic", bind="query-params")
for tab, sections in zip(tabs, TOPICS.values()):
    if tab.open is False:  # lazy: only the chosen topic runs
        continue
    with tab:
        for index, section in enumerate(sections):
            if index:
                st.divider()
            section()
