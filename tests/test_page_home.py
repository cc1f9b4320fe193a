"""Home in AppTest: it renders through the router, links every page, and never imports torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")


def test_home_renders_with_links_paths_and_device(cnnviz_home):
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.title[0].value.startswith("cnnviz")
    text = " ".join(m.value for m in at.markdown)
    assert str(cnnviz_home) in text, "where runs live"
    assert "Device for training" in text
    links = {p.proto.label for p in at.get("page_link")}
    assert {"Architectures", "Train", "Compare", "Predict", "Experiments", "Learn"} <= links
    assert any("Device" in c.value for c in at.sidebar.caption)


def test_home_does_not_import_torch(tmp_path):
    # A fresh interpreter: the test process itself has torch loaded by other tests. The router's
    # background preload of torch (tested in test_nav) is switched off: what is checked here is that
    # Home, the router and the sidebar never wait for torch themselves.
    code = (
        "import sys, json\n"
        "from streamlit.testing.v1 import AppTest\n"
        "from cnnviz.ui import nav\n"
        "nav.preload_torch = lambda: None\n"
        f"at = AppTest.from_file({APP!r}, default_timeout=60).run()\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'errors': [e.message for e in at.exception],"
        " 'title': at.title[0].value if at.title else None}))\n"
    )
    env = {"CNNVIZ_HOME": str(tmp_path / "home"), "CNNVIZ_DATA": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=120, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["errors"] == [] and result["title"], result
    assert result["torch"] is False, "the Home page (or the router/sidebar) imported torch"
