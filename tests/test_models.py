"""The model zoo: every registered architecture and every option in its schema builds, runs,
swaps its head, freezes, toggles shortcuts and SE blocks, and loads weights files."""

from __future__ import annotations

import urllib.error

import pytest
import torch
import torchvision
from torch import nn

from cnnviz import paths
from cnnviz.checkpoint import CHECKPOINT_FORMAT
from cnnviz.inspect import min_input_size
from cnnviz.models import (VGG_LAYOUTS, WeightsError, WeightsUnavailable, count_params,
                           freeze_backbone, get_model, get_spec, head_module, hub_checkpoints_dir, list_models,
                           load_weights_file, meta_model, probe_module, replace_head, resolve_options,
                           se_modules, weights_file_name)

MODELS = list_models()
# Training steps of these take seconds and gigabytes on a CPU; their forward passes are tested.
BIG = {"vgg11", "vgg16", "resnet50", "resnet34"}


def _other_values(option) -> list:
    """Every value of ``option`` other than its default (the variations to test)."""
    if option.kind == "bool":
        return [not option.default]
    return [value for value in option.choices if value != option.default]


OPTION_CASES = [pytest.param(name, option.name, value, id=f"{name}-{option.name}={value}")
                for name in MODELS for option in get_spec(name).options for value in _other_values(option)]


def _forward(model: nn.Module, size: int) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(torch.rand(1, 3, size, size))


