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
from cnnviz.checkpoint import build_model
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

    def before_fit(self, state):
        self.events.append("run_start")
        self.initial = {k: v.detach().clone() for k, v in state.model.state_dict().items()}

    def after_batch(self, state):
        self.events.append("batch_end")

    def after_epoch(self, state):
        self.events.append("epoch_end")

    def after_fit(self, state):
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

    def after_batch(self, state):
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
        def after_epoch(self, state):
            raise StopTraining

    result = train(tiny(epochs=3), callbacks=[Quit()])
    assert result.status == "stopped" and len(result.epochs) == 1


def test_a_failing_callback_fails_the_run_with_its_name():
    class Broken(Callback):
        def after_batch(self, state):
            raise KeyError("oops")

    result = train(tiny(), callbacks=[Broken()])
    assert result.status == "failed" and "Broken.after_batch" in result.message


def test_out_of_memory_retries_with_half_the_batch():
    class OutOfMemoryOnce(Callback):
        fired = False

        def after_batch(self, state):
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
    elif scheduler in ("cosine", "onecycle", "linear"):
        assert lrs[1] != lrs[0]


def test_linear_schedule_is_airbenchs_triangle():
    from cnnviz.training import parts

    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=1.0, momentum=0.85, nesterov=True)
    scheduler, per_batch = parts._scheduler(TrainConfig(scheduler="linear", lr=1.0), optimizer, steps=100)
    lrs = []
    for _ in range(100):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert per_batch and lrs[0] == pytest.approx(0.2)
    assert max(lrs) == pytest.approx(1.0, abs=0.01) and 20 <= lrs.index(max(lrs)) <= 24
    assert lrs[-1] == pytest.approx(0.07, abs=0.01)
    assert optimizer.param_groups[0]["momentum"] == 0.85  # the momentum stays as asked: no cycling


def test_nesterov_needs_sgd_with_momentum():
    from cnnviz.training import parts
    from cnnviz.training.config import ConfigError

    weights = [torch.nn.Parameter(torch.zeros(2))]
    assert parts._optimizer(TrainConfig(nesterov=True), weights).defaults["nesterov"] is True
    assert parts._optimizer(TrainConfig(), weights).defaults["nesterov"] is False

    assert TrainConfig(optimizer="sgd", momentum=0.9, nesterov=True).nesterov
    for bad in (dict(optimizer="adam"), dict(optimizer="sgd", momentum=0.0)):
        with pytest.raises(ConfigError, match="nesterov"):
            TrainConfig(nesterov=True, **bad)


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


# -- named events and the callbacks the loop is made of ---------------------------------------------------


class AllEvents(Callback):
    def __init__(self):
        self.events: list[str] = []

    def __getattribute__(self, name):
        from cnnviz.training.callbacks import EVENTS

        if name in EVENTS:
            return lambda state: self.events.append(name)
        return object.__getattribute__(self, name)


def test_every_named_event_in_order():
    spy = AllEvents()
    train(tiny(arch="softmax", epochs=2, batch_size=32), callbacks=[spy])
    batch = ["before_batch", "after_batch"] * 3
    epoch = ["before_epoch", *batch, "before_validate", "after_validate", "after_epoch"]
    assert spy.events == ["before_fit", *epoch, *epoch, "after_fit"]


def test_an_exploding_loss_ends_as_diverged():
    """Adam at lr 1e6 keeps the loss finite but astronomically high (4.5e12 measured): it has exploded."""
    result = train(tiny(optimizer="adam", lr=1e6, epochs=2))
    assert result.status == "diverged", result.message
    assert "exploded" in result.message and "lower the learning rate" in result.message
    assert "1e+06" in result.message


def test_best_checkpoint_is_on_disk_after_epoch_1_even_if_the_run_dies(tmp_path):
    from cnnviz.checkpoint import load_checkpoint
    from cnnviz.training import BestCheckpoint

    path = tmp_path / "best.pt"
    seen = {}

    class DieInEpoch2(Callback):
        def before_batch(self, state):
            if state.epoch == 2:
                seen["epoch"] = load_checkpoint(path).epoch  # already written, whole, while epoch 2 runs
                raise RuntimeError("killed")

    result = train(tiny(epochs=2, scheduler="step", step_size=1), callbacks=[BestCheckpoint(path, extra={"run_id": 5}),
                                                                            DieInEpoch2()])
    assert result.status == "failed" and "killed" in result.message
    assert seen == {"epoch": 1}
    ckpt = load_checkpoint(path)
    assert ckpt.epoch == 1 and ckpt.extra["run_id"] == 5 and ckpt.metrics["val_acc"] == ckpt.best_val_acc
    assert ckpt.optimizer_state["state"] and ckpt.scheduler_state["last_epoch"] == 1
    assert set(ckpt.rng_state) == {"torch", "shuffle", "augment"}
    assert ckpt.config["epochs"] == 2 and ckpt.mode == "scratch"
    model = build_model(ckpt)
    assert not model.training


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_every_scheduler_state_loads_safely(tmp_path, scheduler):
    from cnnviz.checkpoint import load_checkpoint
    from cnnviz.training import BestCheckpoint

    path = tmp_path / "best.pt"
    result = train(tiny(arch="softmax", optimizer="adam", lr=0.01, scheduler=scheduler, epochs=1),
                   callbacks=[BestCheckpoint(path)])
    assert result.status == "finished", result.message
    ckpt = load_checkpoint(path)  # weights_only=True: every state must be plain data
    assert (ckpt.scheduler_state is None) == (scheduler == "none") and ckpt.optimizer_state["state"]


