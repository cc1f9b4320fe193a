"""airbench and its tricks: each is an option, and each changes what it should."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from cnnviz.models import get_model, get_spec
from cnnviz.models.airbench import WhiteningConv, whitening_filters
from cnnviz.training import Callback, TrainConfig
from cnnviz.training.callbacks import (LOOKAHEAD_DECAY, WHITEN_BIAS_EPOCHS, Lookahead, WeightAverage,
                                      WhitenFirstLayer)
from cnnviz.training.config import ConfigError
from cnnviz.training.trainer import Trainer, evaluation_logits

TINY = dict(arch="airbench", options={"width": 16, "width_factor": 1}, dataset="shapes", subset=12, val_subset=6,
            epochs=1, batch_size=16, lr=0.05, image_size=32, device="cpu", precision="fp32")


def test_whitening_filters_whiten_the_patches():
    torch.manual_seed(0)
    mix = torch.tensor([[1.0, 0.8, 0.2], [0.0, 0.6, 0.5], [0.0, 0.0, 0.3]])
    images = torch.einsum("dc,nchw->ndhw", mix, torch.randn(64, 3, 16, 16))  # correlated channels
    filters = whitening_filters(images, eps=1e-8)
    assert filters.shape == (24, 3, 2, 2)
    assert torch.equal(filters[12:], -filters[:12])  # each filter and its negative
    out = nn.functional.conv2d(images, filters[:12]).transpose(0, 1).reshape(12, -1)
    covariance = out @ out.T / out.shape[1]
    assert torch.allclose(covariance, torch.eye(12), atol=1e-3)


def test_the_whitening_weight_is_a_buffer_and_the_option_turns_it_into_a_trained_conv():
    whitened = get_model("airbench", num_classes=10)
    assert isinstance(whitened.stem.conv, WhiteningConv)
    assert "stem.conv.weight" not in dict(whitened.named_parameters())
    assert "stem.conv.weight" in whitened.state_dict()
    plain = get_model("airbench", num_classes=10, options={"whiten": False})
    assert not isinstance(plain.stem.conv, WhiteningConv)
    assert "stem.conv.weight" in dict(plain.named_parameters())
    plain.load_state_dict(whitened.state_dict())  # the same state-dict keys either way


def test_the_diagram_follows_the_options():
    spec = get_spec("airbench")
    stages = spec.diagram({"width": 32, "width_factor": 4, "whiten": False})
    assert [s.name for s in stages] == ["stem", "group1", "group2", "group3", "head"]
    assert "32" in stages[1].label and "128" in stages[3].label and "trained" in stages[0].label


class _Record(Callback):
    """Keeps what a test compares at the end of the run."""

    def after_fit(self, state):
        self.source = state.train_source
        self.stem = state.model.stem.conv
        self.weight = self.stem.weight.detach().clone()


def test_training_whitens_the_first_layer_from_the_training_images_and_never_trains_it():
    record = _Record()
    result = Trainer(TrainConfig(**TINY), callbacks=[record]).run()
    assert result.status == "finished", result.message
    source = record.source
    images = torch.cat([source.get(i, train=False)[0] for i in torch.arange(len(source)).split(50)])
    assert torch.allclose(record.weight, whitening_filters(images), atol=1e-5)
    assert not record.stem.weight.requires_grad
    assert torch.allclose(result.best_state_dict["stem.conv.weight"], record.weight)


def test_the_whitening_bias_freezes_after_its_epochs():
    layer = WhiteningConv()
    callback = WhitenFirstLayer()
    callback.layers = [layer]
    callback.before_epoch(SimpleNamespace(epoch=WHITEN_BIAS_EPOCHS))
    assert layer.bias.requires_grad
    callback.before_epoch(SimpleNamespace(epoch=WHITEN_BIAS_EPOCHS + 1))
    assert not layer.bias.requires_grad


def test_flip_tta_logits_are_the_mean_of_both_views():
    torch.manual_seed(0)
    model = get_model("airbench", num_classes=10, options={"width": 16}).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        expected = (model(x) + model(x.flip(-1))) / 2
        assert torch.allclose(evaluation_logits(model, x, flip=True), expected)
        assert torch.equal(evaluation_logits(model, x), model(x))
        assert not torch.allclose(expected, model(x))


def test_shift_tta_gives_the_original_half_and_each_one_pixel_shift_a_quarter():
    torch.manual_seed(0)
    model = get_model("airbench", num_classes=10, options={"width": 16}).eval()
    x = torch.randn(4, 3, 32, 32)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    up_left, down_right = padded[..., :32, :32], padded[..., 2:, 2:]
    assert torch.equal(up_left[..., 1:, 1:], x[..., :31, :31])  # the picture moved by one pixel
    with torch.no_grad():
        mirror = lambda v: (model(v) + model(v.flip(-1))) / 2  # noqa: E731
        both = mirror(x) / 2 + (mirror(up_left) + mirror(down_right)) / 4
        assert torch.allclose(evaluation_logits(model, x, flip=True, shift=True), both, atol=1e-6)
        alone = model(x) / 2 + (model(up_left) + model(down_right)) / 4
        assert torch.allclose(evaluation_logits(model, x, shift=True), alone, atol=1e-6)


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("shift", [False, True])
def test_evaluation_views_counts_the_forward_passes_evaluation_makes(flip, shift):
    from cnnviz.training.config import evaluation_views

    calls = []
    model = lambda x: calls.append(1) or x.mean((2, 3))  # noqa: E731
    evaluation_logits(model, torch.randn(2, 3, 8, 8), flip=flip, shift=shift)
    assert len(calls) == evaluation_views(flip, shift)


def test_flip_tta_changes_evaluation_only():
    plain = Trainer(TrainConfig(**TINY)).run()
    flipped = Trainer(TrainConfig(**TINY, tta_flip=True)).run()
    assert plain.epochs[0]["train_loss"] == flipped.epochs[0]["train_loss"]
    assert plain.epochs[0]["val_loss"] != flipped.epochs[0]["val_loss"]


def _state(model: nn.Module) -> SimpleNamespace:
    return SimpleNamespace(learner=SimpleNamespace(trainable=model))


def test_weight_average_swaps_the_average_in_for_validation_and_back_for_training():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    state = _state(model)
    average = WeightAverage(0.9)
    average.before_fit(state)
    expected = {k: v.clone() for k, v in model.state_dict().items() if v.is_floating_point()}
    for t in range(5):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        average.after_batch(state)
        decay = min(0.9, (1 + t) / (10 + t))
        for k, v in model.state_dict().items():
            if k in expected:
                expected[k] = decay * expected[k] + (1 - decay) * v
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    average.before_validate(state)
    for k, v in expected.items():
        assert torch.allclose(model.state_dict()[k], v, atol=1e-6), k
    average.before_epoch(state)
    for k, v in trained.items():
        assert torch.equal(model.state_dict()[k], v), k


class _CheckValidatedWeights(Callback):
    def __init__(self, average: WeightAverage):
        self.average, self.checked = average, 0

    def after_validate(self, state):
        for live, mean in zip(self.average.live, self.average.average):
            assert torch.equal(live, mean)
        self.checked += 1


def test_a_run_with_ema_validates_and_keeps_the_average():
    trainer = Trainer(TrainConfig(**{**TINY, "epochs": 2}, ema_decay=0.95))
    average = next(c for c in trainer.callbacks if isinstance(c, WeightAverage))
    check = _CheckValidatedWeights(average)
    trainer.callbacks.append(check)
    result = trainer.run()
    assert result.status == "finished", result.message
    assert check.checked == 2
    final = [v for v in trainer.state.model.state_dict().values() if v.is_floating_point()]
    assert all(torch.equal(v, mean) for v, mean in zip(final, average.average))  # the run ends on the average


def test_no_ema_callback_unless_asked():
    assert not any(isinstance(c, WeightAverage) for c in Trainer(TrainConfig(**TINY)).callbacks)


def test_lookahead_pulls_the_weights_to_the_slow_ones_every_five_batches_and_ends_on_them():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    weight = model[0].weight
    state = SimpleNamespace(learner=SimpleNamespace(trainable=model), epochs=2, batches=10, step=0)
    look = Lookahead()
    look.before_fit(state)
    trained = []  # the weights after each optimiser step, before the callback sees them
    for step in range(1, 21):
        with torch.no_grad():
            weight.add_(1.0)  # a stand-in for an optimiser step
        trained.append(weight.clone())
        state.step = step
        if step == 1:
            first = weight.clone()
        look.after_batch(state)
        if step == 5:
            decay = LOOKAHEAD_DECAY * (5 / 20) ** 3
            assert torch.allclose(weight, decay * first + (1 - decay) * trained[-1])
        elif step % 5:
            assert torch.equal(weight, trained[-1])  # between lookahead steps the weights train freely
    slow_before_last = look.slow[0].clone()
    assert torch.equal(weight, slow_before_last) and not torch.equal(weight, trained[-1])  # ends on the slow weights


def test_a_run_with_lookahead_trains_differently_and_finishes():
    plain = Trainer(TrainConfig(**{**TINY, "epochs": 2})).run()
    looked = Trainer(TrainConfig(**{**TINY, "epochs": 2}, lookahead=True)).run()
    assert looked.status == "finished", looked.message
    assert plain.epochs[0]["train_loss"] != looked.epochs[0]["train_loss"]
    assert not any(isinstance(c, Lookahead) for c in Trainer(TrainConfig(**TINY)).callbacks)


@pytest.mark.parametrize("decay", [-0.1, 1.0])
def test_ema_decay_is_bounded(decay):
    with pytest.raises(ConfigError, match="ema_decay"):
        TrainConfig(**TINY, ema_decay=decay)
