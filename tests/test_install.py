"""The install files and the server config say the same thing as the code and the README."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

from cnnviz.data.archive import MAX_ZIP_MB
from cnnviz.data.images import MAX_PHOTO_MB
from cnnviz.models.weights import MAX_WEIGHTS_MB

ROOT = Path(__file__).resolve().parents[1]
CPU_INDEX = "--extra-index-url https://download.pytorch.org/whl/cpu"


def pins(name: str) -> dict[tuple[str, str], str]:
    """``(package, marker) -> version`` for every ``package==version [; marker]`` line of a requirements file."""
    found = {}
    for line in (ROOT / name).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)\s*(?:;\s*(.+))?", line)
        if match:
            found[(match[1].lower(), (match[3] or "").strip())] = match[2]
    return found


def test_cpu_requirements_pin_the_same_versions():
    full, cpu = pins("requirements.txt"), pins("requirements-cpu.txt")
    assert CPU_INDEX in (ROOT / "requirements-cpu.txt").read_text(encoding="utf-8").splitlines()
    lines = [line.strip() for line in (ROOT / "requirements-cpu.txt").read_text(encoding="utf-8").splitlines()]
    assert not any(line.startswith("-r") for line in lines), "it must still work when copied over requirements.txt"
    for package in ("torch", "torchvision"):
        version = full[(package, "")]
        assert cpu[(package, 'sys_platform != "darwin"')] == f"{version}+cpu"
        assert cpu[(package, 'sys_platform == "darwin"')] == version
    others = {k: v for k, v in cpu.items() if k[0] not in ("torch", "torchvision")}
    assert others == {k: v for k, v in full.items() if k[0] not in ("torch", "torchvision")}


def test_pillow_heif_is_pinned_to_the_installed_version():
    assert pins("requirements.txt")[("pillow-heif", "")] == importlib.metadata.version("pillow-heif")


def test_server_upload_cap_covers_every_uploader_and_stays_small():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    cap = config["server"]["maxUploadSize"]
    assert cap <= 200, "uploads are held in memory: a 2.7 GB host cannot take 1 GB uploads"
    assert cap >= max(MAX_PHOTO_MB, MAX_ZIP_MB, MAX_WEIGHTS_MB), "the server enforces only the global cap"


def test_readme_states_the_caps_and_the_cloud_file_order():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.startswith("# cnnviz\n\n```bash\npython3 -m venv .venv && .venv/bin/pip install -r requirements.txt")
    for words in (f"a photo {MAX_PHOTO_MB} MB", f"a zip of class folders {MAX_ZIP_MB} MB",
                  f"a weights\nfile {MAX_WEIGHTS_MB} MB", "--server.address 127.0.0.1",
                  "`uv.lock`,\n`Pipfile`, `environment.yml`, `requirements.txt`, `pyproject.toml`"):
        assert words in readme, words
