"""Workers as real processes on a real SQLite store: atomic claims, a queue that survives restarts, a
killed worker (run interrupted, best checkpoint kept, worker replaced), resume equal to an uninterrupted
run, fair share between students, and the app's pool switched off by CNNVIZ_WORKERS=0."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnnviz.jobs import LocalExecutor, Worker, resume, submit
from cnnviz.jobs.pool import WORKER_NICENESS, WorkerPool, configured_sizes, default_sizes, ensure_workers, worker_niceness
from cnnviz.runs import RunStore
from cnnviz.runs.store import fair_order
from cnnviz.training.config import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
WAIT = 240  # seconds; a guard against a hung test, never a timing assertion


def tiny(**changes) -> TrainConfig:
    """A shapes run that trains in a second or two on one CPU thread."""
    base = dict(arch="alexnet_cifar", dataset="shapes", subset=8, val_subset=4, image_size=32, epochs=1,
                batch_size=16, device="cpu", seed=0)
    return TrainConfig(**{**base, **changes})


def worker_env(home: Path) -> dict:
    return {**os.environ, "CNNVIZ_HOME": str(home), "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def start_worker(home: Path, log: Path, *extra: str) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "cnnviz", "worker", "--threads", "1", *extra],
                                env=worker_env(home), stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)


def wait_until(predicate, what: str, limit: float = WAIT) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.2)


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_two_workers_never_claim_the_same_run(tmp_path):
    home = tmp_path / "home"
    store = RunStore(home)
    ids = [submit(tiny(seed=i), student=f"s{i % 3}", store=store) for i in range(6)]
    workers = [start_worker(home, tmp_path / f"w{i}.log") for i in range(2)]
    try:
        wait_until(lambda: all(store.get(i).status == "finished" for i in ids), "six runs finished")
    finally:
        for w in workers:
            stop_process(w)
    claims = re.findall(r"trains run (\d+)", "".join((tmp_path / f"w{i}.log").read_text() for i in range(2)))
    assert sorted(map(int, claims)) == ids  # each run claimed exactly once
    names = {store.get(i).worker for i in ids}
    assert names <= {f"{os.uname().nodename}:{w.pid}" for w in workers}
    assert all(len(store.epochs(i)) == 1 for i in ids)


def test_a_restart_keeps_the_queue(tmp_path):
    home = tmp_path / "home"
    code = ("import sys; from cnnviz.jobs import submit; from cnnviz.runs import RunStore\n"
            "from cnnviz.training.config import TrainConfig\n"
            "s = RunStore(sys.argv[1])\n"
            "for i in range(2): submit(TrainConfig(arch='alexnet_cifar', subset=8, val_subset=4, image_size=32, "
            "epochs=1, device='cpu', seed=i), student='ann', store=s)\n")
    subprocess.run([sys.executable, "-c", code, str(home)], check=True, env=worker_env(home), cwd=ROOT)
    store = RunStore(home)  # the submitting process is gone: its queued runs still wait
    assert [r.status for r in store.list()] == ["queued", "queued"]
    assert [r.student for r in store.queue()] == ["ann", "ann"]
    for _ in range(2):
        done = subprocess.run([sys.executable, "-m", "cnnviz", "worker", "--once", "--threads", "1", "--json"],
                              env=worker_env(home), cwd=ROOT, capture_output=True, text=True, timeout=WAIT)
        assert '"trained": true' in done.stdout, done.stderr[-2000:]
    assert [r.status for r in store.list()] == ["finished", "finished"]


def test_kill_9_of_a_worker_interrupts_its_run_keeps_the_best_checkpoint_and_the_pool_replaces_it(tmp_path):
    home = tmp_path / "home"
    store = RunStore(home)
    run_id = submit(tiny(epochs=30, subset=40), student="kim", store=store)
    pool = WorkerPool(home, count=1, threads=1).start()
    try:
        wait_until(lambda: len(store.epochs(run_id)) >= 1 and store.get(run_id).checkpoint, "the first epoch saved")
        (victim,) = pool.pids()
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: store.get(run_id).status == "interrupted", "the run marked interrupted")
        wait_until(lambda: pool.pids() and pool.pids() != [victim], "a replacement worker")
        run = store.get(run_id)
        assert Path(run.checkpoint).is_file() and run.best_val_acc is not None and run.best_epoch >= 1
        assert store.last_checkpoint_path(run_id).is_file()
        assert "Resume" in run.message and pool.replaced >= 1
        # The replacement worker continues it once resumed; the epochs carry on numbering.
        done = len(store.epochs(run_id))
        resume(run_id, store=store)
        wait_until(lambda: len(store.epochs(run_id)) > done and store.get(run_id).status == "running",
                   "the resumed run trains")
        store.request_stop(run_id)
        wait_until(lambda: not store.get(run_id).active, "the stop")
        assert [r["epoch"] for r in store.epochs(run_id)] == list(range(1, len(store.epochs(run_id)) + 1))
        assert store.get(run_id).status == "stopped"
    finally:
        pool.stop()
    assert pool.pids() == []


@pytest.mark.parametrize("changes", [
    dict(scheduler="cosine", augment="cifar"),
    # the weight averages and the alternating flips carry state from epoch to epoch
    dict(scheduler="linear", augment="translate", alternate_flip=True, lookahead=True, ema_decay=0.9),
], ids=["plain", "averages-and-alternating-flips"])
def test_resume_continues_the_epochs_and_ends_where_an_uninterrupted_run_ends(tmp_path, changes):
    """Seeded, one CPU thread: stopped after epoch 1 and resumed == trained through (to 1e-6)."""
    import torch

    from cnnviz.training import train
    from cnnviz.training.callbacks import Callback

    torch.set_num_threads(1)
    config = tiny(epochs=3, **changes)
    store = RunStore(tmp_path / "home")

    straight = submit(config, student="a", store=store)
    assert Worker(store, executor=LocalExecutor(), threads=1).run_once()
    expected = store.epochs(straight)

    class StopAfterFirstEpoch(Callback):
        """Presses Stop (through the store) after epoch 1, then waits until the worker has seen it."""

        def __init__(self, run_id):
            self.run_id = run_id

        def after_epoch(self, state):
            if state.epoch == 1:
                store.request_stop(self.run_id)
                time.sleep(1.0)  # > the executor's poll: the next batch sees the stop

    interrupted = submit(config, student="a", store=store)

    def train_then_stop(cfg, *, callbacks=(), stop=None, **kwargs):
        return train(cfg, callbacks=(*callbacks, StopAfterFirstEpoch(interrupted)), stop=stop, **kwargs)

    assert Worker(store, executor=LocalExecutor(train_fn=train_then_stop), threads=1).run_once()
    run = store.get(interrupted)
    assert run.status == "stopped" and [r["epoch"] for r in store.epochs(interrupted)] == [1]
    assert store.last_checkpoint_path(interrupted).is_file()

    assert resume(interrupted, store=store) == interrupted
    assert store.get(interrupted).status == "queued"
    assert Worker(store, executor=LocalExecutor(), threads=1).run_once()
    run = store.get(interrupted)
    got = store.epochs(interrupted)
    assert run.status == "finished" and [r["epoch"] for r in got] == [1, 2, 3]
    for mine, theirs in zip(got, expected):
        for key in ("train_loss", "val_loss", "val_acc", "lr"):
            assert mine[key] == pytest.approx(theirs[key], abs=1e-6), (mine["epoch"], key)
    assert run.best_val_acc == pytest.approx(store.get(straight).best_val_acc, abs=1e-6)
    assert not store.last_checkpoint_path(interrupted).exists()  # finished: nothing left to resume


def test_fair_share_order_with_three_students(tmp_path):
    store = RunStore(tmp_path / "home")
    ids = {}
    for who in ("A", "A", "A", "B", "C"):
        ids.setdefault(who, []).append(store.create(tiny(), student=who))
    assert [r.student for r in store.queue()] == ["A", "B", "C", "A", "A"]
    assert [r.id for r in store.queue()] == [ids["A"][0], ids["B"][0], ids["C"][0], ids["A"][1], ids["A"][2]]
    assert store.queue_position(ids["C"][0]) == 3
    claimed = [store.claim_next("test:1").student for _ in range(5)]
    assert claimed == ["A", "B", "C", "A", "A"] and store.claim_next("test:1") is None
    # Usage decides: someone who trained recently waits behind someone who has not.
    assert fair_order([(1, "busy", 1.0), (2, "new", 2.0)], {"busy": 500.0}) == [2, 1]
    assert store.student_usage()["A"] >= 0.0


def test_a_running_run_counts_for_its_student(tmp_path):
    store = RunStore(tmp_path / "home")
    first = store.create(tiny(), student="A")
    store.claim_next("test:1")
    with store._write() as conn:  # it has been training for ten minutes
        conn.execute("UPDATE runs SET started_at=? WHERE id=?", (time.time() - 600, first))
    store.create(tiny(), student="A")
    later = store.create(tiny(), student="B")
    assert store.queue()[0].id == later
    assert 590 < store.student_usage()["A"] < 700


def test_stop_requests_and_heartbeats_go_through_the_store(tmp_path):
    store = RunStore(tmp_path / "home")
    queued, running = store.create(tiny(), student="a"), store.create(tiny(), student="b")
    assert store.claim_next("h:1").id == queued
    assert store.request_stop(running) is True  # still queued: stopped at once
    assert store.get(running).status == "stopped" and store.request_stop(running) is False
    assert store.request_stop(queued) is True and store.stop_requested(queued)
    before = store.get(queued).heartbeat_at
    time.sleep(0.01)
    store.heartbeat(queued, "h:1")
    store.heartbeat(queued, "someone-else:2")  # not the claimer: ignored
    assert store.get(queued).heartbeat_at > before


def test_another_machines_worker_is_dead_after_its_heartbeat_stops(tmp_path):
    from cnnviz.runs.store import HEARTBEAT_TIMEOUT

    store = RunStore(tmp_path / "home")
    run_id = store.create(tiny())
    store.claim_next("far:1")
    with store._write() as conn:
        conn.execute("UPDATE runs SET owner_host='far-away', heartbeat_at=? WHERE id=?", (time.time(), run_id))
    assert store.mark_interrupted() == 0
    with store._write() as conn:
        conn.execute("UPDATE runs SET heartbeat_at=? WHERE id=?", (time.time() - HEARTBEAT_TIMEOUT - 1, run_id))
    assert store.mark_interrupted() == 1 and store.get(run_id).status == "interrupted"


def test_pool_sizes_and_cnnviz_workers_0_starts_none(tmp_path, monkeypatch):
    assert default_sizes(2) == (2, 1) and default_sizes(8) == (4, 2) and default_sizes(32) == (8, 4)
    for cores in range(1, 65):
        workers, threads = default_sizes(cores)
        assert workers * threads <= cores
    assert configured_sizes({"CNNVIZ_WORKERS": "3", "CNNVIZ_THREADS": "1"})[0] == 3
    monkeypatch.setenv("CNNVIZ_WORKERS", "0")
    assert ensure_workers(RunStore(tmp_path / "home")) is None


def test_workers_run_below_the_servers_cpu_priority(tmp_path, monkeypatch):
    assert worker_niceness({}) == WORKER_NICENESS and worker_niceness({"CNNVIZ_WORKER_NICE": "40"}) == 19
    assert worker_niceness({"CNNVIZ_WORKER_NICE": "low"}) == WORKER_NICENESS  # a typo warns, never stops a worker
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    if mine > 12:
        pytest.skip(f"this test runs at nice {mine}: a worker 7 lower would be capped at 19 and prove nothing")
    monkeypatch.setenv("CNNVIZ_WORKER_NICE", "7")
    pool = WorkerPool(tmp_path / "home", count=1, threads=1).start()
    try:
        (pid,) = pool.pids()
        # the worker lowers its own priority once it has parsed its flags: poll for it
        wait_until(lambda: os.getpriority(os.PRIO_PROCESS, pid) == min(19, mine + 7), "the worker's niceness")
    finally:
        pool.stop()


def train_page_as(student: str):
    """The Train page drawn through the router for ``student`` (``?student=``), checked to have no exception."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params["student"] = student
    at.run()
    at.switch_page("pages/train.py")
    at.run()
    assert not at.exception, at.exception
    return at


