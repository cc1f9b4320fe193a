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
