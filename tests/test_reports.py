"""Lab reports: every section for a real small run, Markdown and HTML, and the HTML opens in a browser with its images."""

from __future__ import annotations

import pytest

from cnnviz.cli import main
from cnnviz.jobs import run_training
from cnnviz.reports import render, run_report, runs_report
from cnnviz.runs import RunStore
from cnnviz.training import TrainConfig

SECTIONS = ("What was asked", "The model", "Configuration", "Per-epoch table", "Curves",
            "Results: best epoch, time, validation and test accuracy", "Confusion matrix and per-class accuracy",
            "Misclassified examples (validation)", "Published figures")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A store with one real, tiny shapes run (two epochs, so curves have a line)."""
    store = RunStore(tmp_path_factory.mktemp("reports") / "home")
    config = TrainConfig(arch="cifar_resnet", dataset="shapes", subset=4, val_subset=3, test_subset=3, epochs=2,
                         batch_size=16, image_size=16, lr=0.05, device="cpu")
    run_id = store.create(config)
    run_training(config, store=store, run_id=run_id)
    return store, run_id


def test_run_report_holds_every_section(finished):
    store, run_id = finished
    report = run_report(store, run_id)
    assert report.titles() == list(SECTIONS)
    md = render(report, "md")
    for title in SECTIONS:
        assert f"## {title}" in md
    run = store.get(run_id)
    assert "CifarResNet(" in md or "Sequential(" in md  # the printed model
    assert "Layer" in md and "Parameters:" in md and "FLOPs" in md  # the layer summary, parameters and FLOPs
    assert "| epoch | train loss | train acc | val loss | val acc |" in md
    assert f"Best validation accuracy: {run.best_val_acc:.4f}" in md
    assert f"Test accuracy: {run.test_acc:.4f}" in md and "evaluated once, on the best-validation weights" in md
    assert "| class | val acc | test acc |" in md and "validation, best epoch (rows: true class)" in md
    assert "misclassified validation pictures" in md or "classified every validation picture" in md
    assert md.count("data:image/png;base64,") >= 3  # curves and confusion matrix embedded


def test_html_opens_in_chromium_with_every_image_loaded(finished, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    store, run_id = finished
    page_file = tmp_path / "report.html"
    page_file.write_text(render(run_report(store, run_id), "html"), encoding="utf-8")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                    args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.goto(page_file.as_uri())
            page.wait_for_load_state("load")
            widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
            headings = page.eval_on_selector_all("h2", "hs => hs.map(h => h.textContent)")
        finally:
            browser.close()
    assert len(widths) >= 3 and all(w > 0 for w in widths)
    assert headings == list(SECTIONS)


def test_report_command_and_an_experiment_group(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CNNVIZ_HOME", str(tmp_path / "home"))
    assert main(["reproduce", "exp5", "--dataset", "shapes", "--only", "alexnet", "--only", "alexresnet",
                 "--subset", "2", "--epochs", "1", "--out", str(tmp_path / "results")]) == 0
    out = tmp_path / "exp5.md"
    assert main(["report", "--experiment", "exp5", "-o", str(out)]) == 0
    md = out.read_text()
    for title in ("What was asked", "Results beside the published figures", "Per-epoch table and curves",
                  "Conclusions", "Published figures"):
        assert f"\n## {title}\n" in md
    assert "differences smaller than about" in md  # the noise band
    assert "| ResNet-18, 25 epochs (140 min) | 0.841 | test |" in md
    assert "### Misclassified examples (validation)" in md and "none: ran on shapes, not cifar10" in md
    run_id = RunStore().list()[0].id
    html = tmp_path / "run.html"
    assert main(["report", "--run", str(run_id), "-o", str(html)]) == 0
    assert html.read_text().startswith("<!DOCTYPE html>") and "<h2>Published figures</h2>" in html.read_text()
    capsys.readouterr()
    assert main(["report", "--run", str(run_id), "--format", "md"]) == 0
    assert capsys.readouterr().out.startswith("# Lab report: ")
    compared = render(runs_report(RunStore(), [r.id for r in RunStore().list()]), "md")
    assert compared.count("### What was asked") == 2
