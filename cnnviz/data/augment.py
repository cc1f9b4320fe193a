"""Batched augmentation and normalisation on uint8 image tensors, on whatever device they live.

Every sample of a batch gets its own crop, flip and colour shift, drawn in one
go: crops that resize become one ``affine_grid``/``grid_sample`` call with a
per-sample matrix (the flip is a negative x scale), the CIFAR pad-and-crop is
an integer gather (exact, no interpolation).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # what torchvision's ImageNet weights expect
IMAGENET_STD = (0.229, 0.224, 0.225)

AUG_PRESETS = {
    "none": "no augmentation: every epoch sees the same pictures",
    "standard": "random resized crop (25-100% of the area, aspect 3:4-4:3) + horizontal flip",
    "cifar": "pad 4 px (at 32 px; scaled with the size), random crop back + horizontal flip",
    "translate": "pad 2 px by reflection (at 32 px; scaled with the size), random crop back + horizontal flip "
                 "(airbench's lighter shift, for short runs)",
    "alexnet": "random crop of 224/256 of the side + horizontal flip + PCA colour noise (Krizhevsky et al. 2012)",
}
STANDARD_SCALE = (0.25, 1.0)  # not torchvision's 0.08: our pictures are already centre-cropped at the training size
ALEXNET_CROP = 224 / 256  # the paper's 224 px crops out of 256 px images
PCA_ALPHA_STD = 0.1  # the paper's sigma for the colour-noise coefficients


def _uniform(n: int, low: float, high: float, generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def _affine_crop(images: torch.Tensor, w: torch.Tensor, h: torch.Tensor, flip: torch.Tensor, generator) -> torch.Tensor:
    """Crop boxes of width ``w`` and height ``h`` (fractions of the side) at random places, resized back; float out."""
    n = images.shape[0]
    cx = (torch.rand(n, generator=generator) * 2 - 1) * (1 - w)  # box centre so that the box stays inside
    cy = (torch.rand(n, generator=generator) * 2 - 1) * (1 - h)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = torch.where(flip, -w, w)
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = h
    theta[:, 1, 2] = cy
    x = images.float()
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _flips(n: int, generator, flip: torch.Tensor | None) -> torch.Tensor:
    """Which of ``n`` pictures are mirrored: ``flip`` where given, else half of them at random."""
    return torch.rand(n, generator=generator) < 0.5 if flip is None else flip.cpu()


def _random_resized_crop(images: torch.Tensor, generator, flip: torch.Tensor | None = None) -> torch.Tensor:
    n = images.shape[0]
    area = _uniform(n, *STANDARD_SCALE, generator)
    log_ratio = _uniform(n, math.log(3 / 4), math.log(4 / 3), generator)
    ratio = torch.exp(log_ratio)
    w = torch.sqrt(area * ratio).clamp(max=1.0)
    h = torch.sqrt(area / ratio).clamp(max=1.0)
    return _affine_crop(images, w, h, _flips(n, generator, flip), generator)


def _pad_crop_flip(images: torch.Tensor, generator, *, pad_at_32: int = 4, mode: str = "constant",
                   flip: torch.Tensor | None = None) -> torch.Tensor:
    """CIFAR recipe: pad (zeros, or ``mode="reflect"``), take a random crop of the original size, flip half (exact
    integer gather). The padding is ``pad_at_32`` pixels at 32 px, scaled with the image side."""
    n, _, height, width = images.shape
    pad = max(1, round(pad_at_32 * height / 32))
    if mode == "constant":
        padded = F.pad(images, (pad, pad, pad, pad))
    else:  # reflection needs a float tensor, and a pad smaller than the side
        pad = max(0, min(pad, height - 1, width - 1))
        padded = F.pad(images.float(), (pad, pad, pad, pad), mode=mode).to(images.dtype)
    dev = images.device
    oy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(dev)
    ox = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(dev)
    flip = _flips(n, generator, flip).to(dev)
    cols = torch.arange(width, device=dev)
    cols = torch.where(flip[:, None], cols.flip(0)[None, :], cols[None, :]) + ox[:, None]
    rows = torch.arange(height, device=dev)[None, :] + oy[:, None]
    batch = torch.arange(n, device=dev)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (N, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()


def pca_colour_noise(images: torch.Tensor, *, generator=None, alpha_std: float = PCA_ALPHA_STD) -> torch.Tensor:
    """AlexNet's colour augmentation on float images in [0, 1]: shift each picture along the RGB principal components.

    The paper takes the eigenvectors p_i and eigenvalues l_i of the 3x3 RGB
    covariance and adds sum_i p_i * a_i * l_i with a_i ~ N(0, 0.1) per image.
    We estimate the covariance from the batch's pixels and scale by sqrt(l_i)
    (the spread along each component, as fb.resnet.torch does) so the shift is
    in pixel units whatever the value range.
    """
    n = images.shape[0]
    pixels = images.detach().transpose(0, 1).reshape(3, -1)
    step = max(1, pixels.shape[1] // 65536)  # a subsample estimates a 3x3 covariance just as well
    cov = torch.cov(pixels[:, ::step].float().cpu().double())
    eigvals, eigvecs = torch.linalg.eigh(cov)
    alpha = torch.randn(n, 3, generator=generator, dtype=torch.float64) * alpha_std
    shift = (alpha * eigvals.clamp(min=0).sqrt()) @ eigvecs.T  # (N, 3)
    return images + shift.to(images.device, images.dtype)[:, :, None, None]


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.round().clamp_(0, 255).to(torch.uint8)


def augment_batch(images: torch.Tensor, preset: str, *, generator: torch.Generator | None = None,
                  flip: torch.Tensor | None = None) -> torch.Tensor:
    """Augment a uint8 batch (N, 3, H, W) with ``preset``; uint8 out, same size and device, fresh randomness per sample.

    ``generator`` (a CPU torch.Generator) makes the draws reproducible. ``flip`` (N booleans) says
    which pictures a flipping preset mirrors, instead of half of them at random.
    """
    if preset not in AUG_PRESETS:
        raise ValueError(f"unknown augmentation {preset!r}; choose one of: {', '.join(AUG_PRESETS)}")
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ValueError(f"augment_batch expects a uint8 (N, 3, H, W) tensor; got {images.dtype} {tuple(images.shape)}")
    if preset == "none" or images.shape[0] == 0:
        return images
    if preset == "cifar":
        return _pad_crop_flip(images, generator, flip=flip)
    if preset == "translate":
        return _pad_crop_flip(images, generator, pad_at_32=2, mode="reflect", flip=flip)
    if preset == "standard":
        return _to_uint8(_random_resized_crop(images, generator, flip))
    n = images.shape[0]
    side = torch.full((n,), ALEXNET_CROP)
    cropped = _affine_crop(images, side, side, _flips(n, generator, flip), generator) / 255
    return _to_uint8(pca_colour_noise(cropped, generator=generator) * 255)


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 (or float in [0, 1]) images -> float32 ``(x / 255 - mean) / std`` per channel, on the same device."""
    x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
    mean_t = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std_t = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - mean_t) / std_t


def resize_batch(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a uint8 batch to ``size`` x ``size`` (bilinear, antialiased when shrinking); uint8 out.

    Lets a trainer keep small native images (CIFAR at 32 px) in memory and
    upsample each batch for an ImageNet-sized model.
    """
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    out = F.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return _to_uint8(out)


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images, in [0, 1] units (for datasets without published statistics)."""
    x = images[:: max(1, images.shape[0] // 2000)].float() / 255  # 2,000 pictures pin the statistics down
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3))
    return tuple(round(v, 4) for v in mean.tolist()), tuple(round(v, 4) for v in std.tolist())
