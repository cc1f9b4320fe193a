"""Jobs through the store with injected fake train functions: queue order, stopping, failures, many sessions.

A worker runs in a thread of the test process here (``Worker.run_forever`` with a fake trainer);
``test_workers.py`` runs real worker processes.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from cnnviz.runs import RunStore
from cnnviz.training.config import TrainConfig
from cnnviz.jobs import JobStatus, LocalExecutor, Worker, get_manager, resume, status, stop, submit

WAIT = 60  # seconds; only a guard against a hung test, never a timing assertion


class FakeTrainer:
    """A train() stand-in: each run waits at a gate the test opens, and checks stop every 'batch'."""

    def __init__(self):
        self.lock = threading.Lock()
        self.gates: dict[int, threading.Event] = {}
        self.started: list[int] = []  # config.seed of each run, in start order
        self.entered = threading.Condition()
        self.active = 0
        self.max_active = 0

    def gate(self, seed: int) -> threading.Event:
        with self.lock:
            return self.gates.setdefault(seed, threading.Event())

    def wait_started(self, seed: int) -> None:
        with self.entered:
            assert self.entered.wait_for(lambda: seed in self.started, timeout=WAIT)

    def __call__(self, config, *, callbacks=(), stop=None):
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        state = SimpleNamespace(params=10, flops=20, classes=["a", "b"], epoch=1, loss=0.5, history=[])
        for cb in callbacks:
            cb.before_fit(state)
        with self.entered:
            self.started.append(config.seed)
            self.entered.notify_all()
        try:
            gate = self.gate(config.seed)
            while True:  # one "batch" per turn, checking stop like the real loop
                for cb in callbacks:
                    cb.after_batch(state)
                if stop is not None and stop.is_set():
                    return _result("stopped", "stopped by the user", state)
                if gate.wait(0.01):
                    break
            if config.name == "explode":
                raise ValueError("lr is far too high for this model")
            state.history.append({"epoch": 1, "train_loss": 0.5, "val_acc": 0.75})
            for cb in callbacks:
                cb.after_epoch(state)
            for cb in callbacks:
                cb.after_fit(state)
            return _result("finished", None, state)
        finally:
            with self.lock:
                self.active -= 1


def _result(status, message, state):
    return SimpleNamespace(status=status, message=message, epochs=list(state.history), best_val_acc=0.75,
                           best_epoch=1, train_seconds=0.1, params=10, flops=20, classes=["a", "b"],
                           confusion=[[1, 0], [0, 1]], per_class_acc=[1.0, 1.0], checkpoint=None,
                           val_predictions=[0, 1])


class ThreadWorker:
    """A ``Worker`` with a fake trainer in a background thread, stopped at the end of the test."""

    def __init__(self, store, train_fn):
        self.worker = Worker(store, executor=LocalExecutor(train_fn=train_fn, poll_seconds=0.01), poll_seconds=0.01)
        self.thread = threading.Thread(target=self.worker.run_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def close(self):
        self.worker.terminating = True
        self.thread.join(WAIT)


def wait_ended(store, run_id) -> None:
    deadline = time.monotonic() + WAIT
    while store.get(run_id).active:
        assert time.monotonic() < deadline, f"run {run_id} still {store.get(run_id).status}"
        time.sleep(0.01)


def queue_fake(store, config, *, student="s", name=None):
    """A queued run without the registry checks (the fake trainer never builds a model)."""
    return store.create(config, name=name, student=student)


@pytest.fixture
def setup(tmp_path):
    store = RunStore(tmp_path / "home")
    fake = FakeTrainer()
    workers = []
    yield store, fake, lambda: workers.append(ThreadWorker(store, fake).start())
    for gate in list(fake.gates.values()):  # never leave a worker blocked
        gate.set()
    for run in store.list(("queued", "running")):
        store.request_stop(run.id)
    for w in workers:
        w.close()


def test_one_worker_trains_in_queue_order_with_queue_positions(setup):
    store, fake, start_worker = setup
    ids = [queue_fake(store, TrainConfig(seed=i, device="cpu")) for i in range(3)]
    start_worker()
    fake.wait_started(0)
    assert status(ids[0], store=store).state == "running"
    assert status(ids[1], store=store) == JobStatus("queued", 1, "cpu")
    assert status(ids[2], store=store) == JobStatus("queued", 2, "cpu")
    assert [store.get(i).status for i in ids] == ["running", "queued", "queued"]
    assert [r.id for r in store.queue()] == ids[1:]

    fake.gate(0).set()
    fake.wait_started(1)
    assert status(ids[2], store=store).queue_position == 1
    fake.gate(1).set()
    fake.gate(2).set()
    wait_ended(store, ids[2])
    assert fake.started == [0, 1, 2] and fake.max_active == 1
    assert status(ids[0], store=store) == JobStatus("done")
    for run_id in ids:
        run = store.get(run_id)
        assert (run.status, run.best_val_acc) == ("finished", 0.75)
        assert store.epochs(run_id) == [{"epoch": 1, "train_loss": 0.5, "val_acc": 0.75}]
        assert store.batches(run_id)  # the live loss trace was written


def test_two_workers_train_side_by_side(setup):
    store, fake, start_worker = setup
    a = queue_fake(store, TrainConfig(seed=0, device="cpu"))
    b = queue_fake(store, TrainConfig(seed=1, device="cpu"))
    start_worker()
    start_worker()
    fake.wait_started(0)
    fake.wait_started(1)
    assert {store.get(a).status, store.get(b).status} == {"running"}
    assert store.get(a).worker and store.get(a).worker == store.get(b).worker  # one process, two threads
    fake.gate(0).set()
    fake.gate(1).set()
    wait_ended(store, a)
    wait_ended(store, b)


def test_stop_queued_and_running(setup):
    store, fake, start_worker = setup
    running = queue_fake(store, TrainConfig(seed=0, device="cpu"))
    queued = queue_fake(store, TrainConfig(seed=1, device="cpu"))
    after = queue_fake(store, TrainConfig(seed=2, device="cpu"))
    start_worker()
    fake.wait_started(0)

    assert stop(queued, store=store) is True
    assert store.get(queued).status == "stopped" and store.get(queued).message == "stopped before it started"
    assert status(after, store=store).queue_position == 1

    assert stop(running, store=store) is True
    assert status(running, store=store).stopping
    wait_ended(store, running)  # the fake checks stop every batch, like the loop
    run = store.get(running)
    assert (run.status, run.message) == ("stopped", "stopped by the user")

    fake.gate(2).set()
    wait_ended(store, after)
    assert fake.started == [0, 2]  # the stopped queued run never trained
    assert store.get(after).status == "finished"
    assert stop(after, store=store) is False


def test_a_failing_run_is_marked_failed_and_the_queue_goes_on(setup):
    store, fake, start_worker = setup
    bad = queue_fake(store, TrainConfig(seed=0, device="cpu", name="explode"))
    good = queue_fake(store, TrainConfig(seed=1, device="cpu"))
    fake.gate(0).set()
    fake.gate(1).set()
    start_worker()
    wait_ended(store, good)
    run = store.get(bad)
    assert (run.status, run.message) == ("failed", "lr is far too high for this model")
    assert store.get(good).status == "finished"


def test_a_train_function_that_crashes_outright(tmp_path):
    store = RunStore(tmp_path / "home")

    def broken(config, *, callbacks=(), stop=None):
        raise ZeroDivisionError("division by zero")

    run_id = queue_fake(store, TrainConfig())
    assert Worker(store, executor=LocalExecutor(train_fn=broken)).run_once()
    run = store.get(run_id)
    assert (run.status, run.message) == ("failed", "ZeroDivisionError: division by zero")


def test_many_sessions_submit_at_once(setup):
    store, fake, start_worker = setup
    ids: list[int] = []
    ids_lock = threading.Lock()
    barrier = threading.Barrier(8)

    def session(seed: int) -> None:
        barrier.wait()
        run_id = submit(TrainConfig(seed=seed, device="cpu"), student="same", store=store)
        with ids_lock:
            ids.append(run_id)

    threads = [threading.Thread(target=session, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 8
    for seed in range(8):
        fake.gate(seed).set()
    start_worker()
    for run_id in ids:
        wait_ended(store, run_id)
    assert fake.max_active == 1
    started_ids = [next(r.id for r in store.list() if r.config.seed == seed) for seed in fake.started]
    assert started_ids == sorted(ids)  # one student's runs start in submission order
    assert {r.status for r in store.list()} == {"finished"}


def test_a_config_the_registries_refuse_is_never_stored(tmp_path):
    from cnnviz.training.config import ConfigError

    store = RunStore(tmp_path / "home")
    with pytest.raises(ConfigError, match="probe"):
        submit(TrainConfig(mode="probe", probe_layer="no-such-layer"), student="s", store=store)
    assert store.list() == []


def test_status_of_runs_no_worker_holds(tmp_path):
    store = RunStore(tmp_path / "home")
    assert status(999, store=store) == JobStatus("done")
    other = store.create(TrainConfig(), status="running")  # e.g. a CLI run in another terminal
    assert status(other, store=store).state == "running"


def test_get_manager_submits_as_its_student(tmp_path):
    store = RunStore(tmp_path / "home")
    jobs = get_manager(store, student="ann")
    run_id = jobs.submit(TrainConfig(arch="softmax"), name="x", experiment="exp1", group=1, run_key="k", label="K")
    run = store.get(run_id)
    assert (run.student, run.experiment, run.status) == ("ann", "exp1", "queued")
    assert jobs.status(run_id).state == "queued" and jobs.stop(run_id) and store.get(run_id).status == "stopped"


def test_resume_refuses_a_run_that_has_not_ended_early(tmp_path):
    store = RunStore(tmp_path / "home")
    run_id = store.create(TrainConfig())
    with pytest.raises(ValueError, match="only a stopped, interrupted or failed run"):
        resume(run_id, store=store)
    store.request_stop(run_id)
    assert resume(run_id, store=store) == run_id
    run = store.get(run_id)
    assert (run.status, run.resume_of, run.message) == ("queued", run_id, "queued to start again (no epoch was saved)")


def write_folder_dataset(root) -> None:
    """Two classes (red-ish vs blue-ish 32 px squares), {train,val}/<class>/*.png."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", 6), ("val", 3)):
        for name, channel in (("red", 0), ("blue", 2)):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 90, (32, 32, 3), dtype=np.uint8)
                pixels[..., channel] += 150
                Image.fromarray(pixels).save(folder / f"{i}.png")


def test_a_real_tiny_probe_run_through_a_worker(tmp_path):
    """The real trainer behind a worker: the store gets every event and a checkpoint that rebuilds."""
    from PIL import Image

    from cnnviz.predict import predict
    from cnnviz.runs import load_model

    write_folder_dataset(tmp_path / "pictures")
    store = RunStore(tmp_path / "home")
    config = TrainConfig(arch="alexnet_cifar", mode="probe", probe_layer="block1", dataset="folder",
                         data_path=str(tmp_path / "pictures"), image_size=32, epochs=2, batch_size=4, device="cpu",
                         allow_random_backbone=True)
    run_id = submit(config, student="s", name="probe", store=store)
    assert Worker(store, executor=LocalExecutor()).run_once()
    run = store.get(run_id)
    assert run.status == "finished", run.message
    assert (run.name, run.image_size, run.device, run.classes) == ("probe", 32, "cpu", ["blue", "red"])
    assert run.trainable_params and run.trainable_params < run.params
    assert [r["epoch"] for r in store.epochs(run_id)] == [1, 2] and len(store.batches(run_id)) == 6
    assert len(run.confusion) == 2 and len(run.val_predictions) == 6
    model, payload = load_model(run_id, store=store)
    assert payload["mode"] == "probe" and not model.training
    top = predict(model, payload, Image.new("RGB", (40, 30), "red"), topk=2)
    assert [name for name, _ in top] in (["red", "blue"], ["blue", "red"])
