"""The app's local training workers, started once per server process (``CNNVIZ_WORKERS=0``: none)."""

from __future__ import annotations

import streamlit as st

from cnnviz import paths
from cnnviz.jobs.pool import WorkerPool, ensure_workers
from cnnviz.runs import RunStore


@st.cache_resource(show_spinner=False)
def _pool(home: str) -> WorkerPool | None:
    return ensure_workers(RunStore(home))


def start_workers() -> WorkerPool | None:
    """The worker pool for this server's run store; on each page load, a dead worker is replaced."""
    pool = _pool(str(paths.home()))
    if pool is not None:
        pool.check()
    return pool
