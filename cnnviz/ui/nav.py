"""The app's pages: one list that the router registers and the Home page links to."""

from __future__ import annotations

import gc
import importlib
import runpy
import threading
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class PageInfo:
    """One page of the app: its file, title, icon and the one line Home shows about it."""

    path: str
    title: str
    icon: str
    blurb: str
    default: bool = False


PAGES = (
    PageInfo("pages/home.py", "Home", ":material/home:", "What the app is for and where to start.", default=True),
    PageInfo("pages/architectures.py", "Architectures", ":material/account_tree:",
             "Build a network, toggle residual and SE blocks, see its layers, parameters and FLOPs."),
    PageInfo("pages/train.py", "Train", ":material/model_training:",
             "Train on shapes, ants vs bees, CIFAR or your own pictures, with live curves."),
    PageInfo("pages/compare.py", "Compare", ":material/compare_arrows:",
             "Overlay the curves of several runs; accuracy against time, parameters and FLOPs."),
    PageInfo("pages/predict.py", "Predict", ":material/image_search:",
             "Upload a photo and see what each trained model thinks, with a Grad-CAM heat map."),
    PageInfo("pages/experiments.py", "Experiments", ":material/science:",
             "Redo the course comparisons (AlexNet vs ResNet, probes, AlexSE...) in a few clicks."),
    PageInfo("pages/learn.py", "Learn", ":material/school:",
             "Why residuals work, what SE blocks do, and AlexNet's own ingredients."),
    PageInfo("pages/teacher.py", "Teacher", ":material/supervisor_account:",
             "The class's queue and running runs, cancel any run, checkpoint disk use and cleanup."),
)


def _missing_page(info: PageInfo):
    """A stand-in page for a page file that is not there, so the rest of the app keeps working."""

    def missing() -> None:
        st.title(info.title)
        st.error(f"This page's file `{info.path}` is missing from the installation; the other pages still work.")

    missing.__name__ = Path(info.path).stem
    return missing


def build_pages() -> list:
    """``st.Page`` objects for every page, in menu order."""
    pages = []
    for info in PAGES:
        target = info.path if (ROOT / info.path).is_file() else _missing_page(info)
        pages.append(st.Page(target, title=info.title, icon=info.icon, default=info.default,
                             url_path=None if info.default else Path(info.path).stem))
    return pages


def page_link(info: PageInfo, **kwargs) -> None:
    """``st.page_link`` to ``info``'s page (plain text when its file is missing)."""
    if (ROOT / info.path).is_file():
        st.page_link(info.path, label=info.title, icon=info.icon, **kwargs)
    else:
        st.markdown(f"**{info.title}** (not installed)")


def legacy_pages_mode() -> bool:
    """Whether Streamlit is running page files on its own, without app.py (its legacy ``pages/`` mode).

    Streamlit 1.67 offers no public way to ask this, nor to keep a ``pages/`` folder
    next to the entry file without that mode: its docs only promise that the folder
    is ignored once any session has called ``st.navigation``. The state is the private
    class flag ``PagesManager.uses_pages_directory`` (True once a ``pages/`` folder is
    seen, False from the first ``st.navigation`` call). This is the one place the app
    reads it; tests/test_nav.py fails if Streamlit renames it or changes its meaning.
    """
    from streamlit.runtime.pages_manager import PagesManager

    return bool(PagesManager.uses_pages_directory)


def require_router() -> None:
    """Make sure this page runs inside app.py's ``st.navigation``; call it first in every page.

    On the first visit after a server start (and in AppTest on every run) Streamlit
    treats ``pages/`` as a legacy multipage folder, so a deep link (``/train?run=3``)
    would run the page file alone: no router, no sidebar, the wrong menu. Then this
    runs app.py, which routes back to this page properly, and ends the outer run.
    """
    if legacy_pages_mode():
        runpy.run_path(str(ROOT / "app.py"), run_name="__main__")
        st.stop()


# What the pages import beyond the router: torch, torchvision and the registries first, then the pages' views.
PRELOADED = ("cnnviz.data", "cnnviz.models", "cnnviz.inspect", "cnnviz.ui.arch_view", "cnnviz.ui.train_setup",
             "cnnviz.ui.run_view", "cnnviz.ui.compare_view", "cnnviz.ui.predict_view", "cnnviz.ui.experiments_view",
             "cnnviz.ui.learn_view", "cnnviz.ui.teacher_view")


def _import_torch_side() -> None:
    try:
        for name in PRELOADED:
            importlib.import_module(name)
    finally:  # a view that fails to import is the page's to report; the rest is frozen all the same
        freeze_imports()


_frozen = threading.Event()


def freeze_imports() -> None:
    """Move every object alive now (the imported modules: over 400,000 with torch) out of the garbage
    collector's sight, once per process.

    Streamlit runs a full ``gc.collect()`` after every script run (``runner.postScriptGC``), holding the
    GIL: with torch loaded that took about 0.2 s per click on two cores, for every session of the class
    at once, mostly spent re-checking modules that live as long as the server. Frozen objects are never
    freed. The preload calls this once its imports are done, seconds after the server's first visit:
    what sessions alive at that moment hold in reference cycles stays (bounded: those sessions' objects,
    once); everything made later is collected as before.
    """
    if _frozen.is_set():
        return
    _frozen.set()
    gc.collect()
    gc.freeze()


def torch_ready() -> bool:
    """Whether the preload has finished, so torch can be used without waiting on its import lock."""
    return not preload_torch().is_alive()


@st.cache_resource(show_spinner=False)
def preload_torch() -> threading.Thread:
    """Import torch and the model and dataset registries in a background thread, once per server.

    The router imports no torch so Home paints at once; without this, the first student to open a
    page that needs torch waits for the import (seconds on a busy two-core box) on a blank page.
    Pages call ``wait_for_torch`` after their title and before their own torch imports: two threads
    importing torch's submodules at once can leave one with a half-initialised module.
    """
    thread = threading.Thread(target=_import_torch_side, name="cnnviz-preload-torch", daemon=True)
    thread.start()
    return thread


def wait_for_torch() -> None:
    """Block until ``preload_torch``'s import is done (starting it if the router has not), so this
    thread never imports torch alongside it."""
    preload_torch().join()
