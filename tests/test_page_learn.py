"""AppTest for the Learn page: every topic renders; SE gates and filters come from a real trained run."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "learn.py")
TOPICS = ["AlexNet's ingredients", "Residual networks", "Squeeze-and-excitation", "Losses for two classes",
          "Inside a trained run"]


def _open(topic: str) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["learn_topic"] = topic
    return at.run()


@pytest.mark.parametrize("topic", TOPICS)
def test_every_topic_renders_without_runs(topic):
    at = _open(topic)
    assert not at.exception, at.exception
    if topic in ("Squeeze-and-excitation", "Inside a trained run"):
        assert any("Train page" in i.value or "Train" in i.value for i in at.info), "says how to get a run"


def test_demo_widgets_change_the_numbers():
    at = _open("AlexNet's ingredients")
    before = [m.value for m in at.metric]
    at.slider(key="learn_relu_scale").set_value(8.0).run()
    assert not at.exception
    assert [m.value for m in at.metric] != before
    at.slider(key="learn_dropout_p").set_value(0.9).run()
    assert not at.exception
    losses = _open("Losses for two classes")
    assert any("Rows where BCE on σ(z) is wrong (z = 40)" in c.value for c in losses.caption)
    res = _open("Residual networks")
    res.select_slider(key="learn_bottleneck_channels").set_value(512).run()
    assert any(m.value == "4,718,592" for m in res.metric)


@pytest.fixture
def se_run():
    """A tiny AlexSE trained for one epoch on shapes, stored with its checkpoint."""
    from cnnviz.runs import RunStore
    from cnnviz.training import TrainConfig, train

    config = TrainConfig(arch="alex_se", options={"se_1": True, "se_2": True}, dataset="shapes", epochs=1,
                         batch_size=16, subset=3, val_subset=2, image_size=32, name="tiny alexse")
    store = RunStore()
    run_id = store.create(config, status="running")
    store.record_end(run_id, train(config))
    return run_id


def test_se_gates_and_filters_of_a_trained_run(se_run):
    at = _open("Squeeze-and-excitation")
    assert not at.exception, at.exception
    assert at.selectbox(key="learn_se_run").value == se_run
    assert at.get("vega_lite_chart"), "a gate chart per SE block"
    assert len(at.dataframe) == 1
    maps = _open("Inside a trained run")
    assert not maps.exception, maps.exception
    assert maps.selectbox(key="learn_maps_run").value == se_run
    assert len(maps.get("image")) >= 2, "the filter grid and the feature maps"
    maps.selectbox(key="learn_maps_layer").set_value(maps.selectbox(key="learn_maps_layer").options[-1]).run()
    assert not maps.exception, maps.exception


def test_optimiser_text_is_the_train_pages_actual_default():
    from cnnviz import learn, recipes

    at = _open("AlexNet's ingredients")
    config = recipes.default_config()
    text = next(m.value for m in at.markdown if "Train page's first run" in m.value)
    assert config.describe() in text
    differ = [k for k, v in learn.ALEXNET_OPTIMISER.items() if getattr(config, k) != v]
    for key in differ:
        assert f"`{key}`" in text.split("differs in")[1]
    assert "uses the same defaults" not in text
    table = next(d.value for d in at.dataframe if "AlexNet paper" in d.value.columns)
    assert table.set_index("setting").loc["scheduler", "here"] == config.scheduler


def test_losses_at_logit_scale_30_say_how_far_float32_is():
    at = _open("Losses for two classes")
    at.slider(key="learn_loss_margin").set_value(30.0).run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    losses = table.drop(columns=["logit z", "target y", "sigmoid(z)"])
    assert not losses.map(lambda v: str(v).startswith("-")).any().any(), "no -0"
    note = next(c.value for c in at.caption if "are the same loss" in c.value)
    assert "of the exact value" in note and "z = 15" in note
    assert any("(z = 15, z = 40)" in c.value for c in at.caption), "the naive form is wrong at z = 15 and 40"