def test_the_train_page_lists_your_queued_run(monkeypatch):
    monkeypatch.setenv("CNNVIZ_WORKERS", "0")
    store = RunStore()
    mine = submit(tiny(name="mine"), student="zoe", store=store)
    submit(tiny(name="theirs"), student="max", store=store)
    at = train_page_as("zoe")
    links = [link.proto.label for link in at.get("page_link")]
    assert any(f"Run {mine}: mine" in label and "position 1 in the queue" in label for label in links), links
    assert not any("theirs" in label for label in links)
    assert any("You are **zoe**" in c.value for c in at.caption)


def test_your_runs_say_what_each_run_is_without_repeating_its_id(monkeypatch):
    monkeypatch.setenv("CNNVIZ_WORKERS", "0")
    store = RunStore()
    training = store.create(tiny(epochs=3), status="running", student="zoe")
    store.record_epoch(training, {"epoch": 1, "val_acc": 0.5, "seconds": 1.0})
    waiting = submit(tiny(), student="zoe", store=store)
    named = submit(tiny(name="mine"), student="zoe", store=store)
    at = train_page_as("zoe")
    links = [link.proto.label for link in at.get("page_link") if link.proto.label.startswith("Run ")]
    assert links == [f"Run {training}: alexnet_cifar on shapes · running, epoch 2 of 3",
                     f"Run {waiting}: alexnet_cifar on shapes · position 1 in the queue",
                     f"Run {named}: mine, alexnet_cifar on shapes · position 2 in the queue"], links
