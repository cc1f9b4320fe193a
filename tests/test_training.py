"""The trainer: each mode trains only what it should, caches are exact, runs end cleanly however they end.

Small and fast on purpose: the generated ``shapes`` set at 32 px with a few pictures per class,
the CIFAR ResNet-20 (0.27 M parameters) or softmax regression, one or two epochs.
"""

from __future__ import annotations

import threading

import pytest
import torch

from cnnviz.data import load_splits, normalize
from cnnviz.models import get_model
from cnnviz.runs.checkpoints import build_model
from cnnviz.training import (MODES, OPTIMIZERS, SCHEDULERS, Callback, StopTraining, TrainConfig, Trainer,
                             train)
from cnnviz.training.modes import PROBE_FEATURES, probe_grid, probe_model_from_payload


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny batches gain nothing from a second thread, and when other processes keep the cores busy
    OpenMP threads waiting for each other made these tests ten times slower (measured)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(**changes) -> TrainConfig:
    """A run of a few seconds: 8 pictures per class to train on, 3 to validate, ResNet-20 at 32 px."""
    base = dict(arch="cifar_resnet", dataset="shapes", subset=8, val_subset=3, epochs=1, batch_size=16,
                image_size=32, lr=0.05, device="cpu")
    return TrainConfig(**{**base, **changes})


class Recorder(Callback):
    """Keeps the events, a copy of the initial weights and whatever a test asks for."""

    def __init__(self):
        self.events: list[str] = []
        self.initial: dict[str, torch.Tensor] = {}

    def on_run_start(self, state):
        self.events.append("run_start")
        self.initial = {k: v.detach().clone() for k, v in state.model.state_dict().items()}

    def on_batch_end(self, state):
        self.events.append("batch_end")

    def on_epoch_end(self, state):
        self.events.append("epoch_end")

    def on_run_end(self, state):
        self.events.append("run_end")


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> str:
    """A "pretrained" ResNet-20 as a plain state_dict with a 1000-class head, like torchvision's downloads."""
    torch.manual_seed(123)
    model = get_model("cifar_resnet", num_classes=1000)
    path = tmp_path_factory.mktemp("weights") / "cifar_resnet_pretrained.pth"
    torch.save(model.state_dict(), path)
    return str(path)


def _changed(before: dict, after: dict, prefix: str = "") -> set[str]:
    return {k for k, v in after.items() if k.startswith(prefix) and k in before and not torch.equal(before[k], v)}


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_trains_only_what_it_should(mode, weights_file):
    init = "none" if mode == "scratch" else weights_file
    config = tiny(mode=mode, init=init, probe_layer="stage2" if mode == "probe" else None)
    recorder = Recorder()
    result = train(config, callbacks=[recorder])
    assert result.status == "finished", result.message
    after = result.best_state_dict
    pretrained = torch.load(weights_file, weights_only=True)
    if mode == "scratch":
        assert _changed(recorder.initial, after, "layer1")  # the body learns
        assert not torch.equal(recorder.initial["stem.conv.weight"], pretrained["stem.conv.weight"])  # random, not loaded
    elif mode == "finetune":
        assert torch.equal(recorder.initial["stem.conv.weight"], pretrained["stem.conv.weight"])  # loaded, then trained
        assert _changed(pretrained, after, "layer1")
        assert after["fc.weight"].shape == (10, 64)  # a new 10-class head replaced the 1000-class one
    elif mode == "freeze":
        body = {k: v for k, v in pretrained.items() if not k.startswith("fc.")}
        assert all(torch.equal(after[k], v) for k, v in body.items())  # bit-identical, BN statistics included
        assert _changed(recorder.initial, after) == {"fc.weight", "fc.bias"}
    else:
        body = {f"backbone.{k}": v for k, v in pretrained.items() if not k.startswith("fc.")}
        assert all(torch.equal(after[k], v) for k, v in body.items())
        assert {"probe.1.weight", "probe.1.bias"} <= _changed(recorder.initial, after)
        assert not _changed(recorder.initial, after) - {"probe.1.weight", "probe.1.bias", "probe.0.running_mean",
                                                         "probe.0.running_var", "probe.0.num_batches_tracked"}
    assert result.checkpoint["mode"] == mode and result.checkpoint["state_dict"] is after


