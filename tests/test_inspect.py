"""Inspecting architectures: the reference figures, the layer table, input-size checks,
the fast cost path and the block diagram."""

from __future__ import annotations

import json

import pytest
import torch

from cnnviz.inspect import (block_diagram, check_input_size, format_flops, min_input_size, model_cost,
                            summarize)
from cnnviz.models import count_params, get_spec, head_module, list_models, meta_model

MODELS = list_models()


@pytest.mark.parametrize("name,options,classes,size,params,flops,tolerance", [
    ("alexnet", {}, 1000, 224, 61_100_840, 1.43e9, 0.01e9),
    ("resnet18", {}, 1000, 224, 11_689_512, 3.63e9, 0.01e9),
    ("vgg16", {}, 1000, 224, 138_357_544, 30.9e9, 0.05e9),
    ("cifar_resnet", {"depth": 20, "shortcut": "A"}, 10, 32, 269_722, 81.1e6, 0.05e6),
    ("cifar_resnet", {"depth": 56, "shortcut": "A"}, 10, 32, 853_018, None, None),
])
def test_reference_figures(name, options, classes, size, params, flops, tolerance):
    summary = summarize(name, options=options, num_classes=classes, image_size=size)
    assert summary.params == params == summary.trainable_params
    if flops is not None:
        assert abs(summary.flops - flops) <= tolerance
    assert model_cost(name, options=options, num_classes=classes, image_size=size) == (summary.params, summary.flops)


@pytest.mark.parametrize("name", MODELS)
def test_summary_table_and_totals(name):
    spec = get_spec(name)
    summary = summarize(name, num_classes=10)
    assert summary.image_size == spec.default_size
    assert summary.params == count_params(meta_model(name, num_classes=10))
    assert summary.flops > 0 and summary.activation_bytes > 0
    assert summary.layers and all(set(row) >= {"layer", "type", "output_shape", "params", "trainable"}
                                  for row in summary.layers)
    assert sum(row["params"] for row in summary.layers if row["depth"] == 1) == summary.params
    head_row = [row for row in summary.layers if row["layer"] == spec.head]
    assert head_row and head_row[0]["output_shape"] == [1, 10] and head_row[0]["type"] == "Linear"
    document = json.loads(json.dumps(summary.to_dict()))
    assert {"params", "trainable_params", "flops", "activation_bytes", "image_size", "layers"} <= set(document)
    assert spec.head.split(".")[0] in summary.text and "Parameters:" in summary.table()


@pytest.mark.parametrize("name", ["alexnet", "resnet18", "cifar_resnet"])
def test_frozen_summary_counts_only_the_head_as_trainable(name):
    summary = summarize(name, num_classes=2, frozen=True)
    head = head_module(meta_model(name, num_classes=2))
    assert summary.trainable_params == count_params(head) < summary.params


def test_toggles_change_the_summary_and_results_are_cached():
    plain = summarize("resnet18", num_classes=10, image_size=32, options={"stem": "cifar"})
    with_se = summarize("resnet18", num_classes=10, image_size=32, options={"stem": "cifar", "se_2": True})
    assert with_se.params > plain.params
    assert summarize("resnet18", num_classes=10, image_size=32, options={"stem": "cifar"}) is plain
    assert format_flops(1.43e9) == "1.43 GFLOPs"


@pytest.mark.parametrize("name", MODELS)
def test_minimum_input_size_is_real(name):
    spec = get_spec(name)
    assert min_input_size(name) == spec.min_size
    model = meta_model(name, num_classes=10).eval()
    assert model(torch.zeros(1, 3, spec.min_size, spec.min_size, device="meta")).shape == (1, 10)
    with pytest.raises(ValueError, match=f"at least {spec.min_size}x{spec.min_size}"):
        check_input_size(name, spec.min_size - 1)


@pytest.mark.parametrize("name,options,minimum", [("alexnet", None, 63), ("vgg16", None, 32),
                                                   ("alex_se", {"stem": "imagenet"}, 63)])
def test_geometric_minimum_is_tight(name, options, minimum):
    assert min_input_size(name, options) == minimum
    model = meta_model(name, num_classes=10, options=options).eval()
    with pytest.raises(RuntimeError):
        model(torch.zeros(1, 3, minimum - 1, minimum - 1, device="meta"))
    with pytest.raises(ValueError, match=f"at least {minimum}x{minimum}"):
        summarize(name, options=options, image_size=32 if minimum > 32 else minimum - 1)


def test_alexnet_rejects_32_px_naming_the_minimum():
    with pytest.raises(ValueError, match="alexnet needs inputs of at least 63x63 pixels, got 32x32"):
        check_input_size("alexnet", 32)
    check_input_size("alexnet", 63)
    with pytest.raises(ValueError, match="63x63"):
        model_cost("alexnet", image_size=32)


@pytest.mark.parametrize("name", MODELS)
def test_block_diagram_is_dot(name):
    dot = block_diagram(name)
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    assert dot.count("{") == dot.count("}")
    assert "input" in dot and "output" in dot


def test_block_diagram_shows_shortcuts_and_se_blocks():
    def count(dot, what):
        return dot.count(what)

    plain = block_diagram("alexnet_cifar")
    hybrid = block_diagram("alexnet_cifar", {"residual_1": True, "se_2": True, "se_3": True})
    assert count(plain, "style=dashed") == 0 and count(plain, "hexagon") == 0
    assert count(hybrid, "style=dashed") == 1 and count(hybrid, "hexagon") == 2
    resnet = block_diagram("resnet18", {"residual_3": False, "se_4": True})
    # One skip arc per residual block (ResNet-18: two blocks in each of the three residual stages), SE in each block.
    assert count(resnet, "style=dashed") == 6 and count(resnet, "hexagon") == 2
    assert count(block_diagram("resnet50"), "style=dashed") == 3 + 4 + 6 + 3
    assert count(block_diagram("cifar_resnet", {"depth": 20}), "style=dashed") == 9
    assert "xlabel" in resnet and "headport=e" in resnet  # labels beside the arcs, not under them
    assert count(block_diagram("cifar_resnet", {"residual": False}), "style=dashed") == 0
    assert "zero-pad" in block_diagram("cifar_resnet") and "1x1 projection (B)" in block_diagram("cifar_resnet", {"shortcut": "B"})


def test_unknown_option_is_a_value_error():
    with pytest.raises(ValueError, match="no option"):
        summarize("alexnet", options={"residual_1": True})
