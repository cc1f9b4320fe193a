"""Admission: the peak-memory estimate against a measured training process, and refusals that say what fits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnnviz.jobs.admission import admit, check_admission, estimate_peak_bytes, memory_budget
from cnnviz.training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
STREAMLIT_CLOUD = int(2.7e9)  # what Streamlit Community Cloud gives an app

# Trains a config in a fresh process and reports its peak resident memory and its shared-library pages
# at the end: the estimate counts the process's own memory, not the libraries' pages other processes share.
MEASURE = """
import json, resource, sys
from cnnviz.training import train
from cnnviz.training.config import TrainConfig
result = train(TrainConfig.from_json(sys.argv[1]))
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
print(json.dumps({"status": result.status, "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "rss_file": int(status["RssFile"].split()[0]) * 1024}))
"""


def measured_peak(config: TrainConfig, tmp_path: Path) -> int:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "CNNVIZ_HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-c", MEASURE, config.to_json()], capture_output=True, text=True, env=env,
                         timeout=600, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["status"] == "finished", out.stderr[-2000:]
    return report["maxrss"] - report["rss_file"]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the process's memory from /proc (Linux)")
@pytest.mark.parametrize("config", [
    TrainConfig(arch="resnet18", dataset="shapes", image_size=32, batch_size=32, subset=8, val_subset=4, epochs=1,
                device="cpu", precision="fp32"),
    TrainConfig(arch="alexnet", dataset="shapes", image_size=96, batch_size=16, subset=4, val_subset=2, epochs=1,
                device="cpu", precision="fp32"),  # 61 M parameters: weights, gradients and momentum dominate
], ids=["resnet18-32px", "alexnet-96px"])
def test_estimate_is_within_half_again_of_a_measured_peak(config, tmp_path):
    estimate, measured = estimate_peak_bytes(config), measured_peak(config, tmp_path)
    assert measured / 1.5 <= estimate <= measured * 1.5, (estimate, measured)


def test_vgg16_at_224_px_is_refused_on_streamlit_cloud_with_a_batch_that_fits():
    config = TrainConfig(arch="vgg16", dataset="hymenoptera", image_size=224, batch_size=16, mode="finetune")
    admission = admit(config, budget_bytes=STREAMLIT_CLOUD)
    assert not admission.ok
    assert 3.0e9 <= admission.peak_bytes <= 4.5e9  # "peaks near 3.5 GB on CPU"
    fits = admission.fits
    assert fits is not None and fits.image_size == 224 and 1 <= fits.batch_size < 16
    assert f"Batch {fits.batch_size} fits" in admission.message and "2.7 GB" in admission.message
    assert estimate_peak_bytes(fits) <= STREAMLIT_CLOUD
    assert estimate_peak_bytes(fits.replace(batch_size=fits.batch_size + 1)) > STREAMLIT_CLOUD  # the largest
    with pytest.raises(ValueError, match=f"Batch {fits.batch_size} fits"):
        check_admission(config, budget_bytes=STREAMLIT_CLOUD)
    check_admission(fits, budget_bytes=STREAMLIT_CLOUD)  # admitted: no error


def test_what_changes_the_estimate():
    base = TrainConfig(arch="resnet18", dataset="shapes", image_size=64, batch_size=32, subset=8, val_subset=4)
    peak = estimate_peak_bytes(base)
    assert estimate_peak_bytes(base.replace(batch_size=64)) > peak  # activations grow with the batch
    assert estimate_peak_bytes(base.replace(optimizer="adam")) > peak  # two moments instead of one momentum
    assert estimate_peak_bytes(base.replace(mode="freeze")) < peak  # no gradients or kept activations for the body


def test_too_big_even_at_batch_one_says_so():
    config = TrainConfig(arch="vgg16", dataset="hymenoptera", image_size=224, batch_size=16, optimizer="adam")
    admission = admit(config, budget_bytes=int(1.5e9))
    assert not admission.ok and admission.fits is None
    assert "Even batch 1 does not fit" in admission.message and "freeze the backbone" in admission.message


def test_the_budget_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("CNNVIZ_MEMORY_BUDGET", "2.5GB")
    assert memory_budget() == int(2.5e9)
    monkeypatch.delenv("CNNVIZ_MEMORY_BUDGET")
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < memory_budget() <= 0.6 * physical
