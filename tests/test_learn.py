"""The Learn page's demos compute what their formulas say."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnviz import learn


def test_activation_curves_and_derivatives():
    frame = learn.activation_curves(low=-2, high=2, points=5)
    relu = frame[frame["function"] == "ReLU"]
    assert list(relu["value"]) == [0, 0, 0, 1, 2] and list(relu["gradient"])[-1] == 1
    tanh = frame[frame["function"] == "tanh"].set_index("x")
    assert tanh.loc[1.0, "gradient"] == pytest.approx(1 - math.tanh(1) ** 2, rel=1e-5)


def test_tanh_saturates_with_spread_relu_does_not():
    assert learn.saturated_share(activation="tanh", scale=0.5) < 0.01
    assert learn.saturated_share(activation="tanh", scale=6.0) > 0.6
    for scale in (0.5, 6.0):
        assert learn.saturated_share(activation="relu", scale=scale) == pytest.approx(0.5, abs=0.02)


def test_lrn_matches_the_formula_and_damps_neighbours_most():
    a = torch.rand(2, 9, 3, 3) * 20
    expected = learn.lrn_manual(a, size=5, alpha=1e-2, beta=0.75, k=2.0)
    assert torch.allclose(F.local_response_norm(a, 5, alpha=1e-2, beta=0.75, k=2.0), expected, rtol=1e-5)
    frame = learn.lrn_demo(alpha=5e-3, size=5, strong=100.0)
    assert frame["ratio"].iloc[5] < frame["ratio"].iloc[8], "a neighbour of the strong channel is damped more than a far one"
    assert (frame["after"] < frame["before"]).all()


def test_dropout_train_vs_eval():
    frame = learn.dropout_demo(p=0.5, n=200)
    dropped = frame["train"] == 0
    assert 0.3 < dropped.mean() < 0.7
    kept = frame[~dropped]
    assert torch.allclose(torch.tensor(kept["train"].values), torch.tensor(kept["input"].values) * 2, rtol=1e-5)
    assert (frame["eval"] == frame["input"]).all()
    assert learn.dropout_mean_ratio(p=0.5) == pytest.approx(1.0, abs=0.01)
    assert (learn.dropout_demo(p=0.0)["train"] == learn.dropout_demo(p=0.0)["input"]).all()


def test_pca_colour_shift_is_the_papers_formula():
    alphas = (0.1, -0.2, 0.05)
    shift = learn.pca_colour_shift(alphas=alphas)
    vec, val = torch.tensor(learn.IMAGENET_EIGVEC), torch.tensor(learn.IMAGENET_EIGVAL)
    manual = sum(vec[:, i] * alphas[i] * val[i] for i in range(3))
    assert torch.allclose(shift, manual)
    image = torch.full((3, 4, 4), 128, dtype=torch.uint8)
    out = learn.pca_colour_augment(image, alphas=alphas)
    assert torch.allclose(out[:, 0, 0].float(), (128 / 255 + shift).clamp(0, 1) * 255, atol=0.51)
    assert (out == out[:, :1, :1]).all(), "one offset for every pixel"
    samples = learn.pca_colour_samples(learn.sample_image(size=32), count=3, seed=1)
    assert len(samples) == 3 and all(s.shape == (3, 32, 32) and s.dtype == torch.uint8 for s, _ in samples)
    assert learn.pca_colour_samples(learn.sample_image(size=32), count=1, seed=1)[0][1] == samples[0][1]


def test_rgb_pca_of_an_image():
    image = learn.sample_image(size=48)
    vals, vecs = learn.rgb_pca(image)
    assert (vals[:-1] >= vals[1:]).all()
    assert torch.allclose(vecs.T @ vecs, torch.eye(3), atol=1e-4)


def test_option_a_shortcut_and_block_shapes():
    x = torch.randn(2, 16, 32, 32)
    y = learn.option_a_shortcut(x, out_channels=32)
    assert y.shape == (2, 32, 16, 16)
    # the models' ShortcutA splits the zero channels evenly: 8 before x's channels, 8 after
    assert torch.equal(y[:, 8:24], x[:, :, ::2, ::2]) and (y[:, :8] == 0).all() and (y[:, 24:] == 0).all()
    shapes = learn.residual_shapes(in_channels=16, out_channels=32, stride=2, size=32)
    assert shapes.fx == shapes.option_a == shapes.option_b == (1, 32, 16, 16)
    assert shapes.identity is None and shapes.zero_channels == 16
    assert (shapes.zeros_before, shapes.zeros_after) == (8, 8)
    assert learn.option_a_padding(in_channels=16, out_channels=21) == (2, 3)
    assert shapes.projection_params == 16 * 32 + 2 * 32  # 1x1 conv + BN scale/shift
    same = learn.residual_shapes(in_channels=16, out_channels=16, stride=1)
    assert same.identity == same.fx and same.option_a is None
    with pytest.raises(ValueError):
        learn.option_a_shortcut(x, out_channels=8)


def test_option_a_is_the_models_shortcut():
    from cnnviz.models import get_model
    from cnnviz.models.resnet import ShortcutA

    model = get_model("cifar_resnet", num_classes=10, options={"shortcut": "A"})
    blocks = [m for m in model.modules() if isinstance(getattr(m, "shortcut", None), ShortcutA)]
    assert blocks, "the CIFAR ResNet with shortcut A uses ShortcutA"
    block = blocks[0]
    x = torch.randn(1, block.conv1.in_channels, 8, 8)
    expected = block.shortcut(x)
    assert torch.equal(expected, learn.option_a_shortcut(x, out_channels=block.conv1.out_channels,
                                                         stride=block.shortcut.stride))


def test_bottleneck_param_counts():
    count = learn.bottleneck_params(channels=256, mid=64)
    assert count.basic == 2 * 3 * 3 * 256 * 256 == 1_179_648
    assert count.bottleneck == 256 * 64 + 9 * 64 * 64 + 64 * 256 == 69_632


def test_losses_agree_and_naive_bce_breaks_for_large_logits():
    z, y = learn.toy_logits(margin=2.0)
    table = learn.loss_table(z, y)
    exact = table["BCE-with-logits"]
    assert torch.allclose(torch.tensor(exact.values), torch.tensor(table["manual formula"].values), atol=1e-6)
    assert torch.allclose(torch.tensor(exact.values), torch.tensor(table["CE [0, z]"].values), atol=1e-5)
    bad = learn.naive_bce_unstable_rows(table)
    assert bad == [4], "z = 40 with target 0: sigmoid rounds to 1 and the log is clamped at -100"
    assert table.loc[4, "BCE(sigmoid(z))"] == pytest.approx(100.0)
    assert table.loc[4, "BCE-with-logits"] == pytest.approx(40.0)


@pytest.mark.parametrize("margin", [0.5, 2.0, 17.0, 24.5, 30.0])
def test_exact_forms_stay_within_float32_rounding_of_the_exact_loss(margin):
    table = learn.loss_table(*learn.toy_logits(margin=margin))
    losses = table.drop(columns=["logit z", "target y", "sigmoid(z)"])
    assert not (losses.map(lambda v: math.copysign(1.0, v)) < 0).any().any(), "no negative zero, no negative loss"
    exact = table[learn.EXACT_LOSS]
    errors = learn.float32_errors(table)
    assert [e.form for e in errors] == list(learn.EXACT_FORMS)
    for error in errors:
        diff = (table[error.form] - exact).abs()
        assert error.max_abs_error == pytest.approx(diff.max())
        assert error.max_abs_error < 1e-6, "float32 rounding, nothing worse"
        assert error.at_logit == table.loc[diff.idxmax(), "logit z"]
        rounded = (table[error.form].round(learn.LOSS_DECIMALS) == exact.round(learn.LOSS_DECIMALS)).all()
        assert error.agrees_when_rounded == bool(rounded)


def test_logit_scale_30_ce_is_zero_where_the_exact_loss_is_tiny():
    table = learn.loss_table(*learn.toy_logits(margin=30.0))
    assert table.loc[0, "CE [0, z]"] == 0.0 and math.copysign(1.0, table.loc[0, "CE [0, z]"]) == 1.0
    assert table.loc[0, learn.EXACT_LOSS] == pytest.approx(math.log1p(math.exp(-30.0)))


def test_compare_with_alexnet():
    table = learn.compare_with_alexnet({**learn.ALEXNET_OPTIMISER, "batch_size": 64, "scheduler": "none"})
    assert list(table["setting"]) == list(learn.ALEXNET_OPTIMISER)
    assert set(table[~table["same"]]["setting"]) == {"batch_size", "scheduler"}
    assert table.set_index("setting").loc["weight_decay", "here"] == "0.0005"


def test_se_gate_weights_read_every_se_block():
    from cnnviz.models import get_model

    model = get_model("alex_se", num_classes=10, options={"se_1": True, "se_2": True})
    gates = learn.se_gate_weights(model, torch.randn(2, 3, 32, 32))
    assert list(gates) == ["features.block1.se", "features.block2.se"]
    assert gates["features.block1.se"].shape == (64,) and gates["features.block2.se"].shape == (192,)
    assert all(((g >= 0) & (g <= 1)).all() for g in gates.values())
    frame = learn.gates_frame(gates)
    assert len(frame) == 64 + 192
    assert learn.se_gate_weights(get_model("alexnet_cifar", num_classes=10), torch.randn(1, 3, 32, 32)) == {}


def test_se_gates_come_from_the_se_blocks_alone_whatever_other_modules_are_called():
    from cnnviz.models import get_model

    class Unsqueeze(nn.Module):  # a name with "squeeze" in it, and no gate
        def forward(self, x):
            return x.unsqueeze(-1)

    model = nn.Sequential(get_model("alex_se", num_classes=10, options={"se_1": True, "se_2": False}), Unsqueeze())
    assert list(learn.se_gate_weights(model, torch.randn(2, 3, 32, 32))) == ["0.features.block1.se"]


def test_tile_grid():
    tiles = torch.rand(5, 3, 3, 3).numpy()
    grid = learn.tile_grid(tiles, columns=4, scale=2, pad=1)
    assert grid.shape == (2 * (6 + 1) + 1, 4 * (6 + 1) + 1, 3) and grid.dtype.name == "uint8"
    assert learn.tile_grid(torch.rand(2, 4, 4).numpy(), columns=8, scale=1).shape == (6, 11, 3)
