"""Admission: estimate a run's peak memory before it starts, and refuse what the server cannot hold.

The peak of a training process is its runtime (Python, torch, torchvision), the decoded images,
the weights, their gradients and the optimiser's state (SGD with momentum keeps one extra copy,
Adam two), plus the largest of three things that never coexist: the activations the backward
pass keeps (every layer's output for each image of the batch, and the gradients in flight), the
optimiser step's temporary copy (weight decay, Adam's update) and the best epoch's CPU snapshot.
A frozen body keeps no activations for the backward: only its largest layer output passes
through at a time.

For scale: VGG16 at 224 px, batch 16 peaks near 3.5-4 GB on a CPU; Streamlit Community Cloud gives
an app about 2.7 GB. Counted on the meta device (shapes only), so an estimate costs milliseconds.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from cnnviz.runs.cleanup import parse_bytes
from cnnviz.training.config import FROZEN_MODES

# A worker's own memory after importing torch and torchvision (RssAnon, measured on Linux); the ~300 MB
# of shared-library pages on top are shared between processes and reclaimable, so not counted.
RUNTIME_BYTES = 400 * 10**6
BACKWARD_FACTOR = 1.5  # kept outputs, plus the gradients in flight while the backward pass frees them
BUDGET_SHARE = 0.6  # of physical memory, when CNNVIZ_MEMORY_BUDGET is not set: the server and pages need the rest
SMALLER_SIZES = (192, 160, 128, 112, 96, 64, 48, 32)


@dataclass(frozen=True)
class Admission:
    """Whether a run may start, its estimated peak, a sentence for people, and a config that fits."""

    ok: bool
    peak_bytes: int
    message: str
    fits: object | None = None  # a TrainConfig with a smaller batch or input size; None when ok or nothing fits


@dataclass(frozen=True)
class _Memory:
    fixed: int  # bytes whatever the batch: runtime, data, weights, gradients, optimiser state
    per_image: int  # bytes per image of the batch: activations
    between_batches: int = 0  # the step's temporaries or the best snapshot, when the activations are gone

    def peak(self, batch: int) -> int:
        """Bytes at the peak with ``batch`` images per batch."""
        return self.fixed + max(self.between_batches, batch * self.per_image)


def format_gb(n: float) -> str:
    """Bytes as decimal gigabytes, ``2.7 GB`` (the unit hosting services quote)."""
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.0f} MB"


def memory_budget(env: dict | None = None) -> int:
    """Bytes a run may use: ``CNNVIZ_MEMORY_BUDGET`` (e.g. ``2.5GB``), else 60% of this machine's memory."""
    value = (env if env is not None else os.environ).get("CNNVIZ_MEMORY_BUDGET", "").strip()
    if value:
        return parse_bytes(value)
    return int(BUDGET_SHARE * _physical_memory())


def _physical_memory() -> int:
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:  # a container's own limit (cgroup v2) is the one that kills
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            total = min(total, int(limit))
    except OSError:
        pass
    return total


def _memory(config, image_size: int) -> _Memory:
    from cnnviz.data import get_dataset_spec
    from cnnviz.inspect import summarize
    from cnnviz.jobs.estimates import split_sizes

    frozen = config.mode in FROZEN_MODES
    classes = get_dataset_spec(config.dataset).classes_for(config.labels) or 10
    train, val = split_sizes(config)
    data = (train + val) * 3 * image_size * image_size  # decoded once, as uint8
    if config.mode == "probe" and config.probe_layer == "input":  # softmax regression on pixels
        features = 3 * image_size * image_size
        weights = features * classes * 4
        return _Memory(fixed=RUNTIME_BYTES + data + 4 * weights + (train + val) * features * 4,
                       per_image=features * 4 * BACKWARD_FACTOR)
    summary = summarize(config.arch, options=config.options, num_classes=classes, image_size=image_size,
                        frozen=frozen, depth=8)
    states = {"sgd": 1 if config.momentum else 0}.get(config.optimizer, 2)  # adam/adamw: two moments
    fixed = RUNTIME_BYTES + data + 4 * summary.params + 4 * summary.trainable_params * (1 + states)
    if frozen:
        largest = max((math.prod(r["output_shape"][1:]) for r in summary.layers if r["output_shape"]), default=0)
        per_image = 2 * 4 * largest  # a layer's input and output, nothing kept for the backward
    else:
        per_image = int(BACKWARD_FACTOR * summary.activation_bytes)
    per_image += 3 * image_size * image_size * 4 * 2  # the float batch and its augmented/normalised copy
    return _Memory(fixed=fixed, per_image=per_image, between_batches=4 * summary.trainable_params)


def estimate_peak_bytes(config) -> int:
    """Estimated peak memory (bytes) of training ``config``: runtime, data, weights, gradients, optimiser, activations."""
    from cnnviz.jobs.estimates import input_size

    return _memory(config, input_size(config)).peak(config.batch_size)


def _largest_batch(memory: _Memory, budget: int, limit: int) -> int:
    if memory.peak(1) > budget:
        return 0
    return min(limit, max((budget - memory.fixed) // max(memory.per_image, 1), 1))


def admit(config, *, budget_bytes: int | None = None) -> Admission:
    """Whether ``config`` fits the memory budget (default ``memory_budget()``); if not, what would."""
    from cnnviz.jobs.estimates import input_size
    from cnnviz.models import get_spec

    budget = budget_bytes if budget_bytes is not None else memory_budget()
    size = input_size(config)
    memory = _memory(config, size)
    peak = memory.peak(config.batch_size)
    what = f"{config.arch} at {size} px, batch {config.batch_size}"
    if peak <= budget:
        return Admission(True, peak, f"{what} needs about {format_gb(peak)} (this server allows {format_gb(budget)})")
    refused = f"{what} needs about {format_gb(peak)} at its peak; this server allows {format_gb(budget)}"
    batch = _largest_batch(memory, budget, config.batch_size)
    if batch >= 1:
        fits = config.replace(batch_size=int(batch))
        return Admission(False, peak, f"{refused}. Batch {batch} fits (about "
                                      f"{format_gb(memory.peak(batch))}).", fits)
    for smaller in (s for s in SMALLER_SIZES if s < size and s >= get_spec(config.arch).min_size):
        shrunk = _memory(config, smaller)
        batch = _largest_batch(shrunk, budget, config.batch_size)
        if batch >= 1:
            fits = config.replace(image_size=smaller, batch_size=int(batch))
            return Admission(False, peak, f"{refused}. At {smaller} px, batch {batch} fits (about "
                                          f"{format_gb(shrunk.peak(batch))}).", fits)
    return Admission(False, peak, f"{refused}. Even batch 1 does not fit: its weights, gradients and optimiser state "
                                  f"alone need {format_gb(memory.peak(1))}; freeze the backbone or pick a smaller "
                                  "architecture.")


def check_admission(config, *, budget_bytes: int | None = None) -> None:
    """Raise ``ValueError`` with the reason and what fits when ``config`` does not fit the memory budget."""
    admission = admit(config, budget_bytes=budget_bytes)
    if not admission.ok:
        raise ValueError(admission.message)
