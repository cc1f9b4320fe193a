"""``shapes``: a generated dataset of coloured shapes and patterns, always available offline.

Every image is drawn from a handful of random numbers (position, scale,
rotation, stretch, colours, background texture, noise level) with signed
distance functions evaluated on a pixel grid, so a whole split is a few
vectorised tensor operations. The random numbers do not depend on the image
size: the 32 px and the 64 px versions of one seed show the same pictures.
Edges are soft over one pixel, which anti-aliases them at any size.
"""

from __future__ import annotations

import math

import torch

SHAPE_CLASSES = (
    "circle", "square", "triangle", "star", "cross",
    "ring", "stripes-h", "stripes-v", "checker", "dots",
)
SPLIT_SIZES = {"train": 300, "val": 100, "test": 100}  # images per class
SPLIT_SEEDS = {"train": 1001, "val": 2002, "test": 3003}  # fixed, so every run sees the same pictures
GENERATOR_VERSION = 1  # bump when the drawing changes: it keys the decoded cache
_PERIOD = 0.6  # pattern period in shape units: >= 4 px per period at 32 px, so stripes survive small images
_PIXELS_PER_STEP = 1 << 24  # pixels per noise draw: fixed, because the pictures depend on it
_PIXELS_PER_DRAW = 1 << 20  # pixels rendered per vectorised step: ~4 MB per float temporary


def _box(u, v, a, b):
    return torch.maximum(u.abs() - a, v.abs() - b)


def _polar(u, v):
    return torch.sqrt(u * u + v * v), torch.atan2(v, u)


def _disc(u, v, radius=0.9):
    return _polar(u, v)[0] - radius


def _pattern(u, v, phase):
    """Coordinates within one pattern cell, in [-0.5, 0.5)."""
    a = torch.remainder(u / _PERIOD + phase[:, 0, None, None], 1.0) - 0.5
    b = torch.remainder(v / _PERIOD + phase[:, 1, None, None], 1.0) - 0.5
    return a, b


def _sdf(name: str, u, v, phase):
    """Signed distance (negative inside) of class ``name`` in shape units (the shape fits the unit disc)."""
    if name == "circle":
        return _disc(u, v)
    if name == "square":
        return _box(u, v, 0.72, 0.72)
    if name == "triangle":  # equilateral, circumradius 1: three half-planes at inradius 0.5
        c = math.cos(math.pi / 6)
        return torch.stack([-v, c * u + 0.5 * v, -c * u + 0.5 * v]).amax(0) - 0.5
    if name == "star":  # five points, radius swinging linearly in angle between 0.42 and 1
        r, phi = _polar(u, v)
        tri = 1 - (torch.remainder(phi * 5 / (2 * math.pi) + 0.25, 1.0) * 2 - 1).abs()
        return (r - (0.42 + 0.58 * tri)) * 0.6
    if name == "cross":
        return torch.minimum(_box(u, v, 0.9, 0.26), _box(u, v, 0.26, 0.9))
    if name == "ring":
        return (_polar(u, v)[0] - 0.68).abs() - 0.22
    a, b = _pattern(u, v, phase)
    if name == "stripes-h":
        inside = (b.abs() - 0.25) * _PERIOD
    elif name == "stripes-v":
        inside = (a.abs() - 0.25) * _PERIOD
    elif name == "checker":
        inside = -torch.sign(a * b) * torch.minimum(a.abs(), b.abs()) * _PERIOD
    elif name == "dots":
        inside = torch.sqrt(a * a + b * b) * _PERIOD - 0.16
    else:
        raise ValueError(f"unknown shape {name!r}")
    return torch.maximum(_disc(u, v), inside)


def _hsv_to_rgb(h, s, v):
    """Vectorised HSV -> RGB for (N,) tensors in [0, 1]; returns (N, 3)."""
    k = torch.tensor([5.0, 3.0, 1.0])
    t = torch.remainder(k[None, :] + h[:, None] * 6, 6)
    return v[:, None] - v[:, None] * s[:, None] * torch.clamp(torch.minimum(t, 4 - t), 0, 1)


