"""Checkpoint disk use per student, the disk budget, and keeping each student's best N checkpoints."""

from __future__ import annotations

import pytest

from cnnviz.runs import RunStore, cleanup_checkpoints, disk_status, disk_use_by_student, parse_bytes
from cnnviz.runs.cleanup import NO_RUN, disk_budget
from cnnviz.training.config import TrainConfig


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "home")


def add_run(store: RunStore, student: str, acc: float | None, size: int, *, status: str = "finished") -> int:
    """A run of ``student`` with a best accuracy and a checkpoint file of ``size`` bytes."""
    run_id = store.create(TrainConfig(), student=student, status="running")
    path = store.checkpoint_path(run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    store.record_checkpoint(run_id, path, best_epoch=1, best_val_acc=acc)
    if status != "running":
        store.set_status(run_id, status)
    return run_id


def test_parse_bytes():
    assert parse_bytes("5GB") == 5 * 10**9
    assert parse_bytes("2.5 GiB") == int(2.5 * 2**30)
    assert parse_bytes("700mb") == 700 * 10**6
    assert parse_bytes("1234") == 1234
    with pytest.raises(ValueError, match="not a size"):
        parse_bytes("lots")


def test_disk_use_is_summed_per_student(store):
    add_run(store, "ann", 0.5, 300)
    add_run(store, "ann", 0.6, 200)
    add_run(store, "bob", 0.7, 100)
    assert disk_use_by_student(store) == {"ann": 500, "bob": 100}


def test_the_students_shares_add_up_to_the_folders_total(store):
    """A training run's last-epoch file counts as its student's; a file no run points to has its own row."""
    running = add_run(store, "ann", 0.5, 300, status="running")
    store.last_checkpoint_path(running).write_bytes(b"x" * 40)
    add_run(store, "bob", 0.7, 100)
    (store.checkpoint_dir / "run-99.pt").write_bytes(b"x" * 7)  # its run was deleted behind the store's back
    use = disk_use_by_student(store)
    assert use == {"ann": 340, "bob": 100, NO_RUN: 7}
    assert sum(use.values()) == disk_status(store).used
    store.set_status(running, "stopped")
    store.delete(running)  # its best and its last-epoch file go with it: nothing is left to no run
    assert disk_use_by_student(store) == {"bob": 100, NO_RUN: 7}


def test_cleanup_keeps_each_students_best_and_never_a_running_run(store):
    ann_low = add_run(store, "ann", 0.5, 300)
    ann_best = add_run(store, "ann", 0.9, 200)
    ann_mid = add_run(store, "ann", 0.7, 100)
    ann_running = add_run(store, "ann", 0.1, 1000, status="running")
    bob_only = add_run(store, "bob", 0.2, 50)

    freed = cleanup_checkpoints(store, keep_best=1)

    assert freed == 400  # ann's 0.5 and 0.7 runs
    assert not store.checkpoint_path(ann_low).exists() and not store.checkpoint_path(ann_mid).exists()
    assert store.get(ann_low).checkpoint is None and store.get(ann_low).best_val_acc == 0.5  # metrics stay
    for kept in (ann_best, ann_running, bob_only):
        assert store.checkpoint_path(kept).exists() and store.get(kept).checkpoint
    assert cleanup_checkpoints(store, keep_best=1) == 0  # nothing more to free


def test_disk_budget_warns_at_80_percent(store, monkeypatch):
    add_run(store, "ann", 0.5, 700)
    assert disk_status(store, budget=1000).warning is None
    add_run(store, "bob", 0.5, 150)
    status = disk_status(store, budget=1000)
    assert status.used == 850 and status.fraction == pytest.approx(0.85)
    assert "85% full" in status.warning
    monkeypatch.setenv("CNNVIZ_DISK_BUDGET", "5GB")
    assert disk_budget() == 5 * 10**9 and disk_status(store).warning is None
    monkeypatch.delenv("CNNVIZ_DISK_BUDGET")
    assert disk_budget() is None and disk_status(store).budget is None
