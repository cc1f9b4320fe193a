"""The Architectures page in AppTest: options from the schema, costs that follow the toggles, size errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT = 120  # the first run imports torch and builds two models


def run(at: AppTest) -> AppTest:
    at.run(timeout=TIMEOUT)
    assert not at.exception, [e.message for e in at.exception]
    return at


@pytest.fixture
def page() -> AppTest:
    at = run(AppTest.from_file(APP, default_timeout=TIMEOUT))
    at.switch_page("pages/architectures.py")
    return run(at)


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_defaults_show_alexnet_costs_and_side_by_side(page):
    at = page
    assert at.selectbox(key="arch_model").value == "alexnet"
    assert metric(at, "Parameters") == "61,100,840"
    assert metric(at, "FLOPs per image") == "1.43 GFLOPs"
    assert at.selectbox(key="arch_left_model").value == "alexnet"
    assert at.selectbox(key="arch_right_model").value == "resnet18"
    table = at.table[0].value
    assert "61,100,840" in table.to_string() and "11,689,512" in table.to_string()
    assert at.dataframe, "the layer table is shown"
    assert any("features.0" in c.value for c in at.code) or at.expander, "the printed model is there"
    assert at.toggle(key="arch_opt_lrn").value is False


def test_se_toggle_changes_the_parameter_count(page):
    at = page
    at.selectbox(key="arch_model").set_value("alex_resnet")
    run(at)
    assert at.toggle(key="arch_opt_residual_1").value is True  # the preset
    assert at.toggle(key="arch_opt_se_2").value is False
    before = metric(at, "Parameters")
    at.toggle(key="arch_opt_se_2").set_value(True)
    run(at)
    after = metric(at, "Parameters")
    assert before != after
    delta = next(m.delta for m in at.metric if m.label == "Parameters")
    assert delta.startswith("+") and "vs default" in delta


def test_switching_architecture_resets_its_options(page):
    at = page
    at.selectbox(key="arch_model").set_value("alex_se")
    run(at)
    assert at.toggle(key="arch_opt_se_2").value is True
    at.selectbox(key="arch_model").set_value("alex_resnet")
    run(at)
    assert at.toggle(key="arch_opt_se_2").value is False
    at.selectbox(key="arch_model").set_value("cifar_resnet")
    run(at)
    assert at.segmented_control(key="arch_opt_shortcut").value in ("A", "B")
    assert at.selectbox(key="arch_opt_depth").value == 20
    assert at.number_input(key="arch_size").value == 32  # each architecture starts at its own size


def test_too_small_input_names_the_minimum_and_the_page_keeps_working(page):
    at = page
    at.number_input(key="arch_size").set_value(32)
    run(at)
    assert any("at least" in e.value and "63" in e.value for e in at.error), [e.value for e in at.error]
    assert not any(m.label == "Parameters" and m.value == "61,100,840" for m in at.metric[:1])
    assert at.table, "the side-by-side comparison still renders"
    at.number_input(key="arch_size").set_value(224)
    run(at)
    assert not at.error and metric(at, "Parameters") == "61,100,840"


def test_side_by_side_follows_its_selectboxes(page):
    at = page
    at.selectbox(key="arch_right_model").set_value("vgg16")
    run(at)
    assert "138,357,544" in at.table[0].value.to_string()
    at.number_input(key="arch_compare_size").set_value(16)
    run(at)
    assert any("at least" in e.value for e in at.error)
