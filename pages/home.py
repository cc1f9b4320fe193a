"""Home: what cnnviz is for, the experiments a class can redo, where things live. No torch here."""

import streamlit as st

from cnnviz import paths
from cnnviz.ui.nav import PAGES, page_link, require_router
from cnnviz.ui.sidebar import device_hint

require_router()
st.title("cnnviz: compare CNN architectures")
st.markdown(
    "Build classic convolutional networks (AlexNet, VGG, ResNet and hybrids such as AlexNet with "
    "residual shortcuts or squeeze-and-excitation blocks), **look inside** them, **train** them for a "
    "few minutes, **compare** the runs, and **use** them on your own photos."
)

st.subheader("Where to go")
columns = st.columns(3)
for i, info in enumerate(p for p in PAGES if not p.default):
    with columns[i % 3]:
        page_link(info)
        st.caption(info.blurb)

st.subheader("Experiments you can redo")
st.markdown(
    """
1. **AlexNet vs ResNet-18 on ants vs bees**: fine-tune everything, then freeze all but the last layer
   (published best val: AlexNet 0.902 / 0.948, ResNet-18 0.948 / 0.954).
2. **CIFAR-10: AlexNet from scratch vs fine-tuned, ResNet-18, VGG16** (0.399, 0.897, 0.950, 0.937).
3. **Linear probes**: softmax regression on ResNet-18 features (last conv stage, a middle stage) and on raw pixels.
4. **CIFAR-100, fine (100) vs coarse (20) labels**, AlexNet vs ResNet, with confusion matrices.
5. **AlexResNet and AlexSE**: shortcuts around AlexNet's conv blocks; SE after block 1, 2 or both.
6. **Why residuals work**: plain vs residual nets of growing depth, shortcut A vs B, AlexNet's own
   ingredients (ReLU, LRN, dropout, PCA colour noise, momentum), cross-entropy vs BCE for two classes.
"""
)
st.caption("The Experiments page sets each of these up for you; the Train page lets you change any setting.")

st.subheader("Where things live")
left, right = st.columns(2)
left.markdown(f"**Runs and checkpoints**  \n`{paths.home()}`  \n(set `CNNVIZ_HOME` to move them)")
right.markdown(
    f"**Datasets**  \n`{paths.data_root()}`  \n`shapes` is generated and always works offline; put "
    "`hymenoptera_data.zip` or `cifar10.zip` here for the real ones (the Train page says exactly what is missing)."
)
st.markdown(f"**Device for training:** {device_hint()}")
