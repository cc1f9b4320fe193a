"""The one place that picks the compute device."""

from __future__ import annotations

import functools

import torch


def pick_device(name: str = "auto") -> torch.device:
    """Return the device for ``name``: ``auto`` prefers CUDA, then Apple MPS, then CPU.

    Asking for a device that is not there raises ``ValueError`` with what is available.
    """
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


def describe_device(device: torch.device | str = "auto") -> str:
    """A short human description, e.g. ``cpu (2 threads)`` or ``cuda (NVIDIA A100)``."""
    device = pick_device(device) if isinstance(device, str) else device
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type


@functools.lru_cache(maxsize=None)
def cpu_bf16_is_fast() -> bool:
    """Whether this CPU runs bf16 matmuls natively (AMX/AVX512-BF16), checked once."""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags
