"""Shared fixtures: every test gets its own CNNVIZ_HOME; real data is found or skipped."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("CNNVIZ_SHARED_DATA", ROOT.parent / "shared" / "data")).resolve()


@pytest.fixture(autouse=True)
def cnnviz_home(tmp_path, monkeypatch):
    """A fresh home folder per test, so runs and caches never leak between tests."""
    home = tmp_path / "cnnviz_home"
    monkeypatch.setenv("CNNVIZ_HOME", str(home))
    monkeypatch.setenv("CNNVIZ_DATA", str(tmp_path / "cnnviz_data"))
    monkeypatch.setenv("CNNVIZ_WORKERS", "0")  # app.py starts no workers unless a test asks for them
    yield home
    from cnnviz.jobs.pool import stop_all

    stop_all()  # workers a test's app started end with the test


@pytest.fixture
def shared_data() -> Path:
    """The folder with the real hymenoptera and CIFAR-10 zips, or a skip saying where it was looked for."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATA} (set CNNVIZ_SHARED_DATA to the folder with hymenoptera_data.zip and cifar10.zip)")
    return SHARED_DATA


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Expose each phase's report on the item (the browser test screenshots a failed step)."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
