"""The run store and checkpoints: real SQLite files and real checkpoint files in tmp folders."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from cnnviz.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from cnnviz.runs import RunNotFound, RunStore, checkpoint_path
from cnnviz.runs import store as store_module
from cnnviz.training.config import TrainConfig


def epoch_row(epoch: int, acc: float = 0.5) -> dict:
    return {"epoch": epoch, "train_loss": 1.0 / epoch, "train_acc": acc, "val_loss": 1.1 / epoch, "val_acc": acc,
            "val_top5": None, "lr": 0.01, "seconds": 1.5, "images_per_sec": 100.0}


def tiny_payload(**extra) -> dict:
    return {"arch": "softmax", "options": {}, "num_classes": 2, "classes": ["ants", "bees"],
            "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "image_size": 8,
            "state_dict": {"fc.weight": torch.randn(2, 192), "fc.bias": torch.zeros(2)},
            "config": TrainConfig(arch="softmax").to_json(), "epoch": 2, "best_val_acc": 0.75,
            "mode": "scratch", "probe_layer": None, **extra}


def fake_result(status: str = "finished", checkpoint: dict | None = None) -> SimpleNamespace:
    return SimpleNamespace(
        status=status, message=None if status == "finished" else "why", epochs=[epoch_row(1, 0.5), epoch_row(2, 0.75)],
        best_val_acc=0.75, best_epoch=2, train_seconds=3.25, params=386, flops=768, classes=["ants", "bees"],
        confusion=[[3, 1], [0, 4]], per_class_acc=[0.75, 1.0], checkpoint=checkpoint, val_predictions=[0, 0, 1, 1])


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "home")


def test_round_trip(store):
    config = TrainConfig(arch="alexnet_cifar", options={"lrn": True}, epochs=2, name="first")
    run_id = store.create(config)
    run = store.get(run_id)
    assert (run.id, run.name, run.status, run.config) == (run_id, "first", "queued", config)
    assert run.started_at is None and run.checkpoint is None

    store.record_start(run_id, params=386, flops=768, classes=["ants", "bees"])
    store.record_epoch(run_id, epoch_row(1))
    store.record_batches(run_id, [(1, 0.9, 1), (2, 0.8, 1), (3, float("nan"), 1)])
    assert store.get(run_id).status == "running"
    assert [r["epoch"] for r in store.epochs(run_id)] == [1]
    assert [b["step"] for b in store.batches(run_id)] == [1, 2, 3]
    assert store.batches(run_id, since_step=2) == [{"step": 3, "epoch": 1, "loss": None}]

    store.record_end(run_id, fake_result(checkpoint=tiny_payload()))
    run = store.get(run_id)
    assert run.status == "finished" and run.finished_at >= run.started_at >= run.created_at
    assert (run.params, run.flops, run.classes) == (386, 768, ["ants", "bees"])
    assert (run.best_val_acc, run.best_epoch, run.train_seconds) == (0.75, 2, 3.25)
    assert run.confusion == [[3, 1], [0, 4]] and run.per_class_acc == [0.75, 1.0]
    assert run.val_predictions == [0, 0, 1, 1]
    assert [r["val_acc"] for r in store.epochs(run_id)] == [0.5, 0.75]
    assert Path(run.checkpoint) == store.checkpoint_path(run_id) == store.home / "checkpoints" / f"run-{run_id}.pt"
    ckpt = load_checkpoint(run.checkpoint)
    assert ckpt.extra["run_id"] == run_id and ckpt.classes == ["ants", "bees"]
    assert checkpoint_path(run_id, store=store) == Path(run.checkpoint)


def test_list_filters_and_orders(store):
    ids = [store.create(TrainConfig(seed=i)) for i in range(3)]
    store.set_status(ids[1], "running")
    store.set_status(ids[2], "failed", "boom")
    assert [r.id for r in store.list()] == ids[::-1]
    assert [r.id for r in store.list("running")] == [ids[1]]
    assert [r.id for r in store.list(("queued", "failed"))] == [ids[2], ids[0]]
    assert store.get(ids[2]).message == "boom" and store.get(ids[2]).finished_at is not None
    with pytest.raises(ValueError, match="status must be one of"):
        store.set_status(ids[0], "exploded")
    with pytest.raises(RunNotFound):
        store.get(999)


def test_schema_is_versioned_and_newer_refused(tmp_path):
    store = RunStore(tmp_path / "a")
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == store_module.SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.execute(f"PRAGMA user_version = {store_module.SCHEMA_VERSION + 1}")
    store_module._READY.discard(str(store.path.resolve()))
    with pytest.raises(RuntimeError, match="newer cnnviz"):
        RunStore(tmp_path / "a")


def test_concurrent_writers_and_readers(store):
    """Several sessions and a worker writing at once: nothing lost, nothing locked."""
    errors: list[BaseException] = []

    def writer(seed: int) -> None:
        try:
            other = RunStore(store.home)  # each session has its own RunStore object
            run_id = other.create(TrainConfig(seed=seed))
            other.record_start(run_id, params=1, flops=2, classes=["a", "b"])
            for epoch in range(1, 11):
                other.record_batches(run_id, [(epoch * 10 + i, 0.1 * i, epoch) for i in range(10)])
                other.record_epoch(run_id, epoch_row(epoch))
            other.set_status(run_id, "finished")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader() -> None:
        try:
            for _ in range(30):
                for run in store.list():
                    store.epochs(run.id)
                    store.batches(run.id)
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)] + [threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    runs = store.list()
    assert len(runs) == 6 and {r.status for r in runs} == {"finished"}
    assert all(len(store.epochs(r.id)) == 10 and len(store.batches(r.id)) == 100 for r in runs)


def test_concurrent_writer_in_another_process(store):
    code = ("import sys; from cnnviz.runs import RunStore; from cnnviz.training.config import TrainConfig\n"
            "s = RunStore(sys.argv[1])\n"
            "for i in range(20):\n"
            "    r = s.create(TrainConfig(seed=i)); s.record_epoch(r, {'epoch': 1, 'val_acc': 0.5})\n")
    child = subprocess.Popen([sys.executable, "-c", code, str(store.home)])
    for i in range(20):
        store.record_epoch(store.create(TrainConfig(seed=100 + i)), {"epoch": 1, "val_acc": 0.5})
    assert child.wait() == 0
    assert len(store.list()) == 40


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _set_owner(store: RunStore, run_id: int, pid: int, token: str | None) -> None:
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE runs SET owner_pid=?, owner_token=? WHERE id=?", (pid, token, run_id))


def test_mark_interrupted_after_a_crash(tmp_path):
    """Running runs of a dead process become interrupted with their epochs; a living process's runs stay,
    and queued runs wait for a worker whoever submitted them (the store is the queue)."""
    home = tmp_path / "home"
    store = RunStore(home)
    crashed = store.create(TrainConfig(name="crashed"))
    store.record_start(crashed, params=1, flops=1, classes=["a", "b"])
    store.record_epoch(crashed, epoch_row(1))
    store.record_epoch(crashed, epoch_row(2))
    waiting = store.create(TrainConfig(name="was queued"))
    reused_pid = store.create(TrainConfig(name="pid reused by another program"))
    store.set_status(reused_pid, "running")
    live = store.create(TrainConfig(name="live"))
    store.set_status(live, "running")
    done = store.create(TrainConfig(name="done"))
    store.set_status(done, "finished")
    dead = _dead_pid()
    _set_owner(store, crashed, dead, "123")
    _set_owner(store, waiting, dead, "123")
    _set_owner(store, reused_pid, os.getpid(), "not-my-start-time")

    # Another RunStore in the same process (a second session) does not sweep again...
    assert store.get(crashed).status == "running"
    # ...but the sweep (as on the first open in a new process) marks exactly the orphans.
    assert store.mark_interrupted() == 2
    statuses = {r.name: r.status for r in store.list()}
    assert statuses == {"crashed": "interrupted", "was queued": "queued",
                        "pid reused by another program": "interrupted", "live": "running", "done": "finished"}
    assert "finished epochs are kept" in store.get(crashed).message
    assert [r["epoch"] for r in store.epochs(crashed)] == [1, 2]
    assert store.mark_interrupted() == 0


def test_first_open_in_a_process_sweeps(tmp_path):
    """A process that crashed left a run running; the next process opening the store marks it."""
    home = tmp_path / "home"
    code = ("import sys, os; from cnnviz.runs import RunStore; from cnnviz.training.config import TrainConfig\n"
            "s = RunStore(sys.argv[1]); r = s.create(TrainConfig(name='x'))\n"
            "s.record_start(r, params=1, flops=1, classes=[])\n"
            "s.record_epoch(r, {'epoch': 1, 'val_acc': 0.25}); os._exit(0)\n")
    subprocess.run([sys.executable, "-c", code, str(home)], check=True)
    store = RunStore(home)
    (run,) = store.list()
    assert run.status == "interrupted" and store.epochs(run.id) == [{"epoch": 1, "val_acc": 0.25}]


def test_rename_delete_export(store):
    run_id = store.create(TrainConfig(arch="softmax"))
    store.record_start(run_id, params=386, flops=768, classes=["ants", "bees"])
    store.record_epoch(run_id, {**epoch_row(1), "grad_norms": {"conv1": 0.5}})
    store.record_epoch(run_id, epoch_row(2))
    with pytest.raises(ValueError, match="stop it before deleting"):
        store.delete(run_id)
    result = fake_result(checkpoint=tiny_payload())
    result.epochs[0]["grad_norms"] = {"conv1": 0.5}
    store.record_end(run_id, result)

    store.rename(run_id, "  my softmax  ")
    assert store.get(run_id).name == "my softmax" and store.get(run_id).label == "my softmax"

    rows = list(csv.DictReader(io.StringIO(store.export_csv(run_id))))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert json.loads(rows[0]["grad_norms"]) == {"conv1": 0.5} and rows[1]["val_acc"] == "0.75"

    card = json.loads(json.dumps(store.run_card(run_id)))
    assert card["format"] == "cnnviz-run-card/1" and card["name"] == "my softmax"
    assert card["config"]["arch"] == "softmax" and len(card["epochs"]) == 2
    assert card["results"]["best_val_acc"] == 0.75 and card["results"]["confusion"] == [[3, 1], [0, 4]]

    ckpt = Path(store.get(run_id).checkpoint)
    assert ckpt.is_file()
    store.delete(run_id)
    assert not ckpt.exists()
    with pytest.raises(RunNotFound):
        store.get(run_id)
    assert store.epochs(run_id) == [] and store.batches(run_id) == []


def test_recorder_writes_events(store):
    run_id = store.create(TrainConfig())
    rec = store.recorder(run_id, flush_seconds=3600, flush_batches=4)
    state = SimpleNamespace(params=10, flops=20, classes=["a", "b", "c"], epoch=1, loss=1.0, history=[])
    rec.before_fit(state)
    assert store.get(run_id).status == "running" and store.get(run_id).classes == ["a", "b", "c"]
    for i in range(3):
        state.loss = 1.0 - i * 0.1
        rec.after_batch(state)
    assert store.batches(run_id) == []  # buffered
    rec.after_batch(state)
    assert len(store.batches(run_id)) == 4  # flushed at flush_batches
    rec.after_batch(state)
    state.history.append(epoch_row(1))
    rec.after_epoch(state)
    assert len(store.batches(run_id)) == 5 and [r["epoch"] for r in store.epochs(run_id)] == [1]
    rec.after_fit(state)


# -- checkpoints -----------------------------------------------------------------------------------------


def test_checkpoint_round_trip_and_atomic_replace(tmp_path):
    path = tmp_path / "ck" / "model.pt"
    save_checkpoint(tiny_payload(best_val_acc=0.5), path)
    save_checkpoint(tiny_payload(best_val_acc=0.9, config={"arch": "softmax"}), path)
    ckpt = load_checkpoint(path)
    assert ckpt.format == "cnnviz-checkpoint/1" and ckpt.best_val_acc == 0.9
    assert ckpt.config == {"arch": "softmax"}
    assert json.loads(torch.load(path, weights_only=True)["config"]) == {"arch": "softmax"}  # JSON text on disk
    assert torch.equal(ckpt.state_dict["fc.bias"], torch.zeros(2))
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt"]  # no temp files left


def test_checkpoint_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    save_checkpoint(tiny_payload(best_val_acc=0.5), path)

    def broken_save(obj, fh, *args, **kwargs):
        fh.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tiny_payload(best_val_acc=0.9), path)
    monkeypatch.undo()
    assert load_checkpoint(path).best_val_acc == 0.5
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


SENTINEL = Path(os.environ.get("TMPDIR", "/tmp")) / "cnnviz-test-pwned"


def _pwn(path: str) -> None:  # what a malicious payload would run on load
    Path(path).write_text("executed")


class Evil:
    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (_pwn, (self.path,))


class Custom:
    def __init__(self):
        self.weights = torch.ones(2)


@pytest.mark.parametrize("bad", ["reduce", "custom"])
def test_pickled_payload_is_refused_and_never_runs(tmp_path, bad):
    sentinel = tmp_path / "executed.txt"
    path = tmp_path / "evil.pt"
    payload = tiny_payload(extra=Evil(str(sentinel)) if bad == "reduce" else Custom())
    torch.save({"format": "cnnviz-checkpoint/1", **payload}, path)
    with pytest.raises(CheckpointError, match=r"contains Python code \(pickled objects\); refused"):
        load_checkpoint(path)
    assert not sentinel.exists()


def test_foreign_and_corrupt_files_are_refused(tmp_path):
    plain = tmp_path / "plain.pt"
    torch.save({"fc.weight": torch.zeros(2, 2)}, plain)
    with pytest.raises(CheckpointError, match="not a cnnviz checkpoint"):
        load_checkpoint(plain)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00not a torch file at all")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(junk)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    good = tmp_path / "good.pt"
    save_checkpoint(tiny_payload(), good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(truncated)


def test_checkpoint_path_errors(store):
    with pytest.raises(CheckpointError, match="no run 42"):
        checkpoint_path(42, store=store)
    run_id = store.create(TrainConfig())
    with pytest.raises(CheckpointError, match="has no saved checkpoint"):
        checkpoint_path(run_id, store=store)


def test_an_older_file_gains_new_columns(tmp_path):
    home = tmp_path / "old"
    home.mkdir()
    with sqlite3.connect(home / "runs.sqlite3") as conn:  # a file from before image_size/device existed
        conn.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL DEFAULT '', "
                     "config TEXT NOT NULL, status TEXT NOT NULL, message TEXT, created_at REAL NOT NULL)")
        conn.execute("INSERT INTO runs (name, config, status, created_at) VALUES ('old', ?, 'finished', 1.0)",
                     (TrainConfig().to_json(),))
    store = RunStore(home)
    (run,) = store.list()
    assert (run.name, run.status, run.image_size, run.device) == ("old", "finished", None, None)
    store.record_start(run.id, params=1, flops=2, classes=["a"], image_size=32, device="cpu")
    assert (store.get(run.id).image_size, store.get(run.id).device) == (32, "cpu")


def test_a_killed_run_still_points_to_its_best_checkpoint(store):
    """The best epoch is written, and its path recorded, at every improvement, not only when the run ends."""
    from cnnviz.checkpoint import build_model
    from cnnviz.jobs import run_training
    from cnnviz.training import Callback

    class Kill(Callback):  # SystemExit is no callback error: it goes through train() as a real kill would
        def before_epoch(self, state):
            if state.epoch == 2:
                raise SystemExit("killed")

    config = TrainConfig(arch="softmax", dataset="shapes", subset=4, val_subset=2, epochs=3, batch_size=16,
                         image_size=16, device="cpu")
    run_id = store.create(config)
    with pytest.raises(SystemExit):
        run_training(config, store=store, run_id=run_id, callbacks=(Kill(),))
    run = store.get(run_id)
    assert run.status == "failed" and run.best_epoch == 1
    assert run.checkpoint == str(store.checkpoint_path(run_id)) == str(checkpoint_path(run_id, store=store))
    ckpt = load_checkpoint(run.checkpoint)
    assert (ckpt.epoch, ckpt.extra["run_id"]) == (1, run_id) and ckpt.optimizer_state is not None
    assert not build_model(ckpt).training


def test_record_end_keeps_the_checkpoint_written_during_training(store):
    run_id = store.create(TrainConfig(arch="softmax"))
    path = store.checkpoint_path(run_id)
    save_checkpoint(tiny_payload(best_val_acc=0.9, optimizer_state={"state": {}, "param_groups": []}), path)
    store.record_checkpoint(run_id, path, best_epoch=2, best_val_acc=0.9)
    assert store.get(run_id).checkpoint == str(path)
    store.record_end(run_id, fake_result(checkpoint=tiny_payload(best_val_acc=0.9)))
    assert load_checkpoint(path).optimizer_state == {"state": {}, "param_groups": []}  # not overwritten
