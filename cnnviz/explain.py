"""What a network looks at: Grad-CAM and saliency (Captum), feature maps and first-layer filters.

Heat maps come back as float arrays in [0, 1] the size of the original image:
the model only sees the centre crop (see ``cnnviz.predict.crop_box``), so the
strips outside it stay 0. ``overlay`` draws a heat map over the picture with a
small built-in colour map (no matplotlib needed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import LayerGradCam, Saliency
from PIL import Image
from torch import nn

from cnnviz.data.images import ImageLoadError, load_image
from cnnviz.models import get_spec
from cnnviz.predict import MODEL_LOCK, crop_box, model_device, predict, preprocess

# The "jet" colour map as anchors (dark blue -> blue -> cyan -> yellow -> red -> dark red),
# interpolated to 256 entries: familiar from Grad-CAM papers, and easy on the eye for heat.
_JET_ANCHORS = np.array([
    (0.0, 0.0, 0.5), (0.0, 0.0, 1.0), (0.0, 0.5, 1.0), (0.0, 1.0, 1.0), (0.5, 1.0, 0.5),
    (1.0, 1.0, 0.0), (1.0, 0.5, 0.0), (1.0, 0.0, 0.0), (0.5, 0.0, 0.0),
])
COLORMAP = np.stack([np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(_JET_ANCHORS)), _JET_ANCHORS[:, c])
                     for c in range(3)], axis=1)  # (256, 3) floats in [0, 1]


def colorize(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] to RGB uint8 through ``COLORMAP``; shape (..., 3)."""
    index = np.clip(np.nan_to_num(values) * 255.0, 0, 255).round().astype(np.int64)
    return (COLORMAP[index] * 255.0).round().astype(np.uint8)


def overlay(image: Image.Image, heat: np.ndarray, alpha: float = 0.5) -> Image.Image:
    """``image`` with ``heat`` (values in [0, 1], any size) drawn over it in colour; ``alpha`` is the heat's weight."""
    image = image.convert("RGB")
    heat = np.asarray(heat, dtype=np.float32)
    if heat.shape != (image.height, image.width):
        heat = np.asarray(Image.fromarray(heat, mode="F").resize(image.size, Image.BILINEAR))
    colours = colorize(heat).astype(np.float32)
    blended = (1.0 - alpha) * np.asarray(image, dtype=np.float32) + alpha * colours
    return Image.fromarray(np.clip(blended, 0, 255).round().astype(np.uint8))


# -- choosing layers -------------------------------------------------------------------------------


def resolve_layer(model, layer) -> tuple[str, Any]:
    """``(name, module)`` for ``layer``: a module, a dotted module path, or a probe point of the model's spec."""
    if isinstance(layer, nn.Module):
        for name, module in model.named_modules():
            if module is layer:
                return name, module
        raise ValueError("that layer is not part of this model")
    arch = getattr(model, "cnnviz_arch", None)
    if arch is not None:
        points = get_spec(arch).probe_points
        if layer in points:
            return points[layer], model.get_submodule(points[layer])
    try:
        return layer, model.get_submodule(layer)
    except AttributeError:
        raise ValueError(f"this model has no layer {layer!r}") from None


def conv_layers(model) -> list[str]:
    """Dotted names of every ``nn.Conv2d`` in the model, in definition order."""
    return [name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]


def gradcam_layer(model) -> tuple[str, nn.Module]:
    """The layer Grad-CAM reads: the architecture spec's ``cam_layer`` for the model's options.

    That is the last feature map at the last convolution's size: ``layer4`` for ResNets
    (after the residual addition), the ReLU after the last convolution for AlexNet and VGG.
    """
    arch = getattr(model, "cnnviz_arch", None)
    if arch is None:
        raise ValueError("this model was not built by cnnviz.models.get_model, so its Grad-CAM layer is unknown; "
                         "pass layer=")
    spec = get_spec(arch)
    name = spec.cam_layer_for(getattr(model, "cnnviz_options", None) or spec.defaults())
    if name is None:
        raise ValueError(f"{spec.name} has no convolution layer, so no Grad-CAM; use the saliency map instead")
    return name, model.get_submodule(name)


# -- attributions --------------------------------------------------------------------------------------


def _target(model, x, target) -> int:
    if target is not None:
        return int(target)
    with torch.no_grad():
        logits = model(x)
    return 0 if logits.shape[-1] == 1 else int(logits.argmax(dim=-1)[0])


def _to_image_geometry(heat_crop: np.ndarray, image: Image.Image, payload: dict[str, Any]) -> np.ndarray:
    """Place a heat map of the model's view onto the whole image (zeros where the crop cut)."""
    box = crop_box(image.size, payload)
    size = (max(1, box[2] - box[0]), max(1, box[3] - box[1]))
    patch = np.asarray(Image.fromarray(heat_crop.astype(np.float32), mode="F").resize(size, Image.BILINEAR))
    full = np.zeros((image.height, image.width), dtype=np.float32)
    left, top = max(0, box[0]), max(0, box[1])
    full[top:top + size[1], left:left + size[0]] = patch[: image.height - top, : image.width - left]
    return np.clip(full, 0.0, 1.0)


def _normalise(values: np.ndarray, *, percentile: float = 100.0) -> np.ndarray:
    values = np.nan_to_num(values.astype(np.float32))
    values = values - min(0.0, float(values.min()))
    top = float(np.percentile(values, percentile)) if values.size else 0.0
    return np.clip(values / top, 0.0, 1.0) if top > 0 else np.zeros_like(values)


