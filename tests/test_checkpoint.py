"""The one checkpoint format: a typed round trip, atomic saves, and a one-line message for every bad file."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
import torch

from cnnviz import paths
from cnnviz.checkpoint import (CHECKPOINT_FORMAT, Checkpoint, CheckpointError, build_model, load_checkpoint,
                               load_state_dict_file, register_init_resolver, resolve_init, save_checkpoint)
from cnnviz.models import WeightsError, get_model


def full_checkpoint() -> Checkpoint:
    """A checkpoint with every field set to something other than its default."""
    model = get_model("softmax", num_classes=3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    optimizer.step()  # momentum buffers: a real optimizer state
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2)
    return Checkpoint(
        arch="softmax", num_classes=3, state_dict=model.state_dict(), options=dict(model.cnnviz_options),
        classes=["a", "b", "c"], mean=[0.1, 0.2, 0.3], std=[0.4, 0.5, 0.6], image_size=8, mode="finetune",
        probe_layer=None, epoch=4, metrics={"val_acc": 0.5, "best_val_acc": 0.5, "grad_norms": {"fc": 0.25}},
        config={"arch": "softmax", "lr": 0.1}, optimizer_state=optimizer.state_dict(),
        scheduler_state=scheduler.state_dict(), rng_state={"torch": torch.get_rng_state()}, extra={"run_id": 9})


def assert_same(a: Checkpoint, b: Checkpoint) -> None:
    for name in ("arch", "num_classes", "options", "classes", "mean", "std", "image_size", "mode", "probe_layer",
                 "probe_grid", "probe_features", "epoch", "metrics", "config", "extra", "format"):
        assert getattr(a, name) == getattr(b, name), name
    assert a.state_dict.keys() == b.state_dict.keys()
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    assert torch.equal(a.optimizer_state["state"][0]["momentum_buffer"], b.optimizer_state["state"][0]["momentum_buffer"])
    assert a.optimizer_state["param_groups"] == b.optimizer_state["param_groups"]
    assert a.scheduler_state == b.scheduler_state
    assert torch.equal(a.rng_state["torch"], b.rng_state["torch"])


def test_round_trip_keeps_every_field(tmp_path):
    ckpt = full_checkpoint()
    assert_same(Checkpoint.from_payload(ckpt.to_payload()), ckpt)
    path = save_checkpoint(ckpt, tmp_path / "a" / "best.pt")
    loaded = load_checkpoint(path)
    assert_same(loaded, ckpt)
    raw = torch.load(path, weights_only=True)  # the plain dict on disk: config as JSON text, unknown keys on top
    assert raw["format"] == CHECKPOINT_FORMAT and isinstance(raw["config"], str) and raw["run_id"] == 9
    model = build_model(loaded)
    assert not model.training and torch.equal(model.fc.weight, ckpt.state_dict["fc.weight"])


def test_old_checkpoints_still_load(tmp_path):
    """A payload as the trainer wrote it before the typed checkpoint (best_val_acc on top, no metrics)."""
    model = get_model("softmax", num_classes=2)
    old = {"format": CHECKPOINT_FORMAT, "arch": "softmax", "options": model.cnnviz_options, "num_classes": 2,
           "classes": ["x", "y"], "mean": [0.5] * 3, "std": [0.25] * 3, "image_size": 32,
           "state_dict": model.state_dict(), "config": '{"arch": "softmax"}', "epoch": 3, "best_val_acc": 0.8,
           "mode": "scratch", "probe_layer": None, "loss": "ce", "run_id": 4}
    path = tmp_path / "old.pt"
    torch.save(old, path)
    ckpt = load_checkpoint(path)
    assert (ckpt.best_val_acc, ckpt.epoch, ckpt.config, ckpt.classes) == (0.8, 3, {"arch": "softmax"}, ["x", "y"])
    assert ckpt.extra == {"loss": "ce", "run_id": 4} and ckpt.optimizer_state is None
    assert torch.equal(build_model(ckpt).fc.weight, model.fc.weight)


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "best.pt"
    first = full_checkpoint()
    save_checkpoint(first, path)
    calls = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(fd) or real_fsync(fd))

    def broken_save(obj, fh, *args, **kwargs):
        fh.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(full_checkpoint(), path)
    monkeypatch.undo()
    assert_same(load_checkpoint(path), first)  # the old file, whole
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]  # no temp file left behind
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(fd) or real_fsync(fd))
    save_checkpoint(first, path)
    assert calls  # flushed to the disk before the rename


def _fn():  # a function a pickle can reference
    return 1


class Custom:
    def __init__(self):
        self.weights = torch.ones(2)


def _one_line(exc: pytest.ExceptionInfo, name: str) -> str:
    text = str(exc.value)
    assert "\n" not in text and len(text) < 300, text
    assert name in text and "Weights only load failed" not in text, text
    return text


@pytest.mark.parametrize("thing", ["function", "instance"])
@pytest.mark.parametrize("loader", [load_checkpoint, load_state_dict_file])
def test_pickled_code_is_refused_in_one_line(tmp_path, thing, loader):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "hook": _fn if thing == "function" else Custom()}, path)
    with pytest.raises(WeightsError) as exc:
        loader(path)
    text = _one_line(exc, "evil.pt")
    assert "contains Python code (pickled objects); refused" in text
    assert ("_fn" if thing == "function" else "Custom") in text


@pytest.mark.parametrize("write,expected", [
    (lambda p: p.write_bytes(b""), "empty"),
    (lambda p: p.write_bytes(b"\x80\x04\x95 a pickle that is no torch file"), "not a PyTorch file"),
])
def test_unreadable_files_say_what_they_are(tmp_path, write, expected):
    path = tmp_path / "bad.pt"
    write(path)
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path)
    assert expected in _one_line(exc, "bad.pt")


def test_random_bytes_are_never_a_pytorch_file(tmp_path):
    """Foreign bytes fail in torch's legacy reader in many ways; every one reads 'not a PyTorch file'."""
    path = tmp_path / "noise.pt"
    for seed in range(300):
        path.write_bytes(random.Random(seed).randbytes(512))
        with pytest.raises(CheckpointError) as exc:
            load_checkpoint(path)
        assert "not a PyTorch file" in _one_line(exc, "noise.pt"), f"seed {seed}"