def test_registry_has_the_course_architectures():
    expected = {"alexnet", "alexnet_cifar", "alex_resnet", "alex_se", "resnet18", "resnet34", "resnet50",
                "vgg11", "vgg16", "cifar_resnet", "softmax"}
    assert expected <= set(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_spec_is_complete(name):
    spec = get_spec(name)
    assert spec.label and spec.paper
    assert 1 <= len(spec.description.splitlines()) <= 2
    assert 1 <= spec.min_size <= spec.default_size
    assert resolve_options(name) == spec.defaults()
    names = [o.name for o in spec.options]
    assert len(names) == len(set(names))
    assert spec.family, "the network it descends from (recipes follow its paper)"
    if spec.weights:
        torchvision.models.get_weight(spec.weights)  # a real torchvision weights name
        assert set(spec.weights_options) <= set(names)


@pytest.mark.parametrize("name", MODELS)
def test_builds_and_runs_at_default_and_minimum_size(name):
    spec = get_spec(name)
    model = get_model(name, num_classes=7)
    assert model.cnnviz_arch == name and model.cnnviz_options == spec.defaults()
    assert _forward(model, spec.default_size).shape == (1, 7)
    assert _forward(model, spec.min_size).shape == (1, 7)


@pytest.mark.parametrize("name,option,value", OPTION_CASES)
def test_every_option_builds_and_runs(name, option, value):
    options = {option: value}
    model = get_model(name, num_classes=3, options=options)
    assert model.cnnviz_options[option] == value
    spec = get_spec(name)
    smallest = min_input_size(name, options)
    assert _forward(model, smallest).shape == (1, 3)
    # At the default size a shape-only (meta) pass keeps the suite fast: 224 px passes of every
    # variation would take minutes; test_builds_and_runs... runs each architecture there for real.
    size = max(spec.default_size, smallest)
    shape_only = meta_model(name, num_classes=3, options=options).eval()
    assert shape_only(torch.zeros(1, 3, size, size, device="meta")).shape == (1, 3)


ALL_ON = {"alexnet": {"lrn": True, "batchnorm": True},
          "resnet18": {f"se_{k}": True for k in range(1, 5)} | {"residual_2": False},
          "cifar_resnet": {"shortcut": "A"}}


@pytest.mark.parametrize("name", [n for n in MODELS if n not in BIG])
def test_one_training_step(name):
    """Backward works with the toggles on (no in-place operation breaks autograd)."""
    options = ALL_ON.get(name, {})
    if name.startswith("alex_") or name == "alexnet_cifar":
        options = {f"{kind}_{k}": True for kind in ("residual", "se") for k in (1, 2, 3)}
    model = get_model(name, num_classes=3, options=options).train()
    size = max(32, min_input_size(name, options))
    loss = nn.functional.cross_entropy(model(torch.rand(2, 3, size, size)), torch.tensor([0, 2]))
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_presets_of_the_configurable_alexnet():
    assert get_model("alex_resnet", num_classes=10).cnnviz_options["residual_1"] is True
    resnet_opts = resolve_options("alex_resnet")
    assert resnet_opts["residual_1"] and resnet_opts["residual_2"] and not resnet_opts["residual_3"]
    se_opts = resolve_options("alex_se")
    assert se_opts["se_2"] and not se_opts["se_1"] and not se_opts["se_3"]
    # All toggles off, the presets are the same network as alexnet_cifar.
    off = {**{f"residual_{k}": False for k in (1, 2, 3)}, **{f"se_{k}": False for k in (1, 2, 3)}}
    assert count_params(meta_model("alex_resnet", options=off)) == count_params(meta_model("alexnet_cifar"))


@pytest.mark.parametrize("stem", ["cifar", "imagenet"])
@pytest.mark.parametrize("size", [32, 224])
def test_alex_hybrids_work_at_32_and_224_px(stem, size):
    options = {"stem": stem, "residual_1": True, "residual_2": True, "residual_3": True, "se_1": True, "se_3": True}
    if stem == "imagenet" and size == 32:
        with pytest.raises(ValueError, match="63x63"):
            from cnnviz.inspect import check_input_size
            check_input_size("alex_resnet", size, options)
        return
    model = meta_model("alex_resnet", num_classes=10, options=options)
    assert model(torch.zeros(1, 3, size, size, device="meta")).shape == (1, 10)


@pytest.mark.parametrize("name", MODELS)
def test_replace_head(name):
    model = meta_model(name, num_classes=10)
    old = head_module(model)
    assert replace_head(model, 4) is model
    head = head_module(model)
    assert head is not old and head.out_features == 4 and head.in_features == old.in_features
    size = get_spec(name).min_size
    assert model.eval()(torch.zeros(2, 3, size, size, device="meta")).shape == (2, 4)


@pytest.mark.parametrize("name", MODELS)
def test_freeze_backbone_leaves_only_the_head_trainable(name):
    model = freeze_backbone(meta_model(name, num_classes=5))
    head = get_spec(name).head
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == [f"{head}.weight", f"{head}.bias"]
    assert count_params(model, trainable_only=True) == count_params(head_module(model))


@pytest.mark.parametrize("name", MODELS)
def test_probe_points_are_feature_maps_shallow_to_deep(name):
    spec = get_spec(name)
    model = meta_model(name, num_classes=10).eval()
    shapes = {}
    for point in spec.probe_points:
        def record(module, inputs, out, point=point):
            shapes.setdefault(point, tuple(out.shape))
        probe_module(model, point).register_forward_hook(record)
    model(torch.zeros(1, 3, spec.default_size, spec.default_size, device="meta"))
    assert list(shapes) == list(spec.probe_points)  # called in network order
    sides = [shape[-1] for shape in shapes.values()]
    assert all(len(shape) == 4 for shape in shapes.values())
    assert sides == sorted(sides, reverse=True)
    with pytest.raises(ValueError, match="probe point"):
        probe_module(model, "nowhere")


def _finish_order(model: nn.Module, x: torch.Tensor) -> list[tuple[str, nn.Module, tuple]]:
    """``(name, module, output shape)`` of every module, in the order their forward passes end."""
    done, hooks = [], []
    for name, module in model.named_modules():
        if name:
            hooks.append(module.register_forward_hook(
                lambda m, i, out, name=name: done.append((name, m, tuple(out.shape)))
                if isinstance(out, torch.Tensor) else None))
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return done


CAM_CASES = [pytest.param(name, {}, id=f"{name}-defaults") for name in MODELS] + [
    pytest.param(name, {option.name: value}, id=f"{name}-{option.name}={value}")
    for name in MODELS for option in get_spec(name).options for value in _other_values(option)
    if option.kind in ("bool", "choice")]


@pytest.mark.parametrize("name,options", CAM_CASES)
def test_cam_layer_is_the_last_feature_map_at_the_last_convolutions_size(name, options):
    """What Grad-CAM needs (Selvaraju et al., 2017): the deepest rectified maps before pooling shrinks them."""
    spec = get_spec(name)
    path = spec.cam_layer_for(resolve_options(name, options))
    model = meta_model(name, num_classes=10, options=options).eval()
    big = spec.default_size > 64 or options.get("stem") == "imagenet"
    size = max(spec.min_size, 64 if big else 32)  # big enough that the last stage keeps more than 1x1
    done = _finish_order(model, torch.zeros(1, 3, size, size, device="meta"))
    convs = [i for i, (_, m, shape) in enumerate(done) if isinstance(m, nn.Conv2d) and shape[-1] * shape[-2] > 1]
    if not convs:
        assert path is None, f"{name} has no convolution but names a Grad-CAM layer"
        return
    assert path is not None, f"{name} has convolutions but no cam_layer"
    model.get_submodule(path)  # raises if the path names nothing
    last_shape = done[convs[-1]][2]
    same_size = [n for i, (n, _, shape) in enumerate(done) if i >= convs[-1] and shape[2:] == last_shape[2:]
                 and len(shape) == 4]
    assert path == same_size[-1]


def _skip_blocks(model: nn.Module) -> set[str]:
    return {n for n, m in model.named_modules() if getattr(m, "residual", False)}


def _param_names(model: nn.Module) -> dict[str, int]:
    return {n: p.numel() for n, p in model.named_parameters()}


RESIDUAL_CASES = [(name, o.name) for name in MODELS for o in get_spec(name).options if o.name.startswith("residual")]
SE_CASES = [(name, o.name) for name in MODELS for o in get_spec(name).options if o.name.startswith("se_")
            and o.name != "se_reduction"]


@pytest.mark.parametrize("name,option", RESIDUAL_CASES)
def test_turning_a_residual_off_removes_exactly_that_shortcut(name, option):
    on = meta_model(name, num_classes=10, options={option: True})
    off = meta_model(name, num_classes=10, options={option: False})
    removed = _skip_blocks(on) - _skip_blocks(off)
    assert removed and _skip_blocks(off) < _skip_blocks(on)
    stage = option.rpartition("_")[2]
    if stage.isdigit():  # per-block option: only that block/stage loses its skips
        where = {"alex": f"features.block{stage}"}.get(name[:4], f"layer{stage}")
        assert all(n.startswith(where) for n in removed)
    gone = set(_param_names(on)) - set(_param_names(off))
    assert not set(_param_names(off)) - set(_param_names(on))
    assert all(".shortcut." in n or ".downsample." in n for n in gone)  # only shortcut parameters disappear
    assert count_params(on) - count_params(off) == sum(_param_names(on)[n] for n in gone)


@pytest.mark.parametrize("name,option", SE_CASES)
def test_an_se_toggle_adds_exactly_that_se_block(name, option):
    off = meta_model(name, num_classes=10, options={option: False})
    on = meta_model(name, num_classes=10, options={option: True})
    stage = option.rpartition("_")[2]
    where = {"alex": f"features.block{stage}"}.get(name[:4], f"layer{stage}")
    added = {n for n, _ in on.named_modules()} - {n for n, _ in off.named_modules()}
    se_roots = {n for n in added if n.endswith(".se")}
    expected = 1 if name.startswith("alex") else len(getattr(on, f"layer{stage}"))
    assert len(se_modules(on)) - len(se_modules(off)) == expected == len(se_roots)
    assert all(n.startswith(where) for n in se_roots)
    extra = set(_param_names(on)) - set(_param_names(off))
    assert all(any(n.startswith(root + ".") for root in se_roots) for n in extra)
    assert count_params(on) - count_params(off) == sum(_param_names(on)[n] for n in extra)


def test_cifar_resnet_shortcut_a_has_no_parameters_and_b_projects():
    a = meta_model("cifar_resnet", num_classes=10, options={"shortcut": "A"})
    b = meta_model("cifar_resnet", num_classes=10, options={"shortcut": "B"})
    plain = meta_model("cifar_resnet", num_classes=10, options={"residual": False})
    assert count_params(a) == count_params(plain) == 269_722
    assert count_params(b) > count_params(a)  # the two downsampling projections
    assert count_params(meta_model("cifar_resnet", num_classes=10, options={"depth": 56})) == 853_018


def test_vgg_layout_is_data():
    assert VGG_LAYOUTS["vgg16"].count("M") == 5
    assert sum(isinstance(c, int) for c in VGG_LAYOUTS["vgg16"]) == 13
    assert list(get_spec("vgg16").probe_points) == [f"block{k}" for k in range(1, 6)]
    assert meta_model("vgg11").layout == VGG_LAYOUTS["vgg11"]
    assert get_spec("vgg16").weights_for({"batchnorm": True})[0] == "VGG16_BN_Weights.IMAGENET1K_V1"


@pytest.mark.parametrize("name,options,builder", [
    ("alexnet", {}, "alexnet"), ("alexnet", {"lrn": True, "dropout": False}, "alexnet"),
    ("resnet18", {}, "resnet18"), ("resnet34", {}, "resnet34"), ("resnet50", {}, "resnet50"),
    ("vgg11", {}, "vgg11"), ("vgg16", {}, "vgg16"), ("vgg16", {"batchnorm": True}, "vgg16_bn"),
])
def test_torchvision_layout(name, options, builder):
    with torch.device("meta"):
        reference = getattr(torchvision.models, builder)()
    ours = meta_model(name, num_classes=1000, options=options)
    theirs = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == theirs


# --- weights --------------------------------------------------------------------------------

@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty torch cache in which nothing can be downloaded (as on this machine)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("network unreachable (test)")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return tmp_path / "torch_home"


@pytest.fixture(scope="module")
def resnet18_state():
    """A torchvision ResNet-18 state_dict (random values) with its 1000-class head."""
    torch.manual_seed(0)
    return torchvision.models.resnet18().state_dict()


def test_weights_unavailable_names_file_and_folder(torch_home):
    with pytest.raises(WeightsUnavailable) as info:
        get_model("resnet18", num_classes=2, init="imagenet")
    message = str(info.value)
    assert "resnet18-f37072fd.pth" in message
    assert str(torch_home / "hub" / "checkpoints") in message
    assert weights_file_name("ResNet18_Weights.IMAGENET1K_V1") == "resnet18-f37072fd.pth"


def test_imagenet_weights_load_from_the_torch_cache(torch_home, resnet18_state):
    folder = hub_checkpoints_dir()
    assert folder == torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(resnet18_state, folder / weights_file_name("ResNet18_Weights.IMAGENET1K_V1"))
    model = get_model("resnet18", num_classes=2, init="imagenet")
    assert torch.equal(model.conv1.weight, resnet18_state["conv1.weight"])
    assert torch.equal(model.layer4[1].bn2.running_var, resnet18_state["layer4.1.bn2.running_var"])
    assert head_module(model).out_features == 2
    kept = get_model("resnet18", num_classes=1000, init="imagenet")  # same size head: kept
    assert torch.equal(kept.fc.weight, resnet18_state["fc.weight"])


def test_local_torchvision_state_dict_loads_through_init_path(tmp_path, resnet18_state):
    path = tmp_path / "resnet18.pth"
    torch.save(resnet18_state, path)
    model = get_model("resnet18", num_classes=3, init=str(path))
    assert torch.equal(model.layer2[0].downsample[0].weight, resnet18_state["layer2.0.downsample.0.weight"])
    assert model.fc.out_features == 3
    assert _forward(model, 64).shape == (1, 3)


def test_se_blocks_are_added_on_top_of_pretrained_weights(tmp_path, resnet18_state):
    path = tmp_path / "resnet18.pth"
    torch.save(resnet18_state, path)
    model = get_model("resnet18", num_classes=2, options={"se_3": True}, init=str(path))
    assert len(se_modules(model)) == 2
    assert torch.equal(model.layer3[0].conv1.weight, resnet18_state["layer3.0.conv1.weight"])


@pytest.mark.parametrize("options,expected", [
    ({"residual_2": False}, "residual_2=True"),
    ({"stem": "cifar"}, "stem=imagenet"),
])
def test_weights_that_do_not_fit_the_options_fail_clearly(tmp_path, resnet18_state, options, expected):
    path = tmp_path / "resnet18.pth"
    torch.save(resnet18_state, path)
    with pytest.raises(WeightsError, match=expected):
        get_model("resnet18", num_classes=2, options=options, init=str(path))


def test_cnnviz_checkpoint_rebuilds_with_its_options(tmp_path):
    trained = get_model("cifar_resnet", num_classes=4, options={"depth": 32, "shortcut": "B"})
    payload = {"format": CHECKPOINT_FORMAT, "arch": "cifar_resnet", "options": trained.cnnviz_options,
               "num_classes": 4, "classes": ["a", "b", "c", "d"], "state_dict": trained.state_dict()}
    path = tmp_path / "run.pt"
    torch.save(payload, path)
    state, meta = load_weights_file(path)
    assert meta["classes"] == ["a", "b", "c", "d"] and "state_dict" not in meta
    same = get_model("cifar_resnet", num_classes=4, init=str(path))
    assert same.cnnviz_options == trained.cnnviz_options
    assert torch.equal(same.fc.weight, trained.fc.weight)  # same classes: the trained head is kept
    other = get_model("cifar_resnet", num_classes=2, init=str(path))
    assert other.fc.out_features == 2 and torch.equal(other.layer3[0].conv1.weight, trained.layer3[0].conv1.weight)
    with pytest.raises(WeightsError, match="checkpoint of cifar_resnet"):
        get_model("resnet18", num_classes=2, init=str(path))


def test_run_init_resolves_through_the_run_store(tmp_path, monkeypatch):
    model = get_model("softmax", num_classes=2)
    path = tmp_path / "best.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "arch": "softmax", "options": model.cnnviz_options,
                "num_classes": 2, "state_dict": model.state_dict()}, path)
    # A stand-in for the run store's resolver: models never import cnnviz.runs.
    monkeypatch.setitem(paths._INIT_RESOLVERS, "run", lambda run_id: path if run_id == "7" else None)
    loaded = get_model("softmax", num_classes=2, init="run:7")
    assert torch.equal(loaded.fc.weight, model.fc.weight)
    with pytest.raises(WeightsError, match="no checkpoint"):
        get_model("softmax", num_classes=2, init="run:8")


def test_pickled_files_are_refused(tmp_path):
    path = tmp_path / "whole_model.pt"
    torch.save(get_model("softmax", num_classes=2), path)  # pickles the module's class: code, not weights
    with pytest.raises(WeightsError, match="safely"):
        get_model("softmax", num_classes=2, init=str(path))


def test_bad_init_values(tmp_path):
    with pytest.raises(WeightsError, match="no pretrained"):
        get_model("cifar_resnet", num_classes=10, init="imagenet")
    with pytest.raises(WeightsError, match="not found"):
        get_model("softmax", num_classes=10, init=str(tmp_path / "missing.pt"))
    with pytest.raises(ValueError, match="unknown architecture"):
        get_model("lenet", num_classes=10)
    with pytest.raises(ValueError, match="no option"):
        get_model("resnet18", num_classes=10, options={"residual_5": False})