def _draw_params(labels: torch.Tensor, g: torch.Generator) -> dict[str, torch.Tensor]:
    """Every random number of every picture (independent of the image size)."""
    n = labels.shape[0]
    rand = lambda *shape: torch.rand(*shape, generator=g)  # noqa: E731
    striped = torch.tensor([name.startswith("stripes") for name in SHAPE_CLASSES])[labels]
    angle = torch.where(striped, (rand(n) - 0.5) * 0.7, rand(n) * 2 * math.pi)  # stripes keep their direction (+-20 deg)
    bright_fg = rand(n) < 0.5  # light shape on dark ground or the reverse, so brightness is no cue
    v_hi, v_lo = 0.6 + 0.4 * rand(n), 0.1 + 0.35 * rand(n)
    fg = _hsv_to_rgb(rand(n), 0.35 + 0.65 * rand(n), torch.where(bright_fg, v_hi, v_lo))
    bg_v = torch.where(bright_fg, v_lo, v_hi)
    bg1 = _hsv_to_rgb(rand(n), 0.15 + 0.7 * rand(n), bg_v)
    bg2 = _hsv_to_rgb(rand(n), 0.15 + 0.7 * rand(n), (bg_v + (rand(n) - 0.5) * 0.3).clamp(0, 1))
    return {
        "center": (rand(n, 2) - 0.5) * 0.7,
        "radius": 0.38 + 0.27 * rand(n),
        "stretch": 0.8 + 0.4 * rand(n, 2),
        "angle": angle,
        "phase": rand(n, 2),
        "fg": fg,
        "bg1": bg1,
        "bg2": bg2,
        "texture": rand(n, 1, 6, 6),
        "noise": 0.02 + 0.08 * rand(n),
        "noise_seed": torch.randint(0, 2**62, (1,), generator=g),
    }


def _render(labels: torch.Tensor, p: dict[str, torch.Tensor], size: int, noise: torch.Tensor) -> torch.Tensor:
    """Draw the pictures described by ``p`` at ``size`` px, plus ``noise``; returns uint8 (N, 3, size, size)."""
    n = labels.shape[0]
    coords = (torch.arange(size, dtype=torch.float32) * 2 + 1) / size - 1  # pixel centres in [-1, 1]
    y, x = coords[None, :, None], coords[None, None, :]
    dx, dy = x - p["center"][:, 0, None, None], y - p["center"][:, 1, None, None]
    cos, sin = torch.cos(p["angle"])[:, None, None], torch.sin(p["angle"])[:, None, None]
    scale = p["radius"][:, None, None]
    u = (dx * cos + dy * sin) / (scale * p["stretch"][:, 0, None, None])
    v = (-dx * sin + dy * cos) / (scale * p["stretch"][:, 1, None, None])
    sdf = torch.empty(n, size, size)
    for k in torch.unique(labels).tolist():
        rows = (labels == k).nonzero().flatten()
        sdf[rows] = _sdf(SHAPE_CLASSES[k], u[rows], v[rows], p["phase"][rows])
    pixel = (2.0 / size) / scale  # one pixel in shape units: the width of the soft edge
    alpha = torch.clamp(0.5 - sdf / pixel, 0, 1)[:, None]
    texture = torch.nn.functional.interpolate(p["texture"], size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
    ground = p["bg1"][:, :, None, None] * (1 - texture) + p["bg2"][:, :, None, None] * texture
    image = ground * (1 - alpha) + p["fg"][:, :, None, None] * alpha
    image = image + noise * p["noise"][:, None, None, None]
    return (image.clamp(0, 1) * 255).round_().to(torch.uint8)


def generate_shapes(n_per_class: int, *, size: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_per_class`` pictures of each shape class at ``size`` px, deterministic by ``seed``.

    Returns uint8 images (N, 3, size, size) and int64 labels (N,), classes
    interleaved (0, 1, ..., 9, 0, 1, ...) so any prefix is balanced.
    """
    if size < 8:
        raise ValueError(f"shapes needs at least 8 px images; got {size}")
    labels = torch.arange(n_per_class * len(SHAPE_CLASSES)) % len(SHAPE_CLASSES)
    params = _draw_params(labels, torch.Generator().manual_seed(seed))  # drawn once: the same pictures at every size
    chunk = max(1, _PIXELS_PER_STEP // (size * size))  # few, large vectorised steps: per-op overhead dominates small ones
    images = torch.empty(labels.shape[0], 3, size, size, dtype=torch.uint8)
    # The noise is drawn per chunk (so the pictures stay what they were), but drawn in smaller
    # steps: a whole chunk's temporaries peaked at ~1.4 GB, too much beside a class's workers.
    step = max(1, _PIXELS_PER_DRAW // (size * size))
    for start in range(0, labels.shape[0], chunk):
        stop = min(start + chunk, labels.shape[0])
        noise = torch.randn(stop - start, 3, size, size,
                            generator=torch.Generator().manual_seed(int(params["noise_seed"]) + start))
        for first in range(start, stop, step):
            rows = slice(first, min(first + step, stop))
            part = {k: v[rows] for k, v in params.items() if k != "noise_seed"}
            images[rows] = _render(labels[rows], part, size, noise[first - start:rows.stop - start])
    return images, labels
