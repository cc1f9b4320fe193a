"""The sidebar every page shares: where runs and data live, the device, the run being watched."""

from __future__ import annotations

import functools
import platform
import shutil
import sys
from pathlib import Path

import streamlit as st

from cnnviz import paths
from cnnviz.device import describe_cpu, describe_device
from cnnviz.ui import nav, state
from cnnviz.ui.student import identity_widget


@functools.lru_cache(maxsize=1)
def _torch_device() -> str:
    return describe_device()


def device_hint() -> str:
    """The device training will use, without importing torch when nothing else has yet.

    Importing torch takes seconds; Home must paint before that, so until the preload
    has loaded torch we guess from the drivers present.
    """
    if "torch" in sys.modules and nav.torch_ready():  # in sys.modules already while another thread imports it
        return _torch_device()
    if shutil.which("nvidia-smi") or Path("/proc/driver/nvidia/version").exists():
        return "a CUDA GPU (NVIDIA driver found)"
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        return "the Apple GPU (MPS)"
    return describe_cpu()  # the same cores describe_device counts, without the torch threads it cannot know yet


# Every page reads from 900 px (a projector beside a 300 px sidebar) to 1920 px. Streamlit squeezes
# columns until labels read "Ne..." and charts shrink to slivers; here a column too narrow for its
# content wraps to the next row instead, and narrow screens lose some of the page's side padding.
LAYOUT_CSS = """<style>
[data-testid="stHorizontalBlock"] { flex-wrap: wrap; }
[data-testid="stHorizontalBlock"] > [data-testid="stColumn"] { min-width: min(10rem, 100%); }
[data-testid="stHorizontalBlock"] > [data-testid="stColumn"]:has([data-testid="stMetric"]) {
  min-width: min(12rem, 100%); }
[data-testid="stHorizontalBlock"] > [data-testid="stColumn"]:has([data-testid="stVegaLiteChart"]) {
  min-width: min(20rem, 100%); }
[data-testid="stHorizontalBlock"] > [data-testid="stColumn"]:has([data-testid="stButtonGroup"]) {
  min-width: min(30rem, 100%); }
@media (max-width: 1200px) {
  [data-testid="stMainBlockContainer"] { padding-left: 1.5rem; padding-right: 1.5rem; } }
</style>"""


def draw_sidebar() -> None:
    """Draw the shared sidebar (below the page menu) and the layout rules every page shares."""
    st.html(LAYOUT_CSS)  # style only: Streamlit adds it without taking space on the page
    with st.sidebar:
        identity_widget()
        st.caption(f"Device: **{device_hint()}**")
        st.caption(f"Runs and checkpoints: `{paths.home()}`")
        run_id = st.session_state.get(state.TRAIN_RUN)
        if run_id is not None:
            st.page_link("pages/train.py", label=f"Watching run {run_id}", icon=":material/monitoring:",
                         query_params={state.QUERY_RUN: str(run_id)})
