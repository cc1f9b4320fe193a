"""The library stays usable from scripts: no Streamlit outside cnnviz/ui, no torch on import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "cnnviz"
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "ui" not in p.relative_to(PACKAGE).parts[:1])


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_streamlit_outside_ui(path):
    streamlit = {name for name in _imported_modules(path) if name.split(".")[0] == "streamlit"}
    assert not streamlit, f"{path.relative_to(PACKAGE.parent)} imports {sorted(streamlit)}; only cnnviz/ui may"


def test_package_and_paths_import_without_torch():
    code = "import sys, cnnviz, cnnviz.paths; print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'streamlit')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
