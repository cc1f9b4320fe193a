"""The Ray executor end to end on a real local Ray head bound to the loopback address only.

One head per module (starting Ray takes seconds); its temp folder is a short path under /tmp
(Ray's socket paths must stay under the Unix limit) and is removed afterwards.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from cnnviz.checkpoint import load_checkpoint
from cnnviz.runs import RunStore
from cnnviz.training.config import TrainConfig

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -r requirements-ray.txt)")

from cnnviz.jobs.ray_executor import RayExecutor, wants_ray  # noqa: E402

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
CONFIG = TrainConfig(arch="cifar_resnet", dataset="shapes", subset=8, val_subset=4, image_size=32, epochs=2,
                     batch_size=16, device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def ray_head():
    """A local Ray head on 127.0.0.1 with two CPUs; the cluster's workers import this checkout's cnnviz."""
    folder = tempfile.mkdtemp(prefix="cnnviz-ray-", dir="/tmp")
    env = {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "CNNVIZ_HOME": f"{folder}/home",
           "CNNVIZ_DATA": f"{folder}/data"}
    ray.init(num_cpus=2, _node_ip_address="127.0.0.1", include_dashboard=False, _temp_dir=f"{folder}/ray",
             runtime_env={"env_vars": env}, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "app-home")  # the app's store: the cluster never sees this folder


def test_a_run_trains_on_the_cluster_and_its_checkpoint_comes_back(ray_head, store):
    run_id = store.create(CONFIG, student="ann")
    RayExecutor(num_cpus=1).run(store.get(run_id), CONFIG, store=store, should_stop=lambda: False)

    run = store.get(run_id)
    assert run.status == "finished", run.message
    assert [row["epoch"] for row in store.epochs(run_id)] == [1, 2]
    assert store.batches(run_id)  # the live loss trace came through too
    assert run.classes and run.params and run.best_epoch in (1, 2) and run.device.startswith("cpu on ")
    assert Path(run.checkpoint) == store.checkpoint_path(run_id) and Path(run.checkpoint).is_file()
    ckpt = load_checkpoint(run.checkpoint)
    assert ckpt.arch == "cifar_resnet" and ckpt.epoch == run.best_epoch and ckpt.extra["run_id"] == run_id


def test_stop_cancels_the_task_and_the_run_ends_stopped(ray_head, store):
    config = CONFIG.replace(epochs=30)
    run_id = store.create(config, student="bob")
    # Stop once the first epoch is in the store (the executor polls this between drains).
    RayExecutor().run(store.get(run_id), config, store=store, should_stop=lambda: bool(store.epochs(run_id)))

    run = store.get(run_id)
    assert run.status == "stopped", run.message
    assert 1 <= len(store.epochs(run_id)) < 30
    assert run.checkpoint and load_checkpoint(run.checkpoint).epoch == run.best_epoch


def test_the_environment_chooses_the_executor(monkeypatch):
    assert wants_ray({"CNNVIZ_EXECUTOR": "ray"}) and not wants_ray({})
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6380")
    assert RayExecutor().address == "127.0.0.1:6380"
    assert RayExecutor("10.0.0.5:6379").address == "10.0.0.5:6379"
