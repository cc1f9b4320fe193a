"""One real-browser walk through the app: headless Chromium driven by Playwright.

Starts ``streamlit run app.py`` on a free port with its own CNNVIZ_HOME, then
clicks through every page as a student would, saving a screenshot of each to
``tests/artifacts/``. Skips with a reason where no browser is installed, unless
CNNVIZ_REQUIRE_BROWSER is set (as ``.ci/run`` does), where it fails instead.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = Path(os.environ.get("CNNVIZ_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _missing_browser_reason() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -r requirements-dev.txt)"
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set CNNVIZ_CHROMIUM)"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """The URL of a freshly started app with an empty home folder."""
    reason = _missing_browser_reason()
    if reason:
        if os.environ.get("CNNVIZ_REQUIRE_BROWSER"):
            pytest.fail(f"browser test required but cannot run: {reason}")
        pytest.skip(reason)
    home = tmp_path_factory.mktemp("browser_home")
    port = _free_port()
    # One worker of one thread trains the walk's run (the test suite's default is no workers), and
    # the Teacher page opens without a password.
    env = dict(os.environ, CNNVIZ_HOME=str(home), CNNVIZ_DATA=str(home / "data"), CNNVIZ_WORKERS="1",
               CNNVIZ_THREADS="1")
    env.pop("CNNVIZ_TEACHER_PASSWORD", None)
    log = open(home / "streamlit.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.headless", "true", "--server.address", "127.0.0.1"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the app did not start; log:\n{(home / 'streamlit.log').read_text()[-3000:]}")
        time.sleep(0.5)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
    terminal = (home / "streamlit.log").read_text()
    # The user's terminal must stay free of the torch.classes file-watcher noise.
    assert "torch.classes" not in terminal and "__path__._path" not in terminal, terminal[-2000:]


@pytest.fixture(scope="module")
def page(app_url):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "failure.png").unlink(missing_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        tab = context.new_page()
        tab.set_default_timeout(60_000)
        yield tab
        context.close()
        browser.close()


def _wait_idle(page, timeout: float = 60):
    """Wait until Streamlit has finished the current script run."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout * 1000)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if page.locator('[data-testid="stStatusWidget"]').count() == 0:
            return
        time.sleep(0.3)


def _goto(page, app_url, path: str):
    page.goto(f"{app_url}/{path}")
    _wait_idle(page)


def _settle(page, timeout: float = 60):
    """Wait until the page has drawn: its title shown, the script done, no placeholders left, every chart rendered."""
    drawn = """() => document.querySelector('[data-testid="stMain"] h1')
        && !document.querySelector('[data-testid="stStatusWidget"]')
        && !document.querySelector('[data-testid="stSkeleton"], [data-testid="stSpinner"]')
        && [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')]
           .every(c => c.querySelector('canvas, svg'))"""
    try:
        page.wait_for_function(drawn, timeout=timeout * 1000)
    except Exception:  # the screenshot still shows what was there: the assertions judge the page
        pass
    time.sleep(1.0)  # the last chart finishes painting


def _shot(page, name: str):
    _settle(page)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _no_exception(page):
    assert page.locator('[data-testid="stException"]').count() == 0, page.locator('[data-testid="stException"]').first.inner_text()


def _choose(page, key: str, option_text: str):
    """Pick ``option_text`` in the selectbox with widget key ``key``."""
    page.locator(f".st-key-{key} button[aria-haspopup='listbox']").click()
    page.locator("[role='option']", has_text=option_text).first.click()
    _wait_idle(page)


def _pick_sample(page, text: str):
    """Choose the sample picture whose name holds ``text`` in the Predict page's multiselect, and wait for it."""
    box = page.locator(".st-key-predict_samples input")
    box.click()
    box.fill(text)
    page.locator("[role='option']", has_text=text).first.click()
    chosen = page.locator(".st-key-predict_samples [data-testid='stMultiSelectTagsContainer']", has_text=text)
    _wait_for(lambda: chosen.count() > 0, 30, f"the sample picture {text!r} to be chosen")
    page.keyboard.press("Escape")  # close the list before the screenshot
    _wait_idle(page, timeout=120)


def _metric(page, label: str) -> str:
    metric = page.locator('[data-testid="stMetric"]', has_text=label).first
    return metric.locator('[data-testid="stMetricValue"]').inner_text()


def _set_number(page, key: str, value: int):
    box = page.locator(f".st-key-{key} input")
    box.fill(str(value))
    box.press("Enter")
    _wait_idle(page)


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture
def shoot_on_failure(page, request):
    """Keep a screenshot of the page as it was when a step failed."""
    yield
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        _shot(page, "failure")


