"""Fair share: which queued run starts next, from each student's recent training time (no torch, no I/O
beyond the connection it is given)."""

from __future__ import annotations

import sqlite3

NOMINAL_RUN_SECONDS = 60.0  # what a queued run is assumed to add to its student's usage when ordering the queue

__all__ = ["NOMINAL_RUN_SECONDS", "fair_order", "usage_by_student"]


def fair_order(queued: list[tuple[int, str, float]], usage: dict[str, float], *,
               nominal: float = NOMINAL_RUN_SECONDS) -> list[int]:
    """Run ids of ``queued`` ``(id, student, created_at)`` in the order they start.

    Each next run goes to the student with the least ``usage`` (training seconds recently), ties
    to the earliest submission; a student is counted ``nominal`` seconds more per run ahead in
    line, so one student's long list interleaves with the others' runs instead of blocking them.
    """
    usage = dict(usage)
    waiting: dict[str, list[tuple[float, int]]] = {}
    # Submission order is the id order: ids are handed out under the store's write lock, while
    # created_at is read before it, so two sessions submitting at once can stamp them the other way.
    for run_id, student, created in sorted(queued, key=lambda q: q[0]):
        waiting.setdefault(student or "", []).append((run_id, run_id))
    order = []
    while waiting:
        student = min(waiting, key=lambda s: (usage.get(s, 0.0), waiting[s][0]))
        order.append(waiting[student].pop(0)[1])
        usage[student] = usage.get(student, 0.0) + nominal
        if not waiting[student]:
            del waiting[student]
    return order


def usage_by_student(conn: sqlite3.Connection, now: float, since_seconds: float) -> dict[str, float]:
    """Training seconds per student within ``[now - since_seconds, now]`` (running runs until ``now``)."""
    cutoff = now - since_seconds
    rows = conn.execute("SELECT student, status, started_at, finished_at FROM runs WHERE started_at IS NOT NULL "
                        "AND (finished_at IS NULL OR finished_at > ?)", (cutoff,)).fetchall()
    usage: dict[str, float] = {}
    for r in rows:
        end = now if r["status"] == "running" else r["finished_at"]
        if end is None:
            continue  # queued again to resume: it counts once it runs
        seconds = max(0.0, min(end, now) - max(r["started_at"], cutoff))
        usage[r["student"] or ""] = usage.get(r["student"] or "", 0.0) + seconds
    return usage


