"""AppTest for the Experiments page: every card renders, Launch queues a named group in the run store,
and a finished group's results (tables, conclusions, charts) render from the store alone."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from streamlit.testing.v1 import AppTest

from cnnviz import experiments as ex
from cnnviz.runs import RunStore

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "experiments.py")
TAB = "experiment_tab"


class FakeManager:
    """Stores submitted runs as queued, like the job manager, but never trains them."""

    def __init__(self, store):
        self.store = store

    def submit(self, config, *, name=None, **tags):
        return self.store.create(config, name=name, status="queued", **tags)

    def status(self, run_id):
        from cnnviz.jobs import JobStatus

        return JobStatus("queued", 1)

    def stop(self, run_id):
        self.store.set_status(run_id, "stopped", "stopped before it started")
        return True


@pytest.fixture(autouse=True)
def no_training(monkeypatch):
    """No background training and no speed measurement: a fixed throughput and a fake job manager."""
    import cnnviz.jobs as jobs
    import cnnviz.recipes as recipes

    monkeypatch.setattr(recipes, "measure_flops_per_second", lambda **kwargs: 5e10)
    monkeypatch.setattr(jobs, "get_manager", lambda store=None: FakeManager(store or RunStore()))


def _labels():
    return [f"{e.number}. {e.short_title}" for e in map(ex.get_experiment, ex.list_experiments())]


def _open(key: str | None = None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    if key:
        at.session_state[TAB] = _labels()[ex.list_experiments().index(key)]
    return at.run()


@pytest.mark.parametrize("key", ex.list_experiments())
def test_every_card_renders_with_its_question_estimate_and_launch_button(key):
    at = _open(key)
    assert not at.exception, at.exception
    exp = ex.get_experiment(key)
    text = " ".join(m.value for m in at.markdown)
    assert exp.question in text and "Estimated total on this device" in text
    assert at.button(key=f"{key}_launch").label.startswith("Launch")
    assert at.radio(key=f"{key}_size").value == "quick"
    if exp.pretrained_archs:  # no ImageNet weights here: the card offers a stand-in per architecture
        assert at.selectbox(key=f"{key}_init_{exp.pretrained_archs[0]}").value == "none"
        assert any("ImageNet weights are not on this machine" in i.value for i in at.info)


def test_missing_dataset_offers_a_stand_in():
    at = _open("exp4")  # the test data folder is empty: CIFAR-100 is missing
    assert not at.exception
    assert any("CIFAR-100 is not in the data folder" in w.value for w in at.warning)
    box = at.selectbox(key="exp4_dataset")
    assert box.value == "shapes" or box.value == "cifar10"
    # A launch on the missing dataset would only queue runs that fail on an offline download.
    assert not any("cifar100" in option for option in box.options)


def test_missing_dataset_without_a_stand_in_offers_no_launch(monkeypatch):
    import streamlit as st

    real = ex.dataset_problem
    monkeypatch.setattr(ex, "dataset_problem", lambda name, **kw: real(name, **kw) or "stand-in files missing too")
    st.cache_data.clear()  # the view caches presence checks for 30 s
    try:
        at = _open("exp4")  # CIFAR-100 missing, and (patched) every stand-in too
        assert not at.exception
        assert not [b for b in at.button if b.key == "exp4_launch"]
        assert any("prefetch --datasets cifar100" in i.value for i in at.info)
    finally:
        st.cache_data.clear()


def test_launch_queues_the_group_in_the_store_and_the_page_finds_it_again():
    at = _open("exp1")
    at.button(key="exp1_launch").click().run()
    assert not at.exception, at.exception
    at.button(key="exp1_launch").click().run()  # a double click queues nothing more
    runs = sorted(RunStore().list(), key=lambda r: r.id)
    assert [r.name for r in runs] == ["exp1#1/alexnet-finetune", "exp1#1/alexnet-freeze",
                                      "exp1#1/resnet18-finetune", "exp1#1/resnet18-freeze"]
    assert {r.config.dataset for r in runs} == {"shapes"}, "hymenoptera is missing: its stand-in was used"
    assert {r.config.init for r in runs} == {"none"}
    again = _open("exp1")  # a new session (closed tab): the group is read back from the store
    assert not again.exception
    assert any("Your results" in m.value for m in again.markdown)
    assert again.button(key="exp1_stop")
    again.button(key="exp1_stop").click().run()
    assert {r.status for r in RunStore().list()} == {"stopped"}


def _finish(store, exp, plan, *, group=1, acc, seconds, epochs, confusion=None, classes=None):
    name = ex.run_name(exp, group, plan)
    run_id = store.create(plan.config.replace(name=name), name=name, status="running", experiment=exp.key,
                          group=group, run_key=plan.key, label=plan.label)
    result = SimpleNamespace(status="finished", message=None, train_seconds=seconds, params=1000, flops=10 ** 8,
                             classes=classes or [], best_val_acc=acc, best_epoch=len(epochs), confusion=confusion,
                             per_class_acc=None, val_predictions=None, checkpoint=None, epochs=epochs)
    store.record_end(run_id, result)
    return run_id


def _rows(losses, norms=None):
    return [{"epoch": i + 1, "train_loss": loss, "train_acc": 0.5, "val_loss": loss, "val_acc": 0.5, "seconds": 10.0,
             **({"grad_norms": norms} if norms else {})} for i, loss in enumerate(losses)]


def test_finished_degradation_group_shows_conclusions_and_gradient_chart():
    store = RunStore()
    exp = ex.get_experiment("exp6")
    accs = {"plain-20": 0.6, "plain-56": 0.45, "resnet-20": 0.62, "resnet-56": 0.66, "resnet-56-B": 0.65}
    for plan in exp.plan(ex.Choices()):
        norms = {"conv1": 0.01, "layer1": 0.1, "fc": 1.0} if plan.key.startswith("plain") else {"conv1": 0.6, "layer1": 0.8, "fc": 1.0}
        loss = [2.0, 1.7] if plan.key == "plain-56" else [1.6, 1.2]
        _finish(store, exp, plan, acc=accs[plan.key], seconds=60, epochs=_rows(loss, norms))
    at = _open("exp6")
    assert not at.exception, at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "plain-56 vs plain-20: 0.450 vs 0.600" in text and "degradation" in text
    assert at.multiselect(key="exp6_grad_runs").value == ["plain-56", "resnet-56"]
    assert len(at.get("vega_lite_chart")) >= 2


def test_finished_fine_group_rolls_up_the_confusion_matrix():
    store = RunStore()
    exp = ex.get_experiment("exp4")
    classes = list(ex.CIFAR10_SUPERCLASSES)
    confusion = [[8 if i == j else (1 if ex.CIFAR10_SUPERCLASSES[a] == ex.CIFAR10_SUPERCLASSES[b] and abs(i - j) == 1 else 0)
                  for j, b in enumerate(classes)] for i, a in enumerate(classes)]
    for plan in exp.plan(ex.Choices(dataset="cifar10")):
        _finish(store, exp, plan, acc=0.5, seconds=30, epochs=_rows([1.5]), confusion=confusion, classes=classes)
    at = _open("exp4")
    assert not at.exception, at.exception
    assert at.selectbox(key="exp4_confusion_run")
    assert any(m.label == "errors in the right superclass" and m.value == "100%" for m in at.metric)
    assert any("landed in the right superclass" in m.value for m in at.markdown)