def test_walk_through_every_page(page, app_url, shoot_on_failure):
    # Home: what the app is for, links into each page.
    _goto(page, app_url, "")
    page.get_by_text("cnnviz", exact=False).first.wait_for()
    _no_exception(page)
    _shot(page, "01_home")

    # Architectures: a deep link on a fresh server, then an SE block toggled on changes the parameter count.
    _goto(page, app_url, "architectures")
    _choose(page, "arch_model", "AlexSE")
    page.locator(".st-key-arch_opt_se_1").wait_for()  # AlexNet has no SE toggles: the page has switched
    alexnet = f"{61_100_840:,}"
    _wait_for(lambda: _metric(page, "Parameters") != alexnet, 30, "AlexSE's parameter count")
    _wait_idle(page)
    before = _metric(page, "Parameters")
    page.locator(".st-key-arch_opt_se_1 label").first.click()
    _wait_idle(page)
    _wait_for(lambda: _metric(page, "Parameters") != before, 30, "the parameter count to change after toggling SE")
    after = _metric(page, "Parameters")
    assert int(re.sub(r"\D", "", after)) > int(re.sub(r"\D", "", before)), (before, after)
    _no_exception(page)
    _shot(page, "02_architectures")

    # Train: the default shapes run (ResNet-20, five epochs, about a minute on one thread), launched
    # from the page; the live chart grows, then the results appear.
    _goto(page, app_url, "train")
    page.locator(".st-key-train_launch button").click()
    _wait_idle(page)
    _wait_for(lambda: "run=" in page.evaluate("location.href"), 120, "the run id in the URL (what a reopened tab reattaches to)")
    epochs_table = page.locator('[data-testid="stDataFrame"]')
    _wait_for(lambda: page.locator(".st-key-train_stop").count() > 0 or page.get_by_text("Best validation").count() > 0,
              300, "the run to start")
    _shot(page, "03_train_live")
    _wait_for(lambda: page.get_by_text("Misclassified validation images").count() > 0, 600, "the run to finish")
    assert epochs_table.count() > 0
    assert page.locator('[data-testid="stVegaLiteChart"]').count() >= 2  # curves and confusion matrix
    _no_exception(page)
    _shot(page, "04_train_done")
    # The README's picture: the finished run at 1400 px, tall enough for the curves and the metrics.
    page.set_viewport_size({"width": 1400, "height": 1250})
    page.locator('[data-testid="stMetric"]').first.scroll_into_view_if_needed()
    _settle(page)
    page.screenshot(path=str(ARTIFACTS / "readme_train_done.png"))
    page.set_viewport_size({"width": 1400, "height": 1000})

    # Compare: the run is in the table and its curves are drawn.
    _goto(page, app_url, "compare")
    _wait_for(lambda: page.locator('[data-testid="stVegaLiteChart"]').count() > 0, 60, "the compare charts")
    assert page.get_by_text("1 of 1 runs shown").count() > 0
    _no_exception(page)
    _shot(page, "05_compare")

    # Predict: upload a photo (and a broken file); predictions and a heat map appear, the broken one gets a line.
    _goto(page, app_url, "predict")
    sample = sorted((ROOT / "assets" / "samples").glob("*.jpg"))[0]
    page.locator(".st-key-predict_upload input[type=file]").set_input_files([
        {"name": sample.name, "mimeType": "image/jpeg", "buffer": sample.read_bytes()},
        {"name": "broken.jpg", "mimeType": "image/jpeg", "buffer": b"\xff\xd8\xff\xe0 not really a jpeg"},
    ])
    _wait_idle(page, timeout=120)
    _wait_for(lambda: page.get_by_text("what drove").count() > 0, 180, "a prediction with its Grad-CAM heat map")
    warning = page.locator('[data-testid="stAlert"]', has_text="broken.jpg")
    _wait_for(lambda: warning.count() > 0, 60, "the one-line message about the broken file")
    page.get_by_text("what drove").first.scroll_into_view_if_needed()
    _no_exception(page)
    _shot(page, "06_predict")

    # Experiments and Learn render with their cards and demos.
    _goto(page, app_url, "experiments")
    _no_exception(page)
    _shot(page, "07_experiments")
    _goto(page, app_url, "learn")
    _no_exception(page)
    _shot(page, "08_learn")

    # Teacher: the finished run is no longer queued; the disk section lists its checkpoint.
    _goto(page, app_url, "teacher")
    page.get_by_text("Disk").first.wait_for()
    _no_exception(page)
    _shot(page, "09_teacher")


PAGES = ("", "architectures", "train", "train?run=1", "compare", "predict", "experiments", "learn", "teacher")
WIDTHS = (900, 1920)


def test_every_page_reads_at_900_and_1920_px(page, app_url, shoot_on_failure):
    """Screenshots of every page at a projector's 900 px and a wide 1920 px (run after the walk: runs exist)."""
    for width in WIDTHS:
        # Tall: Streamlit scrolls inside its own container, so a full-page shot holds only the viewport.
        page.set_viewport_size({"width": width, "height": 2600})
        for path in PAGES:
            _goto(page, app_url, path)
            if path == "predict":
                _pick_sample(page, "star")
                _wait_for(lambda: page.get_by_text("what drove").count() > 0, 180, "a prediction at this width")
            if path == "train?run=1":  # the results of the walk's run
                _wait_for(lambda: page.get_by_text("Misclassified validation images").count() > 0, 120,
                          "the Train results")
            _no_exception(page)
            _shot(page, f"w{width}_{(path or 'home').replace('?run=1', '_results')}")
    page.set_viewport_size({"width": 1400, "height": 1000})