def test_truncated_and_missing_files(tmp_path):
    good = save_checkpoint(full_checkpoint(), tmp_path / "good.pt")
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(cut)
    assert "truncated or damaged" in _one_line(exc, "cut.pt")
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(tmp_path / "gone.pt")
    assert "not found" in _one_line(exc, "gone.pt")


@pytest.mark.parametrize("content,expected", [
    ([1, 2, 3], "holds a list"),
    ({"epoch": 3, "model": {"w": 1}}, "holds a dict with keys epoch, model"),
    ({"state_dict": [1, 2]}, "holds a dict with keys state_dict"),
    ({"state_dict": {"w": "not a tensor"}}, "has a state_dict holding a dict with keys w"),
])
def test_files_holding_something_else_name_it(tmp_path, content, expected):
    path = tmp_path / "other.pt"
    torch.save(content, path)
    with pytest.raises(WeightsError) as exc:
        load_state_dict_file(path)
    assert expected in _one_line(exc, "other.pt")


def test_a_plain_state_dict_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save({"fc.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path)
    assert "not a cnnviz checkpoint (a plain state_dict of 1 tensors" in _one_line(exc, "plain.pt")


@pytest.mark.parametrize("wrap", ["plain", "wrapper", "dataparallel", "wrapper+dataparallel"])
def test_wrappers_and_dataparallel_prefixes_are_unwrapped(tmp_path, wrap):
    model = get_model("softmax", num_classes=2)
    state = model.state_dict()
    if "dataparallel" in wrap:
        state = {f"module.{k}": v for k, v in state.items()}
    content = {"state_dict": state, "epoch": 7} if "wrapper" in wrap else state
    path = tmp_path / "foreign.pth"
    torch.save(content, path)
    loaded, meta = load_state_dict_file(path)
    assert loaded.keys() == model.state_dict().keys()
    assert meta == ({"epoch": 7} if "wrapper" in wrap else {})
    rebuilt = get_model("softmax", num_classes=2, init=str(path))
    assert torch.equal(rebuilt.fc.weight, model.fc.weight)


def test_build_model_rebuilds_probe_checkpoints():
    from cnnviz.models import ProbeModel

    probe = ProbeModel(None, "input", None, 3 * 8 * 8, 2).eval()
    ckpt = Checkpoint(arch="softmax", num_classes=2, state_dict=probe.state_dict(), mode="probe",
                      probe_layer="input", probe_features=3 * 8 * 8)
    model = build_model(ckpt.to_payload())
    x = torch.randn(4, 3, 8, 8)
    assert torch.equal(model(x), probe(x))


def test_weights_that_do_not_fit_fail_in_one_line():
    ckpt = full_checkpoint()
    ckpt.num_classes = 5
    with pytest.raises(CheckpointError) as exc:
        build_model(ckpt)
    assert "do not fit softmax" in _one_line(exc, "softmax")


def test_init_resolvers(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "_INIT_RESOLVERS", {})
    assert resolve_init("none") is None and resolve_init("imagenet") is None
    assert resolve_init(str(tmp_path / "w.pt")) == tmp_path / "w.pt"
    with pytest.raises(ValueError, match="import cnnviz.runs"):
        resolve_init("run:3")
    register_init_resolver("zoo", lambda name: tmp_path / f"{name}.pt" if name == "cat" else None)
    assert resolve_init("zoo:cat") == tmp_path / "cat.pt"
    with pytest.raises(ValueError, match="zoo:dog has no checkpoint"):
        resolve_init("zoo:dog")


def test_importing_runs_registers_the_run_prefix(tmp_path, monkeypatch):
    import cnnviz.runs
    from cnnviz.runs import RunStore
    from cnnviz.training.config import TrainConfig

    assert paths._INIT_RESOLVERS["run"] is cnnviz.runs.checkpoint_path
    monkeypatch.setenv("CNNVIZ_HOME", str(tmp_path / "home"))
    store = RunStore()
    run_id = store.create(TrainConfig(arch="softmax"))
    ckpt = full_checkpoint()
    save_checkpoint(ckpt, store.checkpoint_path(run_id))
    assert resolve_init(f"run:{run_id}") == store.checkpoint_path(run_id)
    model = get_model("softmax", num_classes=3, init=f"run:{run_id}")
    assert torch.equal(model.fc.weight, ckpt.state_dict["fc.weight"])
    with pytest.raises(WeightsError, match="no run 999"):
        get_model("softmax", num_classes=3, init="run:999")


def test_there_is_one_format_string():
    root = Path(__file__).resolve().parents[1] / "cnnviz"
    defining = [p.relative_to(root).as_posix() for p in root.rglob("*.py") if '"cnnviz-checkpoint/1"' in p.read_text()]
    assert defining == ["checkpoint.py"]
