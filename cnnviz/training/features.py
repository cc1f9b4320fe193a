"""Batches for the trainer, and the frozen-feature cache.

Images arrive decoded (uint8, resized once). Each batch is indexed out of that
tensor, augmented and normalised on the device, and, in ``freeze``/``probe``
mode, passed through the frozen body under ``no_grad``.

Without augmentation the frozen body sees the same pictures every epoch, so its
outputs are computed once (``extract_features``) and the head trains on those:
the same result as running the body every epoch, for a fraction of the work.
They are also kept on disk under ``cache_dir()/features``, keyed by a hash of
the body's weights, its architecture and options, the pictures and the
preprocessing, so a second run with the same backbone and data (another
learning rate, more epochs) starts training at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
from pathlib import Path
from typing import Callable, ContextManager, Sequence

import torch
from torch import nn

MAX_CACHE_FILE_BYTES = 512 * 2**20  # bigger feature sets are recomputed rather than written to disk
MAX_CACHE_FILES = 16  # the oldest feature files beyond this many are deleted
HASH_SAMPLE_BYTES = 64 * 2**20  # at most this much of the pictures is hashed (evenly spread images)


class ImageBatches:
    """Batches of one decoded split: index, resize if needed, augment, normalise, then the frozen body (if any)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *, device: torch.device, mean: Sequence[float],
                 std: Sequence[float], image_size: int, augment: str = "none",
                 generator: torch.Generator | None = None, frozen: nn.Module | None = None,
                 channels_last: bool = False, autocast: Callable[[], ContextManager] = contextlib.nullcontext,
                 alternate_flip: bool = False):
        self.images = _on_device_if_small(images, device)
        self.labels = labels.to(device)
        self.device = device
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1) * 255  # folded into one affine step
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1) * 255
        self.image_size = image_size
        self.augment = augment
        self.generator = generator
        self.frozen = frozen
        self.channels_last = channels_last
        self.autocast = autocast
        # airbench's alternating flip: each picture mirrored at random in epoch 1, then every other epoch
        self.first_flip = (torch.rand(len(labels), generator=generator) < 0.5) if alternate_flip else None
        self.epoch = 1  # the trainer sets it before each epoch

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def get(self, index: torch.Tensor, *, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The prepared inputs and the labels of the images at ``index`` (augmented only when ``train``)."""
        from cnnviz.data import augment_batch
        from cnnviz.data.augment import resize_batch

        x = self.images[index.to(self.images.device)].to(self.device, non_blocking=True)
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = resize_batch(x, self.image_size)
        if train and self.augment != "none":
            flip = None if self.first_flip is None else self.first_flip[index.cpu()] ^ (self.epoch % 2 == 0)
            x = augment_batch(x, self.augment, generator=self.generator, flip=flip)
        x = (x.float() - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.frozen is not None:
            with torch.no_grad(), self.autocast():
                x = self.frozen(x)
            x = x.float()
        return x, self.labels[index.to(self.device)]


class TensorBatches:
    """Batches of precomputed inputs (cached features): indexing only."""

    def __init__(self, inputs: torch.Tensor, labels: torch.Tensor, *, device: torch.device):
        self.inputs = inputs.to(device)
        self.labels = labels.to(device)
        self.device = device

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def get(self, index: torch.Tensor, *, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        index = index.to(self.device)
        return self.inputs[index], self.labels[index]


def _on_device_if_small(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Keep the whole uint8 set on a GPU when it takes under a quarter of its memory (no per-batch copies)."""
    if device.type != "cuda":
        return images
    free, _total = torch.cuda.mem_get_info(device)
    if images.numel() < free // 4:
        return images.to(device)
    return images.pin_memory()


def extract_features(source: ImageBatches, *, batch_size: int, check: Callable[[int, int], None] | None = None
                     ) -> torch.Tensor:
    """The frozen body's outputs for every image of ``source`` (no augmentation), in order, float32.

    ``check(done, total)`` is called before each batch; it may raise to stop (the Stop button).
    """
    chunks = []
    total = len(source)
    for index in torch.arange(total).split(batch_size):
        if check is not None:
            check(int(index[0]), total)
        x, _ = source.get(index, train=False)
        chunks.append(x)
    return torch.cat(chunks) if chunks else torch.empty(0)


def feature_key(frozen: nn.Module, images: Sequence[torch.Tensor], *, description: dict) -> str:
    """A content hash: the body's weights and layout, a spread sample of the pictures, and ``description``.

    Parameters that train (the head, which the body holds) are left out: a new seed gives a new
    head but the same features.
    """
    digest = hashlib.blake2b(digest_size=16)
    digest.update(json.dumps(description, sort_keys=True, default=str).encode())
    digest.update(repr(frozen).encode())
    trains = {name for name, p in frozen.named_parameters() if p.requires_grad}
    for name, tensor in frozen.state_dict().items():
        if name in trains:
            continue
        digest.update(name.encode())
        _update_tensor(digest, tensor)
    for split in images:
        digest.update(str(tuple(split.shape)).encode())
        step = 1 + split.numel() // HASH_SAMPLE_BYTES  # every image of a small set, evenly spread ones of a big one
        _update_tensor(digest, split[::step])
    return digest.hexdigest()


def _update_tensor(digest, tensor: torch.Tensor) -> None:
    data = tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8)
    digest.update(memoryview(data.numpy()))


def _cache_folder() -> Path:
    from cnnviz.paths import cache_dir

    folder = cache_dir() / "features"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def load_cached(key: str) -> dict[str, torch.Tensor] | None:
    """The cached feature tensors under ``key``, or None (a damaged file is deleted and ignored)."""
    path = _cache_folder() / f"{key}.pt"
    if not path.is_file():
        return None
    try:
        found = torch.load(path, map_location="cpu", weights_only=True)
        path.touch()  # recently used: pruned last
        return found
    except Exception as exc:  # noqa: BLE001 - a cache must never break a run
        print(f"cnnviz: ignoring damaged feature cache {path.name} ({exc})", file=sys.stderr)
        path.unlink(missing_ok=True)
        return None


def save_cached(key: str, tensors: dict[str, torch.Tensor]) -> bool:
    """Write ``tensors`` under ``key`` (atomically) unless they are too big; prune old files. True when written."""
    size = sum(t.numel() * t.element_size() for t in tensors.values())
    if size > MAX_CACHE_FILE_BYTES:
        return False
    folder = _cache_folder()
    tmp = folder / f".{key}.tmp"
    try:
        torch.save({k: v.detach().cpu() for k, v in tensors.items()}, tmp)
        tmp.replace(folder / f"{key}.pt")
    except OSError as exc:  # a full disk or a read-only home: train anyway
        print(f"cnnviz: could not write the feature cache ({exc})", file=sys.stderr)
        tmp.unlink(missing_ok=True)
        return False
    files = sorted(folder.glob("*.pt"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[MAX_CACHE_FILES:]:
        old.unlink(missing_ok=True)
    return True
