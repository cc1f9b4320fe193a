"""Top-k prediction on any model, with its input prepared exactly as training prepared it.

Pictures come from ``cnnviz.data.images.load_image``, the one image loader of the app
and the command line; ImageNet-pretrained models from the torch cache are here too.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

# Explanations attach Captum hooks to a model while they run; models are cached and shared
# between sessions, so predictions and explanations take turns on them (cnnviz.explain uses it too).
MODEL_LOCK = threading.RLock()


# -- prediction ------------------------------------------------------------------------------


def crop_box(size: tuple[int, int], payload: dict[str, Any]) -> tuple[int, int, int, int]:
    """The region of an image of ``size`` (w, h) that the model sees: the centred square that survives
    resizing the shorter side to ``resize_size`` and centre-cropping ``image_size``."""
    width, height = size
    image_size = int(payload["image_size"])
    resize = int(payload.get("resize_size") or image_size)
    side = min(width, height) * image_size / resize
    left, top = (width - side) / 2, (height - side) / 2
    return round(left), round(top), round(left + side), round(top + side)


def preprocess(image: Image.Image, payload: dict[str, Any]):
    """The model input for ``image``, prepared exactly as training prepared its pictures.

    Shorter side resized and centre-cropped by ``cnnviz.data``'s own ``fit_square`` (to
    ``resize_size`` first for ImageNet weights, e.g. 256 then a 224 crop), then normalised with
    the payload's mean and std. Returns a float tensor ``(1, 3, S, S)``, ``S = payload["image_size"]``.
    """
    import torch

    from cnnviz.data import normalize
    from cnnviz.data.images import fit_square

    size = int(payload["image_size"])
    resize = int(payload.get("resize_size") or size)
    image = image.convert("RGB")
    factor = min(image.size) // (2 * resize)
    if factor >= 2:  # a 40-megapixel photo: shrink cheaply first, so the antialiased resize stays small
        image = image.reduce(factor)
    pixels = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)
    square = fit_square(pixels, resize)
    if resize != size:
        offset = (resize - size) // 2
        square = square[:, offset:offset + size, offset:offset + size]
    return normalize(square[None], payload.get("mean") or (0.5, 0.5, 0.5), payload.get("std") or (0.5, 0.5, 0.5))


def model_device(model):
    """The device the model's weights are on (CPU for a model without parameters)."""
    import torch

    return next((p.device for p in model.parameters()), torch.device("cpu"))


def probabilities(logits, num_classes: int):
    """Class probabilities from logits; a single BCE logit becomes the two-class pair (1-p, p)."""
    import torch

    if logits.shape[-1] == 1 and num_classes == 2:
        p = torch.sigmoid(logits)
        return torch.cat([1 - p, p], dim=-1)
    return torch.softmax(logits.float(), dim=-1)


def predict(model, payload: dict[str, Any], image: Image.Image, *, topk: int = 5) -> list[tuple[str, float]]:
    """The ``topk`` most likely classes of ``image`` as ``(class name, probability)``, most likely first."""
    import torch

    classes = list(payload.get("classes") or [])
    x = preprocess(image, payload).to(model_device(model))
    with MODEL_LOCK, torch.inference_mode():
        probs = probabilities(model(x), len(classes))[0].float().cpu()
    names = classes if len(classes) == probs.numel() else [str(i) for i in range(probs.numel())]
    k = max(1, min(int(topk), probs.numel()))
    values, index = probs.topk(k)
    return [(names[i], float(v)) for v, i in zip(values.tolist(), index.tolist())]


# -- ImageNet-pretrained models (when their weights are in the torch cache) -------------------


def _weights(arch: str):
    """``(weights name, options they need)`` of ``arch``'s default ImageNet weights (ValueError if none)."""
    from cnnviz.models import get_spec, resolve_options

    name, options = get_spec(arch).weights_for(resolve_options(arch))
    if not name:
        raise ValueError(f"{arch} has no ImageNet weights")
    return name, dict(options)


def imagenet_weights_file(arch: str) -> Path:
    """Where torchvision keeps ``arch``'s ImageNet weights (the file may not be there)."""
    from cnnviz.models import hub_checkpoints_dir, weights_file_name

    return hub_checkpoints_dir() / weights_file_name(_weights(arch)[0])


def pretrained_available() -> list[str]:
    """Architectures whose ImageNet weights file is already in the torch cache (no download)."""
    from cnnviz.models import get_spec, list_models

    return [arch for arch in list_models() if get_spec(arch).weights and imagenet_weights_file(arch).is_file()]


def pretrained_weights() -> list[tuple[str, float]]:
    """``(arch, weights file mtime)`` for each architecture whose ImageNet weights are in the torch cache."""
    found = []
    for arch in pretrained_available():
        try:
            found.append((arch, imagenet_weights_file(arch).stat().st_mtime))
        except OSError:  # removed between the two looks
            continue
    return found


def imagenet_payload(arch: str) -> dict[str, Any]:
    """A checkpoint-like payload for ``arch``'s ImageNet weights: classes and transforms from torchvision's meta."""
    from torchvision.models import get_weight

    name, options = _weights(arch)
    weights = get_weight(name)
    transforms = weights.transforms()
    crop = transforms.crop_size[0] if isinstance(transforms.crop_size, (list, tuple)) else transforms.crop_size
    resize = transforms.resize_size[0] if isinstance(transforms.resize_size, (list, tuple)) else transforms.resize_size
    return {
        "format": "imagenet",
        "arch": arch,
        "options": options,
        "num_classes": len(weights.meta["categories"]),
        "classes": list(weights.meta["categories"]),
        "mean": list(transforms.mean),
        "std": list(transforms.std),
        "image_size": int(crop),
        "resize_size": int(resize),
        "mode": "imagenet",
        "weights": name,
    }


def load_pretrained(arch: str):
    """``(model.eval(), payload)`` for ``arch`` with ImageNet weights from the cache (WeightsUnavailable if absent)."""
    from cnnviz.models import WeightsUnavailable, get_model

    payload = imagenet_payload(arch)
    path = imagenet_weights_file(arch)
    if not path.is_file():  # never start a large download from a prediction page
        raise WeightsUnavailable(f"ImageNet weights for {arch} are not in the torch cache: place {path.name} "
                                 f"in {path.parent} (or run: python -m cnnviz prefetch --weights {arch})")
    model = get_model(arch, num_classes=payload["num_classes"], options=payload["options"], init="imagenet")
    return model.eval(), payload
