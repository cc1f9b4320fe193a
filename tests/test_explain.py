"""Grad-CAM, saliency, feature maps, filters and overlays on small models."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from PIL import Image

from cnnviz.explain import (COLORMAP, LRU, answer, colorize, conv_layers, explain_image, feature_maps,
                            first_layer_filters, gradcam, gradcam_layer, overlay, resolve_layer, saliency)
from cnnviz.models import get_model, get_spec, list_models
from cnnviz.predict import preprocess


def payload(size: int = 32, classes=("a", "b", "c")) -> dict:
    return {"image_size": size, "mean": [0.5] * 3, "std": [0.25] * 3, "classes": list(classes),
            "num_classes": len(classes)}


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return get_model("alexnet_cifar", num_classes=3).eval()


@pytest.fixture
def photo() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))


def test_gradcam_shape_range_and_crop(tiny, photo):
    heat = gradcam(tiny, payload(), photo)
    assert heat.shape == (48, 64) and heat.dtype == np.float32
    assert np.isfinite(heat).all() and heat.min() >= 0 and heat.max() <= 1 and heat.max() > 0
    # The model saw the centred 48x48 square; the 8 px strips either side stay empty.
    assert not heat[:, :8].any() and not heat[:, -8:].any()


def test_gradcam_target_and_layer_choices(tiny, photo):
    a = gradcam(tiny, payload(), photo, target=0)
    b = gradcam(tiny, payload(), photo, target=1)
    assert a.shape == b.shape and not np.allclose(a, b)
    name, _ = resolve_layer(tiny, "block2")  # a probe point name
    assert name == get_spec("alexnet_cifar").probe_points["block2"]
    assert gradcam(tiny, payload(), photo, layer="block2").shape == (48, 64)
    assert gradcam(tiny, payload(), photo, layer=tiny.get_submodule(conv_layers(tiny)[0])).shape == (48, 64)
    with pytest.raises(ValueError, match="no layer"):
        resolve_layer(tiny, "nowhere.at.all")


@pytest.mark.parametrize("arch", [a for a in list_models() if get_spec(a).cam_layer is not None])
def test_gradcam_layer_for_every_architecture(arch):
    """The spec's choice is the last spatial output: after the residual add, after the last ReLU."""
    with torch.device("meta"):
        model = get_model(arch, num_classes=3).eval()
    name, module = gradcam_layer(model)
    assert name == get_spec(arch).cam_layer_for(model.cnnviz_options)
    assert module is model.get_submodule(name)
    assert not isinstance(module, (torch.nn.Linear, torch.nn.AdaptiveAvgPool2d))
    if arch.startswith("resnet"):
        assert name == "layer4"


@pytest.mark.parametrize("arch", list_models())
def test_gradcam_reads_the_spec_layer(arch, photo, monkeypatch):
    """Grad-CAM attaches to the module ``cam_layer`` names, whatever the options (VGG's batch norm moves it)."""
    import cnnviz.explain as explain

    spec = get_spec(arch)
    options = {"batchnorm": True} if any(o.name == "batchnorm" for o in spec.options) else {}
    seen = []

    def spy(model, x, module, target):
        seen.append(module)
        return torch.zeros(1, 3), 0, torch.ones(1, 1, 4, 4)

    monkeypatch.setattr(explain, "_cam_pass", spy)
    with torch.device("meta"):
        model = get_model(arch, num_classes=3, options=options).eval()
    size = max(spec.min_size, 32)
    if spec.cam_layer is None:
        with pytest.raises(ValueError, match="no convolution layer"):
            gradcam(model, payload(size), photo, target=0)
        return
    gradcam(model, payload(size), photo, target=0)
    assert seen == [model.get_submodule(spec.cam_layer_for(model.cnnviz_options))]


def test_softmax_has_no_gradcam_but_has_saliency(photo):
    model = get_model("softmax", num_classes=3).eval()
    with pytest.raises(ValueError, match="no convolution layer"):
        gradcam(model, payload(), photo)
    heat = saliency(model, payload(), photo)
    assert heat.shape == (48, 64) and 0 <= heat.min() and heat.max() == pytest.approx(1.0)


def test_saliency_on_a_frozen_model(tiny, photo):
    for p in tiny.parameters():
        p.requires_grad_(False)
    try:
        assert saliency(tiny, payload(), photo).max() > 0
        assert gradcam(tiny, payload(), photo).max() > 0
    finally:
        for p in tiny.parameters():
            p.requires_grad_(True)


def test_concurrent_explanations_on_a_shared_model(tiny, photo):
    """Sessions share cached models; hooks of one explanation must not leak into another."""
    expected = gradcam(tiny, payload(), photo, target=2)
    results, errors = [], []

    def work():
        try:
            results.append(gradcam(tiny, payload(), photo, target=2))
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and all(np.allclose(r, expected) for r in results)
    assert not any(m._forward_hooks for m in tiny.modules())  # every hook removed


