"""The one place that picks the compute device.

torch is imported inside the functions that need it, so ``describe_cpu`` stays cheap for the
Home page's sidebar, which paints before torch has loaded.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def pick_device(name: str = "auto") -> torch.device:
    """Return the device for ``name``: ``auto`` prefers CUDA, then Apple MPS, then CPU.

    Asking for a device that is not there raises ``ValueError`` with what is available.
    """
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but no CUDA GPU is available; use --device auto or cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device 'mps' asked for, but Apple MPS is not available; use --device auto or cpu")
    return torch.device(name)


def usable_cores() -> tuple[int, int]:
    """(cores this process may run on, cores in the machine); they differ in containers and under taskset."""
    total = os.cpu_count() or 1
    try:
        return len(os.sched_getaffinity(0)), total
    except (AttributeError, OSError):  # macOS and Windows have no affinity call
        return total, total


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def describe_cpu(threads: int | None = None) -> str:
    """The CPU as the sidebar shows it, e.g. ``cpu (2 cores)`` or ``cpu (2 of 16 cores, 2 torch threads)``."""
    usable, total = usable_cores()
    cores = _plural(usable, "core") if usable == total else f"{usable} of {_plural(total, 'core')}"
    return f"cpu ({cores})" if threads is None else f"cpu ({cores}, {_plural(threads, 'torch thread')})"


def describe_device(device: torch.device | str = "auto") -> str:
    """A short human description, e.g. ``cpu (2 cores, 2 torch threads)`` or ``cuda (NVIDIA A100)``."""
    import torch

    device = pick_device(device) if isinstance(device, str) else device
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return describe_cpu(torch.get_num_threads())
    return device.type


@functools.lru_cache(maxsize=None)
def cpu_bf16_is_fast() -> bool:
    """Whether bf16 autocast is faster than fp32 on this CPU: it has AMX tiles (``amx_bf16``), checked once.

    AVX512-BF16 alone measured slower than fp32 by 10-35%; with AMX, airbench trains 1.9x faster
    in bf16 channels-last than in fp32 channels-last (benchmarks/README.md, ``bench_precision.py``).
    """
    try:
        with open("/proc/cpuinfo") as fh:
            return "amx_bf16" in fh.read()
    except OSError:
        return False
