"""The device description says cores and threads for what they are."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from cnnviz import device

ROOT = Path(__file__).resolve().parents[1]


def test_cpu_description_counts_cores_and_torch_threads(monkeypatch):
    usable, total = device.usable_cores()
    assert usable == len(os.sched_getaffinity(0)) and total == os.cpu_count()
    text = device.describe_device("cpu")
    threads = torch.get_num_threads()
    assert text.startswith(device.describe_cpu()[:-1]) and text.endswith(f"{threads} torch thread{'s' * (threads != 1)})")
    monkeypatch.setattr(device, "usable_cores", lambda: (2, 16))
    assert device.describe_cpu() == "cpu (2 of 16 cores)"
    assert device.describe_cpu(1) == "cpu (2 of 16 cores, 1 torch thread)"
    monkeypatch.setattr(device, "usable_cores", lambda: (1, 1))
    assert device.describe_cpu(4) == "cpu (1 core, 4 torch threads)"


def test_describing_the_cpu_does_not_import_torch():
    code = ("import sys; from cnnviz.device import describe_cpu; describe_cpu(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_bf16_counts_as_fast_only_with_amx_tiles(monkeypatch, tmp_path):
    """AVX512-BF16 alone trains slower than fp32 here; AMX trains faster (benchmarks/README.md)."""
    import builtins

    real_open = builtins.open

    def cpuinfo_with(flags):
        path = tmp_path / "cpuinfo"
        path.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 {flags}\n")
        return lambda file, *a, **k: real_open(path if file == "/proc/cpuinfo" else file, *a, **k)

    for flags, fast in (("avx512f avx512_bf16", False), ("avx512_bf16 amx_bf16 amx_tile", True), ("avx2", False)):
        device.cpu_bf16_is_fast.cache_clear()
        monkeypatch.setattr(builtins, "open", cpuinfo_with(flags))
        assert device.cpu_bf16_is_fast() is fast, flags
    monkeypatch.undo()
    device.cpu_bf16_is_fast.cache_clear()


def test_auto_precision_is_bf16_on_a_cpu_only_where_bf16_is_fast(monkeypatch):
    from cnnviz.training import parts

    cpu = torch.device("cpu")
    for fast, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(parts, "cpu_bf16_is_fast", lambda fast=fast: fast)
        assert parts.resolve_precision("auto", cpu) == expected
        assert parts.resolve_precision("fp32", cpu) == "fp32" and parts.resolve_precision("bf16", cpu) == "bf16"
