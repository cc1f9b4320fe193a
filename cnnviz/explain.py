"""What a network looks at: Grad-CAM (one forward, one backward), saliency (Captum), feature maps, filters.

Heat maps come back as float arrays in [0, 1] the size of the original image:
the model only sees the centre crop (see ``cnnviz.predict.crop_box``), so the
strips outside it stay 0. ``overlay`` draws a heat map over the picture with a
small built-in colour map (no matplotlib needed).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import Saliency
from PIL import Image
from torch import nn

from cnnviz.data.images import ImageLoadError, load_image
from cnnviz.models import get_spec
from cnnviz.predict import MODEL_LOCK, crop_box, model_device, preprocess, probabilities

# The "jet" colour map as anchors (dark blue -> blue -> cyan -> yellow -> red -> dark red),
# interpolated to 256 entries: familiar from Grad-CAM papers, and easy on the eye for heat.
_JET_ANCHORS = np.array([
    (0.0, 0.0, 0.5), (0.0, 0.0, 1.0), (0.0, 0.5, 1.0), (0.0, 1.0, 1.0), (0.5, 1.0, 0.5),
    (1.0, 1.0, 0.0), (1.0, 0.5, 0.0), (1.0, 0.0, 0.0), (0.5, 0.0, 0.0),
])
COLORMAP = np.stack([np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(_JET_ANCHORS)), _JET_ANCHORS[:, c])
                     for c in range(3)], axis=1)  # (256, 3) floats in [0, 1]


_COLORMAP_U8 = (COLORMAP * 255.0).round().astype(np.uint8)  # the same map as a 256-entry palette


def _heat_index(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] as palette indices 0-255 (NaN as 0)."""
    values = np.nan_to_num(np.asarray(values, dtype=np.float32), nan=0.0)
    return np.rint(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)


def colorize(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] to RGB uint8 through ``COLORMAP``; shape (..., 3)."""
    return _COLORMAP_U8[_heat_index(values)]


def overlay(image: Image.Image, heat: np.ndarray, alpha: float = 0.5) -> Image.Image:
    """``image`` with ``heat`` (values in [0, 1], any size) drawn over it in colour; ``alpha`` is the heat's weight.

    Colouring and blending run in Pillow's C code (a palette image and ``Image.blend``): a 1280 px
    picture takes a few milliseconds, where float arithmetic in numpy took about 60.
    """
    image = image.convert("RGB")
    heat = np.asarray(heat, dtype=np.float32)
    if heat.shape != (image.height, image.width):
        heat = np.asarray(Image.fromarray(heat, mode="F").resize(image.size, Image.BILINEAR))
    colours = Image.fromarray(_heat_index(heat), mode="L").convert("P")
    colours.putpalette(_COLORMAP_U8.tobytes())
    return Image.blend(image, colours.convert("RGB"), float(alpha))


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


@dataclass(frozen=True)
class Explanation:
    """What one forward and one backward pass tell about a picture: every class ranked, and its Grad-CAM."""

    ranking: list[tuple[str, float]]  # every class as (name, probability), most likely first
    target: int  # the class index the heat map explains
    heat: np.ndarray  # (H, W) in [0, 1] over the whole picture; 0 outside the centre crop

    @property
    def empty(self) -> bool:
        """True when the target class had no positive gradient at the layer (an all-zero map)."""
        return not bool(self.heat.any())


def _cam_pass(model, x, module, target: int | None):
    """One forward that keeps ``module``'s output, one backward of the target's score.

    Returns ``(logits, target, cam)`` with ``cam`` the ReLU of the gradient-weighted sum of the
    layer's channels at the layer's own size (Selvaraju et al. 2017, eq. 1-2), as Captum's
    ``LayerGradCam`` computes it, without its extra passes.
    """
    kept = []
    hook = module.register_forward_hook(lambda m, i, out: kept.append(out))
    try:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)  # frozen weights: keep the graph alive up to the layer
            logits = model(x)
            cls = int(target) if target is not None else (0 if logits.shape[-1] == 1 else int(logits[0].argmax()))
            activation = kept[-1]
            (grads,) = torch.autograd.grad(logits[0, cls], activation)
    finally:
        hook.remove()
    weights = grads.mean(dim=tuple(range(2, grads.dim())), keepdim=True)
    cam = torch.relu((weights * activation).sum(dim=1, keepdim=True)).detach()
    return logits.detach(), cls, cam


def explain_image(model, payload: dict[str, Any], image: Image.Image, *, target: int | None = None,
                  layer=None) -> Explanation:
    """Every class's probability and the Grad-CAM of ``target`` (default: the top class) in one forward and one backward.

    ``layer`` defaults to ``gradcam_layer``'s choice; a module, a dotted path or a probe point name also work.
    """
    classes = list(payload.get("classes") or [])
    with MODEL_LOCK:
        x = preprocess(image, payload).to(model_device(model))
        _, module = resolve_layer(model, layer) if layer is not None else gradcam_layer(model)
        logits, cls, cam = _cam_pass(model, x, module, target)
        probs = probabilities(logits, len(classes))[0].float().cpu()
        cam = cam.float()
        if cam.dim() == 4:
            cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
        heat_crop = cam.cpu().numpy()
    names = classes if len(classes) == probs.numel() else [str(i) for i in range(probs.numel())]
    values, index = probs.sort(descending=True)
    ranking = [(names[i], float(v)) for v, i in zip(values.tolist(), index.tolist())]
    return Explanation(ranking, cls, _to_image_geometry(_normalise(heat_crop), image, payload))


def gradcam(model, payload: dict[str, Any], image: Image.Image, *, target: int | None = None, layer=None) -> np.ndarray:
    """Grad-CAM for class ``target`` (default: the predicted class): an (H, W) float array in [0, 1] matching ``image``.

    ``layer`` defaults to ``gradcam_layer``'s choice; a module, a dotted path or a probe point name also work.
    """
    return explain_image(model, payload, image, target=target, layer=layer).heat


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

# px: pictures are decoded and shrunk to this first: the models see 224 px at most, the page shows
# each picture 300 px wide (twice that on a high-density screen), and a 12 MP photo decodes at 1/4 scale.
MAX_SIDE = 768
EMPTY_HEAT_NOTE = "the chosen class had no positive gradient at this layer; try another class or model"


class LRU:
    """A small thread-safe least-recently-used cache (answers are shared by every session of the app)."""

    def __init__(self, maxsize: int = 128):
        self.maxsize = int(maxsize)
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The value kept for ``key``, or ``compute()``'s, kept for next time (the oldest goes past ``maxsize``)."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = compute()  # outside the lock: models take turns under MODEL_LOCK anyway
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class ModelAnswer:
    """What one model says about one picture: top-k, the Grad-CAM overlay, or why it failed."""

    label: str
    top: list[tuple[str, float]] = field(default_factory=list)
    overlay: Any = None  # PIL image
    error: str | None = None
    note: str | None = None  # e.g. why the heat map is empty


@dataclass(frozen=True)
class _Explained:
    ranking: list[tuple[str, float]]
    overlay: Any
    empty: bool


def error_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type when it has none), for a one-line notice."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def draw_crop_box(image: Image.Image, box: tuple[int, int, int, int], *, dash: int = 10) -> Image.Image:
    """``image`` with a dashed white-and-black rectangle around ``box`` (what the model saw)."""
    from PIL import ImageDraw

    image = image.copy()
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = box[0], box[1], box[2] - 1, box[3] - 1
    width = max(1, round(min(image.size) / 200))
    edges = [((left, top), (right, top)), ((right, top), (right, bottom)), ((right, bottom), (left, bottom)),
             ((left, bottom), (left, top))]
    for (x0, y0), (x1, y1) in edges:
        length = max(abs(x1 - x0), abs(y1 - y0))
        for start in range(0, max(1, length), 2 * dash):
            end = min(length, start + dash)
            a = (x0 + (x1 - x0) * start / max(length, 1), y0 + (y1 - y0) * start / max(length, 1))
            b = (x0 + (x1 - x0) * end / max(length, 1), y0 + (y1 - y0) * end / max(length, 1))
            draw.line([a, b], fill=(255, 255, 255), width=width + 2)
            draw.line([a, b], fill=(0, 0, 0), width=width)
    return image


def _explained(model, payload: dict, image: Image.Image, target: int | None) -> _Explained:
    found = explain_image(model, payload, image, target=target)
    shown = overlay(image, found.heat)
    box = crop_box(image.size, payload)
    if box != (0, 0, image.width, image.height):  # only where the crop cut something
        shown = draw_crop_box(shown, box)
    return _Explained(found.ranking, shown, found.empty)


def answer(*, label: str, model, payload: dict, image: Image.Image, topk: int, target: int | None = None,
           cache: LRU | None = None, key: Hashable | None = None) -> ModelAnswer:
    """Top-k classes and a Grad-CAM overlay of ``image`` for one model (errors become ``error``, not exceptions).

    With a ``cache`` and a ``key`` naming (model, picture), the one forward and backward pass is
    kept, so another ``topk`` or a rerun costs nothing.
    """
    try:
        if cache is not None and key is not None:
            found = cache.get_or_compute((key, target), lambda: _explained(model, payload, image, target))
        else:
            found = _explained(model, payload, image, target)
    except Exception as exc:  # one model failing (e.g. a too-small input) must not hide the others
        return ModelAnswer(label, error=f"{label} could not predict: {error_line(exc)}")
    k = max(1, min(int(topk), len(found.ranking)))
    return ModelAnswer(label, top=found.ranking[:k], overlay=found.overlay,
                       note=EMPTY_HEAT_NOTE if found.empty else None)


def display_copy(picture: Image.Image, max_side: int = MAX_SIDE) -> Image.Image:
    """A copy no bigger than the model or the screen needs (a 12 MP photo would slow Grad-CAM and the page)."""
    picture = picture.copy()
    picture.thumbnail((max_side, max_side))
    return picture


def picture_digest(data: bytes) -> str:
    """A short content hash naming a picture in caches (the same bytes are the same picture)."""
    return hashlib.blake2b(data, digest_size=12).hexdigest()


def analyse_images(*, images: Sequence[tuple[str, bytes]], models: Sequence[tuple], topk: int,
                   cache: LRU | None = None,
                   pictures: LRU | None = None) -> list[tuple[str, Image.Image | None, list[ModelAnswer] | str]]:
    """For each ``(name, bytes)``: ``(name, picture, answers)``, or ``(name, None, warning)`` for an unusable file.

    ``models`` are ``(label, loaded)`` or ``(label, loaded, key)`` tuples, ``loaded`` being
    ``(model, payload)`` or the one-line reason the model could not be loaded (shown as that
    model's answer); ``key`` names the model in ``cache`` (answers by model, picture and class).
    ``pictures`` keeps decoded pictures by content.
    """
    results = []
    for name, data in images:
        digest = picture_digest(data)
        try:
            decode = lambda: display_copy(load_image(data, name=name, max_side=MAX_SIDE))  # noqa: E731
            picture = pictures.get_or_compute(digest, decode) if pictures is not None else decode()
        except ImageLoadError as exc:
            results.append((name, None, str(exc)))
            continue
        answers = []
        for label, loaded, *rest in models:
            if isinstance(loaded, str):
                answers.append(ModelAnswer(label, error=loaded))
                continue
            key = (rest[0], digest) if rest and rest[0] is not None else None
            answers.append(answer(label=label, model=loaded[0], payload=loaded[1], image=picture, topk=topk,
                                  cache=cache, key=key))
        results.append((name, picture, answers))
    return results