def gradcam(model, payload: dict[str, Any], image: Image.Image, *, target: int | None = None, layer=None) -> np.ndarray:
    """Grad-CAM (Captum ``LayerGradCam``) for class ``target`` (default: the predicted class).

    Returns an (H, W) float array in [0, 1] matching ``image``. ``layer`` defaults to
    ``gradcam_layer``'s choice; a module, a dotted path or a probe point name also work.
    """
    with MODEL_LOCK:
        x = preprocess(image, payload).to(model_device(model))
        _, module = resolve_layer(model, layer) if layer is not None else gradcam_layer(model)
        cls = _target(model, x, target)
        with torch.enable_grad():
            x.requires_grad_(True)  # frozen backbones: keep the graph alive up to the layer
            cam = LayerGradCam(model, module).attribute(x, target=cls, relu_attributions=True)
        cam = cam.detach().float()
        if cam.dim() == 4:
            cam = cam.sum(dim=1, keepdim=True)
        cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    return _to_image_geometry(_normalise(cam.cpu().numpy()), image, payload)


def saliency(model, payload: dict[str, Any], image: Image.Image, *, target: int | None = None) -> np.ndarray:
    """Vanilla gradient saliency (Captum ``Saliency``): |d score / d pixel|, max over colour, in [0, 1]."""
    with MODEL_LOCK:
        x = preprocess(image, payload).to(model_device(model))
        cls = _target(model, x, target)
        with torch.enable_grad():
            grads = Saliency(model).attribute(x.requires_grad_(True), target=cls, abs=True)
        heat = grads.detach().float()[0].amax(dim=0).cpu().numpy()
    # Gradients are spiky: scale to the 99th percentile so more than a few pixels show.
    return _to_image_geometry(_normalise(heat, percentile=99.0), image, payload)


def feature_maps(model, payload: dict[str, Any], image: Image.Image, layer) -> np.ndarray:
    """The activations of ``layer`` for ``image`` as (C, h, w), each channel scaled to [0, 1] for display."""
    with MODEL_LOCK:
        _, module = resolve_layer(model, layer)
        x = preprocess(image, payload).to(model_device(model))
        captured = []
        hook = module.register_forward_hook(lambda m, i, out: captured.append(out.detach()))
        try:
            with torch.no_grad():
                model(x)
        finally:
            hook.remove()
    if not captured or captured[0].dim() != 4:
        shape = tuple(captured[0].shape) if captured else None
        raise ValueError(f"layer {layer!r} does not output feature maps (output shape {shape})")
    maps = captured[0][0].float().cpu().numpy()
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    return np.where(span > 0, (maps - low) / np.where(span > 0, span, 1), 0.0).astype(np.float32)


def first_layer_filters(model) -> np.ndarray:
    """The first convolution's kernels as RGB tiles (N, kh, kw, 3), each scaled to [0, 1] (AlexNet paper, fig. 3)."""
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise ValueError(f"{getattr(model, 'cnnviz_arch', 'this model')} has no convolution layer")
    weights = conv.weight.detach().float().cpu().numpy()  # (N, C, kh, kw)
    if weights.shape[1] != 3:  # not an RGB input: show the mean over input channels as grey
        weights = np.repeat(weights.mean(axis=1, keepdims=True), 3, axis=1)
    tiles = weights.transpose(0, 2, 3, 1)
    low = tiles.min(axis=(1, 2, 3), keepdims=True)
    span = tiles.max(axis=(1, 2, 3), keepdims=True) - low
    return np.where(span > 0, (tiles - low) / np.where(span > 0, span, 1), 0.5).astype(np.float32)


# -- what several models say about several pictures (the Predict page) ----------------------------

MAX_SIDE = 1280  # px: pictures are shrunk to this first (the models see 224 px at most; the screen less)


@dataclass
class ModelAnswer:
    """What one model says about one picture: top-k, the Grad-CAM overlay, or why it failed."""

    label: str
    top: list[tuple[str, float]] = field(default_factory=list)
    overlay: Any = None  # PIL image
    error: str | None = None


def error_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type when it has none), for a one-line notice."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def answer(*, label: str, model, payload: dict, image: Image.Image, topk: int) -> ModelAnswer:
    """Top-k classes and a Grad-CAM overlay of ``image`` for one model (errors become ``error``, not exceptions)."""
    try:
        top = predict(model, payload, image, topk=topk)
        heat = gradcam(model, payload, image)
        return ModelAnswer(label, top=top, overlay=overlay(image, heat))
    except Exception as exc:  # one model failing (e.g. a too-small input) must not hide the others
        return ModelAnswer(label, error=f"{label} could not predict: {error_line(exc)}")


def display_copy(picture: Image.Image, max_side: int = MAX_SIDE) -> Image.Image:
    """A copy no bigger than the model or the screen needs (a 12 MP photo would slow Grad-CAM and the page)."""
    picture = picture.copy()
    picture.thumbnail((max_side, max_side))
    return picture


def analyse_images(*, images: Sequence[tuple[str, bytes]], models: Sequence[tuple[str, Any]],
                   topk: int) -> list[tuple[str, Image.Image | None, list[ModelAnswer] | str]]:
    """For each ``(name, bytes)``: ``(name, picture, answers)``, or ``(name, None, warning)`` for an unusable file.

    ``models`` are ``(label, loaded)`` pairs, ``loaded`` being ``(model, payload)`` or the
    one-line reason the model could not be loaded (shown as that model's answer).
    """
    results = []
    for name, data in images:
        try:
            picture = display_copy(load_image(data, name=name))
        except ImageLoadError as exc:
            results.append((name, None, str(exc)))
            continue
        answers = [ModelAnswer(label, error=loaded) if isinstance(loaded, str)
                   else answer(label=label, model=loaded[0], payload=loaded[1], image=picture, topk=topk)
                   for label, loaded in models]
        results.append((name, picture, answers))
    return results