@pytest.mark.parametrize("augment", ["none", "cifar"])
def test_cached_freeze_features_give_the_same_head(augment, weights_file):
    config = tiny(mode="freeze", init=weights_file, epochs=2, augment=augment)
    cached = Trainer(config, cache_features=True).run()
    uncached = Trainer(config, cache_features=False).run()
    assert cached.status == uncached.status == "finished"
    for key in ("fc.weight", "fc.bias"):
        torch.testing.assert_close(cached.best_state_dict[key], uncached.best_state_dict[key], atol=1e-4, rtol=1e-3)
    assert [round(r["train_loss"], 4) for r in cached.epochs] == [round(r["train_loss"], 4) for r in uncached.epochs]


def test_second_freeze_run_reuses_the_feature_cache(weights_file):
    config = tiny(mode="freeze", init=weights_file)
    first, second = train(config), train(config.replace(lr=0.01, epochs=2))
    assert "cache" not in first.message and "loaded from the cache" in second.message
    assert second.status == "finished"


def test_huge_learning_rate_diverges_with_advice():
    result = train(tiny(arch="alexnet_cifar", lr=1e6, epochs=2))
    assert result.status == "diverged"
    assert "learning rate" in result.message and "1e+06" in result.message
    assert result.epochs == [] or all(set(r) >= {"train_loss", "val_acc"} for r in result.epochs)


class StopAfter(Callback):
    """Sets the stop event after ``k`` batches of epoch 2 and counts the batches that still ran."""

    def __init__(self, event: threading.Event, k: int):
        self.event, self.k, self.after = event, k, 0

    def on_batch_end(self, state):
        if self.event.is_set():
            self.after += 1
        elif state.epoch == 2 and state.batch == self.k:
            self.event.set()


def test_stop_event_ends_the_run_within_one_batch():
    event = threading.Event()
    stopper = StopAfter(event, k=2)
    recorder = Recorder()
    result = train(tiny(epochs=3, batch_size=8), callbacks=[stopper, recorder], stop=event)
    assert result.status == "stopped"
    assert stopper.after == 0  # not one more batch after the event
    assert [r["epoch"] for r in result.epochs] == [1]  # the finished epoch is kept
    assert result.checkpoint is not None and result.best_epoch == 1
    assert recorder.events[-1] == "run_end"


def test_stop_training_from_a_callback():
    class Quit(Callback):
        def on_epoch_end(self, state):
            raise StopTraining

    result = train(tiny(epochs=3), callbacks=[Quit()])
    assert result.status == "stopped" and len(result.epochs) == 1


def test_a_failing_callback_fails_the_run_with_its_name():
    class Broken(Callback):
        def on_batch_end(self, state):
            raise KeyError("oops")

    result = train(tiny(), callbacks=[Broken()])
    assert result.status == "failed" and "Broken.on_batch_end" in result.message


def test_out_of_memory_retries_with_half_the_batch():
    class OutOfMemoryOnce(Callback):
        fired = False

        def on_batch_end(self, state):
            if not self.fired:
                self.fired = True
                raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    result = train(tiny(batch_size=16), callbacks=[OutOfMemoryOnce()])
    assert result.status == "finished"
    assert "batch size 8" in result.message and result.config.batch_size == 8


def test_too_small_images_fail_with_the_minimum():
    result = train(tiny(arch="alexnet", image_size=32))
    assert result.status == "failed" and "63" in result.message


@pytest.fixture
def two_class_folder(tmp_path):
    """A folder dataset of two classes of flat-coloured pictures (red vs blue with noise)."""
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for name, colour in (("reds", (200, 40, 40)), ("blues", (40, 40, 200))):
        folder = tmp_path / "two" / name
        folder.mkdir(parents=True)
        for i in range(12):
            noise = torch.randint(-40, 40, (32, 32, 3), generator=g)
            pixels = (torch.tensor(colour) + noise).clamp(0, 255).to(torch.uint8).numpy()
            Image.fromarray(pixels).save(folder / f"{i}.png")
    return str(tmp_path / "two")


def test_bce_on_two_classes(two_class_folder):
    config = tiny(arch="softmax", dataset="folder", data_path=two_class_folder, loss="bce", subset=None,
                  val_subset=None, val_split="random", epochs=3, batch_size=8, lr=0.01)
    result = train(config)
    assert result.status == "finished", result.message
    assert result.checkpoint["num_classes"] == 1 and len(result.classes) == 2
    assert result.epochs[0]["val_top5"] is None
    assert result.best_val_acc > 0.8  # red vs blue is easy