def test_feature_maps_and_filters(tiny, photo):
    first = conv_layers(tiny)[0]
    maps = feature_maps(tiny, payload(), photo, first)
    conv = tiny.get_submodule(first)
    assert maps.shape[0] == conv.out_channels and maps.ndim == 3
    assert maps.min() >= 0 and maps.max() <= 1
    filters = first_layer_filters(tiny)
    assert filters.shape == (conv.out_channels, *conv.kernel_size, 3)
    assert filters.min() >= 0 and filters.max() <= 1
    with pytest.raises(ValueError, match="does not output feature maps"):
        feature_maps(tiny, payload(), photo, "classifier.6")


def test_overlay_and_colormap(photo):
    heat = np.zeros((48, 64), dtype=np.float32)
    heat[:, 32:] = 1.0
    out = overlay(photo, heat, alpha=0.5)
    assert out.mode == "RGB" and out.size == photo.size
    assert overlay(photo, heat, alpha=0.0).tobytes() == photo.tobytes()
    assert np.array_equal(np.asarray(overlay(photo, heat, alpha=1.0))[0, 40], colorize(np.float32(1.0)))
    small = overlay(photo, np.ones((6, 8), dtype=np.float32), alpha=1.0)  # any heat size is resized
    assert small.size == photo.size
    assert COLORMAP.shape == (256, 3)
    assert tuple(colorize(np.array([0.0, 1.0]))[0]) == (0, 0, 128)


def test_preprocess_is_what_gradcam_sees(tiny, photo):
    x = preprocess(photo, payload())
    assert x.shape == (1, 3, 32, 32)


def _reference(model, pay, image, target=None):
    """The slow path: a prediction pass, then Captum's LayerGradCam (its own forward and backward)."""
    import torch.nn.functional as F
    from captum.attr import LayerGradCam

    from cnnviz.explain import _normalise, _to_image_geometry
    from cnnviz.predict import predict

    top = predict(model, pay, image, topk=len(pay["classes"]))
    x = preprocess(image, pay)
    _, module = gradcam_layer(model)
    with torch.no_grad():
        cls = int(model(x).argmax()) if target is None else target
    with torch.enable_grad():
        cam = LayerGradCam(model, module).attribute(x.requires_grad_(True), target=cls, relu_attributions=True)
    cam = F.interpolate(cam.detach().float(), size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    return top, _to_image_geometry(_normalise(cam.numpy()), image, pay)


@pytest.mark.parametrize("arch", ["alexnet_cifar", "resnet18"])
@pytest.mark.parametrize("target", [None, 1])
def test_one_pass_equals_captum(arch, target, photo):
    torch.manual_seed(0)
    model = get_model(arch, num_classes=3).eval()
    pay = payload(32 if arch == "alexnet_cifar" else 64)
    top, heat = _reference(model, pay, photo, target)
    found = explain_image(model, pay, photo, target=target)
    assert [name for name, _ in found.ranking] == [name for name, _ in top]
    np.testing.assert_allclose([p for _, p in found.ranking], [p for _, p in top], atol=1e-5)
    np.testing.assert_allclose(found.heat, heat, atol=1e-5)
    assert found.heat.max() > 0 or found.empty


def test_one_forward_and_one_backward(tiny, photo):
    calls = []
    hook = tiny.register_forward_hook(lambda m, i, o: calls.append(1))
    try:
        found = explain_image(tiny, payload(), photo)
    finally:
        hook.remove()
    assert len(calls) == 1 and found.target == tiny(preprocess(photo, payload())).argmax().item()


def test_answers_are_cached_by_model_picture_and_class(tiny, photo, monkeypatch):
    import cnnviz.explain as explain

    passes = []
    real = explain.explain_image
    monkeypatch.setattr(explain, "explain_image", lambda *a, **k: passes.append(1) or real(*a, **k))
    cache = LRU(maxsize=2)
    first = answer(label="m", model=tiny, payload=payload(), image=photo, topk=3, cache=cache, key=("m", "pic"))
    again = answer(label="m", model=tiny, payload=payload(), image=photo, topk=1, cache=cache, key=("m", "pic"))
    assert len(passes) == 1 and again.top == first.top[:1] and again.overlay is first.overlay
    answer(label="m", model=tiny, payload=payload(), image=photo, topk=1, target=2, cache=cache, key=("m", "pic"))
    answer(label="m", model=tiny, payload=payload(), image=photo, topk=1, cache=cache, key=("m", "other"))
    assert len(passes) == 3 and len(cache) == 2  # bounded: the oldest went


def test_an_empty_heat_map_gets_a_note(photo):
    model = get_model("alexnet_cifar", num_classes=3).eval()
    for p in model.parameters():
        torch.nn.init.zeros_(p)  # every gradient at the layer is 0: nothing to show
    got = answer(label="zero", model=model, payload=payload(), image=photo, topk=2)
    assert got.error is None and "no positive gradient" in got.note
    assert explain_image(model, payload(), photo).empty
