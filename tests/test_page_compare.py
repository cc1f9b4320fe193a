"""The Compare page in AppTest: empty store, a seeded store's table, filters, charts, rename and delete."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest
from streamlit.testing.v1 import AppTest

from cnnviz.runs import RunStore
from cnnviz.training.config import TrainConfig

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "compare.py")
TIMEOUT = 120  # the first run imports pandas/altair; the gallery generates the shapes validation split
CLASSES = ["a", "b", "c"]


def _epochs(n: int, acc: float) -> list[dict]:
    return [{"epoch": e, "train_loss": 1.0 / e, "train_acc": acc - 0.1 + 0.02 * e, "val_loss": 1.2 / e,
             "val_acc": acc - 0.05 * (n - e), "val_top5": None, "lr": 0.01, "seconds": 2.0 + e,
             "images_per_sec": 50.0} for e in range(1, n + 1)]


def _finish(store: RunStore, config: TrainConfig, *, name: str, acc: float, preds=None, classes=CLASSES,
            status: str = "finished") -> int:
    run_id = store.create(config, name=name)
    store.record_start(run_id, params=10_000 * len(name), flops=1_000_000, classes=list(classes))
    n = len(classes)
    store.record_end(run_id, SimpleNamespace(
        status=status, message=None, epochs=_epochs(config.epochs, acc), best_val_acc=acc, best_epoch=config.epochs,
        train_seconds=3.0 * config.epochs, params=None, flops=None, classes=list(classes),
        confusion=[[3 if i == j else 1 for j in range(n)] for i in range(n)], per_class_acc=[acc] * n,
        checkpoint=None, val_predictions=preds))
    return run_id


@pytest.fixture
def seeded():
    """Three runs on shapes (two comparable image by image), one on cifar10, one that failed."""
    store = RunStore()
    ids = {
        "alex": _finish(store, TrainConfig(arch="alexnet_cifar", epochs=3), name="alex", acc=0.8),
        "resnet": _finish(store, TrainConfig(arch="cifar_resnet", mode="finetune", epochs=2), name="resnet", acc=0.9),
        "cifar": _finish(store, TrainConfig(arch="resnet18", dataset="cifar10", epochs=2), name="on cifar", acc=0.7),
    }
    ids["failed"] = store.create(TrainConfig(arch="vgg11"), name="broken")
    store.set_status(ids["failed"], "failed", "out of memory")
    return store, ids


def _run(at: AppTest) -> AppTest:
    at.run(timeout=TIMEOUT)
    assert not at.exception, at.exception
    return at


def _table_ids(at: AppTest) -> list[int]:
    return at.dataframe[0].value["id"].tolist()


def test_empty_store_points_to_train():
    at = _run(AppTest.from_file(PAGE, default_timeout=TIMEOUT))
    assert "No runs yet" in at.info[0].value
    assert not at.dataframe and not at.multiselect


def test_table_filters_and_export(seeded):
    store, ids = seeded
    at = _run(AppTest.from_file(PAGE, default_timeout=TIMEOUT))
    assert sorted(_table_ids(at)) == sorted(ids.values())
    table = at.dataframe[0].value
    assert {"name", "architecture", "options", "dataset", "mode", "status", "best val acc", "time (s)", "params",
            "FLOPs"} <= set(table.columns)

    at.multiselect(key="compare_filter_dataset").set_value(["cifar10"])
    _run(at)
    assert _table_ids(at) == [ids["cifar"]]

    at.multiselect(key="compare_filter_dataset").set_value([])
    at.multiselect(key="compare_filter_status").set_value(["finished"])
    at.text_input(key="compare_search").set_value("alexnet")
    _run(at)
    assert _table_ids(at) == [ids["alex"]]
    assert any("1 of 4 runs shown" in c.value for c in at.caption)


def test_chosen_runs_draw_curves_cost_and_confusions(seeded):
    store, ids = seeded
    at = _run(AppTest.from_file(PAGE, default_timeout=TIMEOUT))
    # By default the newest finished runs of the newest finished run's dataset: never a mix of datasets.
    assert at.multiselect(key="compare_runs").value == [ids["cifar"]]
    at.multiselect(key="compare_runs").set_value([ids["alex"], ids["resnet"], ids["cifar"]])
    _run(at)
    charts = at.get("vega_lite_chart")
    # two curves + one cost scatter + three confusion matrices
    assert len(charts) == 6, len(charts)
    # The cifar run validated on other images: the disagreement tab explains instead of comparing.
    assert any("cannot be compared image by image" in w.value for w in at.warning)

    at.radio(key="compare_curve_x").set_value("wall time")
    at.radio(key="compare_cost_axis").set_value("trainable parameters")
    at.multiselect(key="compare_runs").set_value([ids["alex"]])
    _run(at)
    assert len(at.get("vega_lite_chart")) == 4
    assert any("at least two runs" in i.value for i in at.info)


def test_disagreement_gallery_on_a_shared_validation_set():
    from cnnviz.ui import compare_view

    config = TrainConfig(arch="alexnet_cifar", epochs=1)
    # What the page will load (cached), so the test knows the true labels.
    val = compare_view._validation_images(config.to_json(), compare_view._display_size(config))
    truth = val.labels.tolist()
    n = len(val.classes)
    pred_a = list(truth)
    pred_b = list(truth)
    pred_a[0] = (truth[0] + 1) % n  # only B right
    pred_b[1] = (truth[1] + 1) % n  # only A right
    pred_a[2], pred_b[2] = (truth[2] + 1) % n, (truth[2] + 2) % n  # both wrong, differently
    store = RunStore()
    a = _finish(store, config, name="A", acc=0.9, preds=pred_a, classes=val.classes)
    b = _finish(store, config.replace(arch="cifar_resnet"), name="B", acc=0.9, preds=pred_b, classes=val.classes)

    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.session_state["compare_runs"] = [a, b]
    _run(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["only A right"] == "1" and metrics["only B right"] == "1"
    assert metrics["both wrong, differently"] == "1" and metrics["both right"] == str(len(truth) - 3)
    captions = [c for image in at.get("image") for c in image.captions]
    assert len(captions) == 3 and all(c.startswith("true ") for c in captions)

    at.radio(key="compare_disagree_kind").set_value("only A right")
    _run(at)
    assert any("1 images" in c.value for c in at.caption)


def test_rename_and_delete(seeded):
    store, ids = seeded
    at = _run(AppTest.from_file(PAGE, default_timeout=TIMEOUT))
    at.selectbox(key="compare_manage_run").set_value(ids["alex"])
    at.text_input(key="compare_rename_text").set_value("AlexNet baseline")
    at.button(key="compare_rename").click()
    _run(at)
    assert store.get(ids["alex"]).name == "AlexNet baseline"
    assert "AlexNet baseline" in at.dataframe[0].value["name"].tolist()
    assert any("now called" in s.value for s in at.success)

    at.selectbox(key="compare_manage_run").set_value(ids["cifar"])
    _run(at)
    assert at.button(key="compare_delete").disabled  # nothing is deleted without the confirmation
    at.checkbox(key="compare_delete_confirm").check()
    _run(at)
    at.button(key="compare_delete").click()
    _run(at)
    assert ids["cifar"] not in [r.id for r in store.list()]
    assert ids["cifar"] not in _table_ids(at)
    assert ids["cifar"] not in at.multiselect(key="compare_runs").value
    assert not at.checkbox(key="compare_delete_confirm").value


def test_a_student_renames_and_deletes_only_their_own_runs(seeded):
    """In a class everyone's runs share one store: Compare lists them all, each with its student,
    but a student can rename or delete only their own (and runs nobody owns)."""
    store, ids = seeded
    bobs = store.create(TrainConfig(epochs=1), name="bob's run", student="bob", status="finished")
    alices = store.create(TrainConfig(epochs=1), name="alice's run", student="alice", status="finished")
    spare = store.create(TrainConfig(epochs=1), name="alice's spare", student="alice", status="finished")
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.query_params["student"] = "alice"
    _run(at)
    table = at.dataframe[0].value
    assert dict(zip(table["id"], table["student"]))[bobs] == "bob"
    options = at.selectbox(key="compare_manage_run").options
    assert any(f"#{alices} " in o for o in options) and not any(f"#{bobs} " in o for o in options)
    assert any(f"#{ids['alex']} " in o for o in options)  # nobody's run
    at.selectbox(key="compare_manage_run").set_value(alices)
    at.checkbox(key="compare_delete_confirm").check()
    _run(at)
    with sqlite3.connect(store.path) as db:  # the run changes hands before the click: the click checks again
        db.execute("UPDATE runs SET student = 'bob' WHERE id = ?", (alices,))
    at.button(key="compare_delete").click()
    _run(at)
    assert alices in [r.id for r in store.list()]
    assert any("another student's" in w.value for w in at.warning)

    at.selectbox(key="compare_manage_run").set_value(spare)  # her own: deleted
    at.checkbox(key="compare_delete_confirm").check()
    _run(at)
    at.button(key="compare_delete").click()
    _run(at)
    assert spare not in [r.id for r in store.list()] and any("Deleted run" in m.value for m in at.success)


def test_a_failed_run_shows_dashes_and_why(seeded):
    store, ids = seeded
    at = _run(AppTest.from_file(PAGE, default_timeout=TIMEOUT))
    row = at.dataframe[0].value.set_index("id").loc[ids["failed"]]
    assert row["params"] == row["FLOPs"] == row["best val acc"] == "—"  # never a misleading 0 or None
    assert row["note"] == "failed before training"
    alex = at.dataframe[0].value.set_index("id").loc[ids["alex"]]
    assert alex["best val acc"] == "80.0%"  # one decimal, like every accuracy on the page
    at.multiselect(key="compare_runs").set_value([ids["alex"], ids["failed"]])
    _run(at)
    assert any("failed before training" in c.value for c in at.caption)
