"""The router and Streamlit's legacy ``pages/`` mode: the one private flag the app reads still means
what ``cnnviz.ui.nav.legacy_pages_mode`` assumes, and a deep link still renders inside the router."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.runtime.pages_manager import PagesManager
from streamlit.runtime.scriptrunner import script_runner
from streamlit.testing.v1 import AppTest

from cnnviz.ui import nav

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
CHANGED = ("Streamlit changed its legacy pages/ mode: cnnviz.ui.nav.legacy_pages_mode reads "
           "PagesManager.uses_pages_directory; find the new way to tell whether a page runs without app.py")


@pytest.fixture
def flag():
    """Put Streamlit's class-wide flag back as it was after the test."""
    saved = PagesManager.uses_pages_directory
    yield
    PagesManager.uses_pages_directory = saved


def test_the_flag_exists_and_is_set_by_a_pages_folder_next_to_the_entry_file(flag, tmp_path):
    assert "uses_pages_directory" in vars(PagesManager), CHANGED
    PagesManager.uses_pages_directory = None
    PagesManager(APP)
    assert PagesManager.uses_pages_directory is True and nav.legacy_pages_mode(), CHANGED
    PagesManager.uses_pages_directory = None
    (tmp_path / "entry.py").write_text("", encoding="utf-8")
    PagesManager(str(tmp_path / "entry.py"))
    assert PagesManager.uses_pages_directory is False and not nav.legacy_pages_mode(), CHANGED


def test_the_flag_makes_the_script_runner_skip_the_entry_file():
    source = inspect.getsource(script_runner)
    assert "if PagesManager.uses_pages_directory:" in source and "_mpa_v1(" in source, CHANGED


def test_st_navigation_in_app_py_turns_the_legacy_mode_off(flag):
    at = AppTest.from_file(APP, default_timeout=60).run()  # AppTest starts each run in the legacy mode
    assert not at.exception, [e.message for e in at.exception]
    assert PagesManager.uses_pages_directory is False, CHANGED


def _sidebar_captions(at: AppTest) -> str:
    return " ".join(c.value for c in at.sidebar.caption)


def test_a_deep_link_in_the_legacy_mode_renders_inside_the_router(flag, monkeypatch):
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("pages/home.py").run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.title[0].value.startswith("cnnviz") and "Device" in _sidebar_captions(at)
    # Without the workaround the page runs alone: no shared sidebar.
    monkeypatch.setattr(nav, "legacy_pages_mode", lambda: False)
    at.run()
    assert at.title[0].value.startswith("cnnviz") and "Device" not in _sidebar_captions(at)


PAGES_DIR = Path(__file__).resolve().parent.parent / "pages"


@pytest.mark.parametrize("page", sorted(p.name for p in PAGES_DIR.glob("*.py")))
def test_every_page_draws_its_title_before_it_imports_torch(page):
    """A first visit must not sit on a blank page while torch loads: what a page imports above its
    ``st.title`` keeps torch out (checked in a fresh interpreter)."""
    tree = ast.parse((PAGES_DIR / page).read_text(encoding="utf-8"))
    before = []
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and \
                getattr(node.value.func, "attr", None) == "title":
            break
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            before.append(ast.unparse(node))
    else:
        pytest.fail(f"{page} draws no st.title")
    code = "\n".join(before + ["import sys", "print('torch' in sys.modules)"])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False", f"{page} imports torch before its title: {before}"


def test_the_router_preloads_torch_in_the_background():
    """In a fresh interpreter (this one has torch already): the router starts one preload thread, which
    brings torch, the registries and the pages' views in, and a page's ``wait_for_torch`` returns once it is
    done. The imported objects are then frozen out of the garbage collector's full passes (which Streamlit
    runs after every script run): fewer than a tenth of the objects stay for it to walk."""
    code = "\n".join([
        "import gc, sys, json, time",
        "from streamlit.testing.v1 import AppTest",
        "from cnnviz.ui import nav",
        f"at = AppTest.from_file({APP!r}, default_timeout=60).run()",
        "thread = nav.preload_torch()",
        "nav.wait_for_torch()",
        "print(json.dumps({'errors': [e.message for e in at.exception], 'name': thread.name,",
        "                  'same': nav.preload_torch() is thread, 'alive': thread.is_alive(),",
        "                  'torch': 'torch' in sys.modules, 'models': 'cnnviz.models' in sys.modules,",
        "                  'views': all(m in sys.modules for m in nav.PRELOADED),",
        "                  'frozen': gc.get_freeze_count(), 'tracked': len(gc.get_objects())}))",
    ])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, check=True,
                         cwd=ROOT).stdout
    result = __import__("json").loads(out.strip().splitlines()[-1])
    frozen, tracked = result.pop("frozen"), result.pop("tracked")
    assert result == {"errors": [], "name": "cnnviz-preload-torch", "same": True, "alive": False, "torch": True,
                      "models": True, "views": True}, result
    assert frozen > 100_000 and tracked < frozen / 10, (frozen, tracked)


def test_the_device_hint_never_waits_on_a_torch_import_still_running(monkeypatch):
    """torch is in ``sys.modules`` as soon as another thread starts importing it: until the preload is
    done, the sidebar guesses from the drivers and cores instead of blocking on torch's import lock."""
    import torch  # noqa: F401  (in sys.modules, as while the preload imports it)

    from cnnviz.ui import sidebar

    monkeypatch.setattr(nav, "torch_ready", lambda: False)
    monkeypatch.setattr(sidebar, "_torch_device", lambda: pytest.fail("the hint waited for torch"))
    assert sidebar.device_hint()
    monkeypatch.setattr(nav, "torch_ready", lambda: True)
    monkeypatch.setattr(sidebar, "_torch_device", lambda: "what torch says")
    assert sidebar.device_hint() == "what torch says"
