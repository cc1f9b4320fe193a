"""Streamlit pieces of the Teacher page: the password guard, the queue, who trains what, cancel, disk use.

The numbers come from the run store, ``cnnviz.jobs.estimates`` (when each queued run should start
and end) and ``cnnviz.runs.cleanup`` (disk use, the budget, the cleanup). Every widget key starts
with ``teacher_``.
"""

from __future__ import annotations

import hmac
import os
import time
from datetime import datetime

import pandas as pd
import streamlit as st

from cnnviz import recipes
from cnnviz.inspect import format_bytes
from cnnviz.jobs.estimates import estimate_run, queue_schedule, remaining_seconds
from cnnviz.runs import Run, RunStore, cleanup_checkpoints, disk_status, disk_use_by_student
from cnnviz.runs.cleanup import NO_RUN

UNLOCKED = "teacher_unlocked"  # session flag: the password was given in this session
NO_STUDENT = "(no name)"


def require_teacher() -> None:
    """Ask for ``CNNVIZ_TEACHER_PASSWORD`` when it is set, and stop the page until it is given."""
    password = os.environ.get("CNNVIZ_TEACHER_PASSWORD", "")
    if not password or st.session_state.get(UNLOCKED):
        return
    given = st.text_input("Teacher password", type="password", key="teacher_password")
    if given and hmac.compare_digest(given.encode(), password.encode()):
        st.session_state[UNLOCKED] = True
        return
    if given:
        st.error("That is not the teacher password.")
    st.info("This page is for the teacher: it can cancel any run and delete checkpoints.")
    st.stop()


def workers() -> int:
    """Runs that train at once: ``CNNVIZ_WORKERS`` when it names a number above zero, else 1."""
    value = os.environ.get("CNNVIZ_WORKERS", "")
    return int(value) if value.isdigit() and int(value) > 0 else 1


def _clock(when: float | None, now: float) -> str:
    if when is None:
        return "unknown"
    return datetime.fromtimestamp(when).strftime("%H:%M") + f" (in {recipes.format_seconds(when - now)})"


def _what(run: Run) -> str:
    """``alexnet on shapes, scratch, 5 epochs``, after the run's own name where it has one besides "run N"."""
    cfg = run.config
    named = run.label and run.label.strip().lower() != f"run {run.id}"
    return (f"{run.label}: " if named else "") + f"{cfg.arch} on {cfg.dataset}, {cfg.mode}, {cfg.epochs} epochs"


def queue_section(store: RunStore, running: list[Run], queued: list[Run], fallback) -> None:
    """The queued runs in start order, with each one's estimated start and end."""
    st.subheader("Queue")
    if not queued:
        st.caption("Nothing is waiting.")
        return
    now = time.time()
    slots = queue_schedule(store, workers=max(workers(), len(running)), now=now, fallback=fallback,
                           running=running, queued=queued)
    # The long description last: on a narrow screen the estimated times stay in view.
    rows = [{"position": s.position, "student": s.run.student or NO_STUDENT, "run": s.run.id,
             "starts": _clock(s.start, now), "ends": _clock(s.end, now), "what": _what(s.run)} for s in slots]
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="teacher_queue")


def running_section(store: RunStore, running: list[Run], fallback) -> None:
    """Who is training what right now: student, run, epoch x of y, worker, estimated end."""
    st.subheader("Training now")
    if not running:
        st.caption("No run is training.")
        return
    now = time.time()
    rows = []
    for run in running:
        left = remaining_seconds(run, store, estimate_run(run.config, store, fallback=fallback))
        rows.append({"student": run.student or NO_STUDENT, "run": run.id,
                     "epoch": f"{len(store.epochs(run.id))} of {run.config.epochs}",
                     "ends": _clock(None if left is None else now + left, now),
                     "stopping": "yes" if run.stop_requested else "", "what": _what(run),
                     "worker": run.worker or run.device or ""})
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="teacher_running")


def cancel_section(store: RunStore, active: list[Run]) -> None:
    """Stop any queued or running run (a running one ends within one batch)."""
    st.subheader("Cancel a run")
    if not active:
        st.caption("There is nothing to cancel.")
        return
    labels = {run.id: f"run {run.id} · {run.student or NO_STUDENT} · {_what(run)} ({run.status})" for run in active}
    run_id = st.selectbox("Run", list(labels), format_func=labels.get, key="teacher_cancel_run")
    if st.button("Cancel this run", key="teacher_cancel", icon=":material/stop_circle:"):
        store.request_stop(run_id)
        st.success(f"Run {run_id} was asked to stop.")


def disk_section(store: RunStore) -> None:
    """Checkpoint disk use per student, the budget's warning, and the cleanup keeping each student's best N."""
    st.subheader("Disk")
    status = disk_status(store)
    budget = f" of {format_bytes(status.budget)}" if status.budget else " (no budget set: CNNVIZ_DISK_BUDGET)"
    st.markdown(f"Checkpoints use **{format_bytes(status.used)}**{budget}.")
    if status.warning:
        st.warning(status.warning, icon=":material/warning:")
    use = disk_use_by_student(store)
    if use:
        rows = [{"student": "(files of no run)" if s is NO_RUN else s or NO_STUDENT, "checkpoints": format_bytes(b),
                 "bytes": b} for s, b in use.items()]
        st.dataframe(pd.DataFrame(rows), hide_index=True, key="teacher_disk")
    keep = st.number_input("Keep each student's best", min_value=0, max_value=100, value=3, step=1,
                           key="teacher_keep_best", help="checkpoints, by best validation accuracy; running runs "
                                                         "are never touched")
    if st.button("Delete the other checkpoints", key="teacher_cleanup", icon=":material/delete_sweep:"):
        freed = cleanup_checkpoints(store, keep_best=int(keep))
        st.success(f"Freed {format_bytes(freed)}.")
