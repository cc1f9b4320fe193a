"""The job manager with injected fake train functions: queueing, stopping, failures, many sessions."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from cnnviz.runs import RunStore
from cnnviz.training.config import TrainConfig
from cnnviz.jobs import JobManager, JobStatus, get_manager

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


@pytest.fixture
def setup(tmp_path):
    store = RunStore(tmp_path / "home")
    fake = FakeTrainer()
    manager = JobManager(store, train_fn=fake, device_of=lambda config: config.device)
    yield store, fake, manager
    for gate in list(fake.gates.values()):  # never leave a worker blocked
        gate.set()
    for run_id in manager.running() + manager.queue():
        manager.stop(run_id)


def test_one_job_per_device_in_order_with_queue_positions(setup):
    store, fake, manager = setup
    ids = [manager.submit(TrainConfig(seed=i, device="cpu")) for i in range(3)]
    fake.wait_started(0)
    assert manager.status(ids[0]) == JobStatus("running", None, "cpu")
    assert manager.status(ids[1]) == JobStatus("queued", 1, "cpu")
    assert manager.status(ids[2]) == JobStatus("queued", 2, "cpu")
    assert [store.get(i).status for i in ids] == ["running", "queued", "queued"]
    assert manager.queue() == ids[1:] and manager.running() == [ids[0]]

    fake.gate(0).set()
    fake.wait_started(1)
    assert manager.status(ids[2]).queue_position == 1
    fake.gate(1).set()
    fake.gate(2).set()
    assert manager.wait(ids[2], timeout=WAIT)
    assert fake.started == [0, 1, 2] and fake.max_active == 1
    assert manager.status(ids[0]) == JobStatus("done")
    for run_id in ids:
        run = store.get(run_id)
        assert (run.status, run.best_val_acc) == ("finished", 0.75)
        assert store.epochs(run_id) == [{"epoch": 1, "train_loss": 0.5, "val_acc": 0.75}]
        assert store.batches(run_id)  # the live loss trace was written


def test_different_devices_run_side_by_side(setup):
    store, fake, manager = setup
    a = manager.submit(TrainConfig(seed=0, device="cpu"))
    b = manager.submit(TrainConfig(seed=1, device="cuda:0"))
    fake.wait_started(0)
    fake.wait_started(1)
    assert {manager.status(a).state, manager.status(b).state} == {"running"}
    fake.gate(0).set()
    fake.gate(1).set()
    assert manager.wait(a, timeout=WAIT) and manager.wait(b, timeout=WAIT)


def test_stop_queued_and_running(setup):
    store, fake, manager = setup
    running = manager.submit(TrainConfig(seed=0, device="cpu"))
    queued = manager.submit(TrainConfig(seed=1, device="cpu"))
    after = manager.submit(TrainConfig(seed=2, device="cpu"))
    fake.wait_started(0)

    assert manager.stop(queued) is True
    assert store.get(queued).status == "stopped" and store.get(queued).message == "stopped before it started"
    assert manager.status(after).queue_position == 1

    assert manager.stop(running) is True
    assert manager.wait(running, timeout=WAIT)
    run = store.get(running)
    assert (run.status, run.message) == ("stopped", "stopped by the user")

    fake.gate(2).set()
    assert manager.wait(after, timeout=WAIT)
    assert fake.started == [0, 2]  # the stopped queued run never trained
    assert store.get(after).status == "finished"
    assert manager.stop(after) is False and manager.stop(12345) is False


def test_a_failing_job_is_marked_failed_and_the_queue_goes_on(setup):
    store, fake, manager = setup
    bad = manager.submit(TrainConfig(seed=0, device="cpu", name="explode"))
    good = manager.submit(TrainConfig(seed=1, device="cpu"))
    fake.gate(0).set()
    fake.gate(1).set()
    assert manager.wait(good, timeout=WAIT)
    run = store.get(bad)
    assert (run.status, run.message) == ("failed", "lr is far too high for this model")
    assert store.get(good).status == "finished"


def test_a_train_function_that_crashes_outright(tmp_path):
    store = RunStore(tmp_path / "home")

    def broken(config, *, callbacks=(), stop=None):
        raise ZeroDivisionError("division by zero")

    manager = JobManager(store, train_fn=broken, device_of=lambda config: "cpu")
    run_id = manager.submit(TrainConfig())
    assert manager.wait(run_id, timeout=WAIT)
    run = store.get(run_id)
    assert (run.status, run.message) == ("failed", "ZeroDivisionError: division by zero")


def test_many_sessions_submit_at_once(setup):
    store, fake, manager = setup
    ids: list[int] = []
    ids_lock = threading.Lock()
    barrier = threading.Barrier(8)

    def session(seed: int) -> None:
        barrier.wait()
        run_id = manager.submit(TrainConfig(seed=seed, device="cpu"))
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
    for run_id in ids:
        assert manager.wait(run_id, timeout=WAIT)
    assert fake.max_active == 1
    started_ids = [next(r.id for r in store.list() if r.config.seed == seed) for seed in fake.started]
    assert started_ids == sorted(ids)  # run ids follow the queue order
    assert {r.status for r in store.list()} == {"finished"}


def test_bad_device_is_refused_before_anything_is_stored(tmp_path):
    store = RunStore(tmp_path / "home")

    def no_gpu(config):
        raise ValueError("device 'cuda' asked for, but no CUDA GPU is available")

    manager = JobManager(store, train_fn=lambda *a, **k: None, device_of=no_gpu)
    with pytest.raises(ValueError, match="no CUDA GPU"):
        manager.submit(TrainConfig(device="cuda"))
    assert store.list() == []


def test_status_of_runs_the_manager_does_not_hold(setup):
    store, fake, manager = setup
    assert manager.status(999) == JobStatus("done")
    other = store.create(TrainConfig())  # e.g. a CLI run in another terminal
    store.set_status(other, "running")
    assert manager.status(other).state == "running"


def test_get_manager_is_one_per_store(tmp_path):
    store = RunStore(tmp_path / "home")
    assert get_manager(store) is get_manager(RunStore(tmp_path / "home"))
    assert get_manager(store) is not get_manager(RunStore(tmp_path / "other"))
    assert get_manager() is get_manager()  # the default store under CNNVIZ_HOME


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


def test_a_real_tiny_probe_run_through_the_manager(tmp_path):
    """The real trainer behind the manager: the store gets every event and a checkpoint that rebuilds."""
    from PIL import Image

    from cnnviz.predict import predict
    from cnnviz.runs import load_model

    write_folder_dataset(tmp_path / "pictures")
    store = RunStore(tmp_path / "home")
    manager = JobManager(store)
    config = TrainConfig(arch="alexnet_cifar", mode="probe", probe_layer="block1", dataset="folder",
                         data_path=str(tmp_path / "pictures"), image_size=32, epochs=2, batch_size=4, device="cpu")
    run_id = manager.submit(config, name="probe")
    assert manager.wait(run_id, timeout=600)
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