def test_bce_refuses_more_than_two_classes():
    result = train(tiny(loss="bce"))
    assert result.status == "failed" and "two classes" in result.message


@pytest.mark.parametrize("layer", ["input", "stage1"])
def test_probe_checkpoint_predicts_like_the_run(layer):
    config = tiny(mode="probe", probe_layer=layer, epochs=2)
    result = train(config)
    assert result.status == "finished", result.message
    payload = result.checkpoint
    assert payload["probe_layer"] == layer and payload["probe_features"] <= PROBE_FEATURES
    model = probe_model_from_payload(payload)
    assert (model.backbone is None) == (layer == "input")
    _, val = load_splits(config, image_size=32)
    with torch.no_grad():
        predicted = model(normalize(val.images, payload["mean"], payload["std"])).argmax(1)
    assert _agreement(predicted, result.val_predictions) >= 0.95


def _agreement(predicted: torch.Tensor, expected: list[int]) -> float:
    """Share of equal predictions (the run batched and laid out memory differently: rounding can flip a near-tie)."""
    return (predicted == torch.tensor(expected)).float().mean().item()


@pytest.mark.parametrize("mode", ["scratch", "freeze"])
def test_checkpoint_rebuilds_through_the_registry(mode):
    result = train(tiny(mode=mode))
    payload = result.checkpoint
    assert payload["format"] == "cnnviz-checkpoint/1" and payload["classes"] == result.classes
    model = build_model(payload)
    _, val = load_splits(tiny(), image_size=32)
    with torch.no_grad():
        predicted = model(normalize(val.images, payload["mean"], payload["std"])).argmax(1)
    assert _agreement(predicted, result.val_predictions) >= 0.95
    confusion = torch.tensor(result.confusion)
    assert confusion.sum() == len(val) and confusion.diag().sum() / len(val) == pytest.approx(result.best_val_acc)


def test_probe_pooling_rule():
    assert probe_grid((3, 32, 32)) is None  # 3,072 numbers: flattened as they are
    assert probe_grid((512, 7, 7)) == 2  # ResNet-18 layer4 at 224 px -> 2,048
    assert probe_grid((64, 56, 56)) == 8  # layer1 -> 4,096
    assert probe_grid((3, 224, 224)) == 36
    assert probe_grid((4096,)) is None


@pytest.mark.parametrize("scheduler", SCHEDULERS)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_optimizer_and_scheduler_combinations(optimizer, scheduler):
    lr = 0.1 if optimizer == "sgd" else 0.01
    result = train(tiny(arch="softmax", optimizer=optimizer, scheduler=scheduler, lr=lr, epochs=2, step_size=1))
    assert result.status == "finished", result.message
    lrs = [row["lr"] for row in result.epochs]
    if scheduler == "none":
        assert lrs == [lr, lr]
    elif scheduler == "step":
        assert lrs == pytest.approx([lr, lr / 10])
    elif scheduler in ("cosine", "onecycle"):
        assert lrs[1] != lrs[0]


def test_same_seed_same_run_other_seed_other_run():
    config = tiny(epochs=2, augment="cifar")
    a, b, c = train(config), train(config), train(config.replace(seed=1))
    assert [r["train_loss"] for r in a.epochs] == [r["train_loss"] for r in b.epochs]
    assert a.val_predictions == b.val_predictions
    assert [r["train_loss"] for r in a.epochs] != [r["train_loss"] for r in c.epochs]


def test_events_come_in_order_and_rows_are_complete():
    recorder = Recorder()
    result = train(tiny(epochs=2, batch_size=32, track_grad_norms=True), callbacks=[recorder])
    batches = 3  # 8 pictures x 10 classes in batches of 32, 32 and 16
    assert recorder.events == ["run_start", *(["batch_end"] * batches + ["epoch_end"]) * 2, "run_end"]
    row = result.epochs[-1]
    assert set(row) >= {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_top5", "lr", "seconds",
                        "images_per_sec", "grad_norms"}
    assert "stem.conv" in row["grad_norms"] and "fc" in row["grad_norms"]
    assert all(v >= 0 for v in row["grad_norms"].values())
    assert result.params > 0 and result.flops > 0 and len(result.per_class_acc) == 10
