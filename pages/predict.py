"""Predict: what do the trained models say about a picture, and where do they look (Grad-CAM)?"""

import streamlit as st

from cnnviz.ui.nav import require_router, wait_for_torch

require_router()

st.title("Predict")
st.caption("Give the models a picture: each one lists its most likely classes and a Grad-CAM heat map shows "
           "which part of the picture drove its top answer.")

# The title is drawn first: the imports below load torch, which the router's preload has started (seconds on a busy server's first visit).
wait_for_torch()
from cnnviz.ui import predict_view as view  # noqa: E402
from cnnviz.ui.widgets import link_to_train, open_store  # noqa: E402
store = open_store()
with st.spinner("Looking for trained models..."):  # the first look imports torch: a few seconds
    choices = view.model_choices(store)
if not choices:
    link_to_train("No trained model yet: train a run first (a `shapes` run takes about a minute), "
                       "then come back to try it on pictures.")
    view.pretrained_note(choices)
    st.stop()

images = view.image_inputs()
models = view.pick_models(choices, datasets=view.picked_datasets())
view.pretrained_note(choices)
topk = st.slider("Classes to list (top-k)", 1, 10, 5, key="predict_topk")
if not models:
    st.info("Choose at least one model above.")
    st.stop()
if not images:
    st.info("Upload pictures, choose sample pictures, or take one with the camera.")
    st.stop()

with st.spinner("Predicting..."):
    results = view.analyse_images(images=images, models=models, topk=topk)
view.show_results(results)