def _state(**fields):
    from types import SimpleNamespace

    base = dict(epoch=1, batch=1, lr=0.02, config=SimpleNamespace(lr=0.1), classes=list("abcdefghij"), row={},
                loss=2.3)
    return SimpleNamespace(**{**base, **fields})


def test_divergence_check_alone():
    from cnnviz.training.callbacks import Diverged, DivergenceCheck

    check = DivergenceCheck()
    state = _state()
    check.before_fit(state)
    check.after_batch(state)  # chance level: fine
    for loss, words in ((float("nan"), "loss became nan"), (float("inf"), "loss became inf"), (1e6, r"exploded to 1e\+06")):
        state.loss = loss
        with pytest.raises(Diverged, match=words):
            check.after_batch(state)
    state.train_loss = 0.002
    check.before_validate(state)  # the first epoch sets the reference
    state.epoch, state.train_loss = 2, 1.5  # 750x, but under chance level (2.30): a pretrained model's wobble
    check.before_validate(state)
    state.train_loss = 3000.0
    with pytest.raises(Diverged, match=r"exploded from 0.002 \(epoch 1\) to 3e\+03 .* lower the learning rate \(lr 0.1\)"):
        check.before_validate(state)


def test_throughput_alone():
    from cnnviz.training.callbacks import Throughput

    meter, state = Throughput(), _state(batch_images=16, images_per_sec=None)
    meter.before_epoch(state)
    meter.after_batch(state)
    meter.after_batch(state)
    assert state.images_per_sec > 0
    meter.after_validate(state)
    assert state.row["images_per_sec"] == state.images_per_sec


def test_grad_norms_alone():
    from cnnviz.training.callbacks import GradNorms
    from cnnviz.training.modes import Learner

    model = get_model("softmax", num_classes=2)
    state = _state(learner=Learner("scratch", model, model), grad_norms=None)
    norms = GradNorms()
    norms.before_fit(state)
    norms.before_epoch(state)
    for scale in (1.0, 3.0):
        model.zero_grad()
        (model(torch.ones(1, 3, 8, 8)).sum() * scale).backward()
        norms.after_batch(state)
    norms.after_validate(state)
    expected = (model.fc.weight.grad.norm() / 3.0 * 2.0).item()  # the mean of the norms of 1x and 3x the gradient
    assert state.row["grad_norms"] == state.grad_norms and state.grad_norms["fc"] == pytest.approx(expected)


def test_keep_best_and_confusion_matrix_alone():
    from cnnviz.training.callbacks import ConfusionMatrix, KeepBest
    from cnnviz.training.modes import Learner

    model = get_model("softmax", num_classes=2)
    state = _state(learner=Learner("scratch", model, model), classes=["a", "b"], val_labels=torch.tensor([0, 0, 1, 1]))
    keep, confusion = KeepBest(), ConfusionMatrix()
    for cb in (keep, confusion):
        cb.before_fit(state)
    for epoch, acc, predicted in ((1, 0.5, [0, 1, 0, 1]), (2, 0.75, [0, 0, 0, 1]), (3, 0.75, [1, 1, 1, 1])):
        state.epoch, state.row, state.val_predictions = epoch, {"val_acc": acc}, torch.tensor(predicted)
        for cb in (keep, confusion):
            cb.after_epoch(state)
    assert (state.best_epoch, state.best_val_acc) == (2, 0.75)  # a tie is no improvement
    assert state.best_predictions.tolist() == [0, 0, 0, 1] and state.best_row == {"val_acc": 0.75}
    assert state.confusion == [[2, 0], [1, 1]] and state.per_class_acc == [1.0, 0.5]
    assert torch.equal(state.best_snapshot["fc.weight"], model.fc.weight)


def test_best_checkpoint_alone(tmp_path):
    from cnnviz.checkpoint import Checkpoint, load_checkpoint
    from cnnviz.training import BestCheckpoint

    written = []
    state = _state(best_epoch=1, checkpoint_file=None)
    state.checkpoint = lambda training_state: written.append(training_state) or Checkpoint(
        arch="softmax", num_classes=2, state_dict={"fc.bias": torch.zeros(2)}, epoch=state.epoch)
    saver = BestCheckpoint(tmp_path / "b.pt", extra={"run_id": 1})
    saver.after_epoch(state)
    state.epoch = 2  # not an improvement: nothing written
    saver.after_epoch(state)
    assert written == [True] and state.checkpoint_file == str(tmp_path / "b.pt")
    assert load_checkpoint(tmp_path / "b.pt").epoch == 1
