"""The Teacher page in AppTest: the password guard, the queue with estimates, cancel, disk use and cleanup."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from streamlit.testing.v1 import AppTest

from cnnviz.runs import RunStore
from cnnviz.training.config import TrainConfig

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "teacher.py")
TIMEOUT = 120
CONFIG = TrainConfig(arch="cifar_resnet", dataset="shapes", image_size=32, subset=8, val_subset=4, epochs=2)


def finished(store: RunStore, student: str, acc: float, size: int) -> int:
    """A finished run of ``student`` (10 s epochs) with a checkpoint file of ``size`` bytes."""
    run_id = store.create(CONFIG, student=student)
    store.record_start(run_id, params=1, flops=1, classes=["a", "b"], image_size=32)
    path = store.checkpoint_path(run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    store.record_checkpoint(run_id, path, best_epoch=2, best_val_acc=acc)
    store.record_end(run_id, SimpleNamespace(
        status="finished", message=None, epochs=[{"epoch": e, "val_acc": acc, "seconds": 10.0} for e in (1, 2)],
        best_val_acc=acc, best_epoch=2, train_seconds=21.0, params=1, flops=1, classes=["a", "b"], confusion=None,
        per_class_acc=None, checkpoint=None, val_predictions=None))
    return run_id


@pytest.fixture
def seeded():
    """Ann has two finished runs and one training; Bob and Cat wait in the queue."""
    store = RunStore()
    ids = {"ann_low": finished(store, "ann", 0.5, 3000), "ann_best": finished(store, "ann", 0.9, 2000)}
    ids["running"] = store.create(CONFIG, student="ann")
    store.record_start(ids["running"], params=1, flops=1, classes=["a", "b"], image_size=32)
    store.record_epoch(ids["running"], {"epoch": 1, "val_acc": 0.4, "seconds": 10.0})
    ids["bob"] = store.create(CONFIG, student="bob")
    ids["cat"] = store.create(CONFIG.replace(epochs=4), student="cat")
    return store, ids


def table(at: AppTest, name: str):
    """A table of the page by its name (AppTest does not expose dataframe keys): in page order."""
    headers = {"running": "student", "queue": "position", "disk": "bytes"}
    found = [df.value for df in at.dataframe if headers[name] in df.value.columns]
    if name == "running":
        found = [df for df in found if "epoch" in df.columns]
    assert len(found) == 1, (name, [list(df.value.columns) for df in at.dataframe])
    return found[0]


def run_page(at: AppTest) -> AppTest:
    at.run(timeout=TIMEOUT)
    assert not at.exception, at.exception
    return at


def test_queue_and_running_runs_are_shown_with_estimates(seeded):
    store, ids = seeded
    at = run_page(AppTest.from_file(PAGE, default_timeout=TIMEOUT))
    running = table(at, "running")
    assert running["run"].tolist() == [ids["running"]] and running["epoch"].tolist() == ["1 of 2"]
    queue = table(at, "queue")
    assert queue["run"].tolist() == [ids["bob"], ids["cat"]] and queue["position"].tolist() == [1, 2]
    assert queue["student"].tolist() == ["bob", "cat"]
    assert "unknown" not in " ".join(queue["ends"])  # learned from ann's finished epochs


def test_cancel_asks_the_run_to_stop(seeded):
    store, ids = seeded
    at = run_page(AppTest.from_file(PAGE, default_timeout=TIMEOUT))
    at.selectbox(key="teacher_cancel_run").set_value(ids["running"])
    at.button(key="teacher_cancel").click()
    run_page(at)
    assert store.stop_requested(ids["running"])
    assert any(f"Run {ids['running']} was asked to stop" in s.value for s in at.success)


def test_cleanup_frees_the_checkpoints_beyond_each_students_best(seeded, monkeypatch):
    store, ids = seeded
    monkeypatch.setenv("CNNVIZ_DISK_BUDGET", "5000")
    at = run_page(AppTest.from_file(PAGE, default_timeout=TIMEOUT))
    assert any("full" in w.value for w in at.warning)  # 5000 of 5000 bytes
    assert table(at, "disk")["bytes"].tolist() == [5000]
    at.number_input(key="teacher_keep_best").set_value(1)
    at.button(key="teacher_cleanup").click()
    run_page(at)
    assert any("Freed 2.9 KiB" in s.value for s in at.success)
    assert not store.checkpoint_path(ids["ann_low"]).exists() and store.checkpoint_path(ids["ann_best"]).exists()


def test_the_password_guards_the_page(seeded, monkeypatch):
    monkeypatch.setenv("CNNVIZ_TEACHER_PASSWORD", "s3cret")
    at = run_page(AppTest.from_file(PAGE, default_timeout=TIMEOUT))
    assert not at.dataframe
    at.text_input(key="teacher_password").input("wrong")
    run_page(at)
    assert at.error and not at.dataframe
    at.text_input(key="teacher_password").input("s3cret")
    run_page(at)
    assert table(at, "queue")["student"].tolist() == ["bob", "cat"]
