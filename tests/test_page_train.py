"""The Train page in AppTest: set up, launch a tiny shapes run, watch it end, see results, reattach.

The run really trains in the app's worker process; the test polls the run store until it
has ended (no sleeps with timing assertions).
"""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from cnnviz.runs import RunStore

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT = 180  # the first run imports torch, generates shapes and measures the device once


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("CNNVIZ_OFFLINE", "1")  # a missing dataset must fail fast, not try the network
    monkeypatch.setenv("CNNVIZ_WORKERS", "1")  # the app trains in one worker process: a second run waits


def run(at: AppTest) -> AppTest:
    at.run(timeout=TIMEOUT)
    assert not at.exception, [(e.message, e.stack_trace[-3:]) for e in at.exception]
    return at


def open_train(query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(query or {})
    run(at)
    at.switch_page("pages/train.py")
    return run(at)


def wait_for_end(run_id: int, *, limit: float = 300) -> None:
    """Poll the store until the run has left queued/running (fails only if it never does)."""
    store, deadline = RunStore(), time.monotonic() + limit
    while store.get(run_id).active:
        assert time.monotonic() < deadline, f"run {run_id} still {store.get(run_id).status}"
        time.sleep(0.5)


def tiny(at: AppTest) -> AppTest:
    """A run that trains in seconds: 5 images per class, 1 epoch, 32 px."""
    at.number_input(key="train_subset").set_value(5)
    at.number_input(key="train_val_subset").set_value(3)
    at.number_input(key="train_epochs").set_value(1)
    at.number_input(key="train_image_size").set_value(32)
    return run(at)


def test_setup_widgets_defaults_and_estimate():
    at = open_train()
    assert at.selectbox(key="train_dataset").value == "shapes"
    assert at.selectbox(key="train_model").value == "cifar_resnet"  # the default recipe's ResNet-20 (shapes-1min)
    assert at.segmented_control(key="train_mode").value == "scratch"
    labels = {m.label: m.value for m in at.metric}
    assert labels["Parameters"] and labels["FLOPs per image"].endswith("FLOPs")
    assert labels["Time per epoch (estimate)"].startswith("~")
    assert at.get("image"), "sample images"
    assert any("10 classes" in m.value for m in at.markdown), "class counts"
    # A recipe follows the mode: fine-tuning starts from a smaller learning rate.
    at.segmented_control(key="train_mode").set_value("finetune")
    run(at)
    assert at.select_slider(key="train_lr").value == 0.001
    assert at.radio(key="train_init").value in ("run", "imagenet")
    at.segmented_control(key="train_mode").set_value("probe")
    run(at)
    assert at.selectbox(key="train_probe_layer").value != "input"
    assert any(m.label == "First epoch (estimate)" for m in at.metric), "probe features are computed once"


def test_the_page_says_how_many_images_a_run_validates_on():
    from cnnviz.jobs.estimates import split_sizes
    from cnnviz.recipes import default_config

    def said(at: AppTest) -> str:
        lines = [m.value for m in at.markdown if "validates on" in m.value]
        assert len(lines) == 1, [m.value for m in at.markdown]
        return lines[0]

    at = open_train()
    train, val = split_sizes(default_config())  # shapes: 50 validation images per class, 10 classes
    assert f"trains on {train:,} images and validates on **{val:,}**" in said(at)
    at.number_input(key="train_val_subset").set_value(20)
    run(at)
    assert "validates on **200** (20 per class " in said(at)


def test_initial_form_is_the_command_lines_default():
    """The widgets first show ``recipes.default_config``, which is also what ``python -m cnnviz train`` runs."""
    from cnnviz import recipes
    from cnnviz.cli import build_parser
    from cnnviz.cli.train import config_from_args
    from cnnviz.models import resolve_options
    from cnnviz.ui import logic

    at = open_train()
    default = recipes.default_config(dataset="shapes")
    assert config_from_args(build_parser().parse_args(["train", "--dataset", "shapes"])) == default
    for key, value in logic.widget_values(default).items():
        assert at.session_state[key] == value, key
    options = {k[len("train_opt_"):]: at.session_state[k] for k in at.session_state
               if k.startswith("train_opt_")}
    shown = logic.build_train_config({k: at.session_state[k] for k in at.session_state}, options=options)
    assert shown.replace(options={}) == default.replace(options={})
    assert resolve_options(shown.arch, shown.options) == resolve_options(default.arch, default.options)


def test_launch_watch_results_and_reattach():
    at = tiny(open_train())
    at.button(key="train_launch").click()
    run(at)
    run_id = at.session_state["train_run_id"]
    assert at.query_params["run"] == str(run_id)
    assert at.button(key="train_stop"), "the live panel shows a Stop button"
    assert at.get("progress"), "and a progress bar"
    at.run(timeout=TIMEOUT)  # a rerun must not start the run again
    assert [r.id for r in RunStore().list()] == [run_id]

    wait_for_end(run_id)
    run(at)
    assert RunStore().get(run_id).status == "finished"
    assert any(s.value.startswith("Finished") for s in at.success)
    assert any(m.label == "Best val accuracy" for m in at.metric)
    assert at.selectbox(key=f"train_cell_{run_id}").value, "a confusion cell is selected"
    for key in ("train_dl_checkpoint", "train_dl_card", "train_dl_csv"):
        assert at.get("download_button") and any(b.key == key for b in at.get("download_button")), key
    captions = [c for img in at.get("image") for c in img.captions]
    assert any(c.startswith("said ") and " / is " in c for c in captions), "val images with predicted/true labels"

    fresh = open_train({"run": str(run_id)})  # a new tab on the same URL reattaches
    assert fresh.session_state["train_run_id"] == run_id
    assert any(s.value.startswith("Finished") for s in fresh.success)
    fresh.button(key="train_detach").click()
    run(fresh)
    assert "train_run_id" not in fresh.session_state and "run" not in fresh.query_params

    # "Train again" fills the form with the finished run's settings (here: its subset and epochs).
    at.button(key="train_again").click()
    run(at)
    assert "train_run_id" not in at.session_state
    assert at.number_input(key="train_subset").value == 5 and at.number_input(key="train_val_subset").value == 3
    assert at.number_input(key="train_epochs").value == 1 and at.button(key="train_launch")


def test_unknown_run_in_url_is_reported_not_crashed():
    at = open_train({"run": "999"})
    assert any("999" in w.value for w in at.warning)
    assert at.button(key="train_launch")


def test_missing_dataset_says_how_to_get_it():
    at = open_train()
    at.selectbox(key="train_dataset").set_value("hymenoptera")
    run(at)
    assert any("hymenoptera_data.zip" in e.value for e in at.error), [e.value for e in at.error]
    assert not [b for b in at.button if b.key == "train_launch"], "the page stops before the launch button"
    at.selectbox(key="train_dataset").set_value("shapes")
    run(at)
    assert at.button(key="train_launch")


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (20, 20), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def test_folder_upload_bad_and_good_zip():
    at = open_train()
    at.selectbox(key="train_dataset").set_value("folder")
    run(at)
    assert at.file_uploader(key="train_upload")
    at.file_uploader(key="train_upload").set_value(("pets.zip", b"this is not a zip", "application/zip"))
    run(at)
    assert any("not a .zip archive" in e.value for e in at.error), [e.value for e in at.error]

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for cls in ("cats", "dogs"):
            for i in range(5):
                zf.writestr(f"pets/{cls}/{i}.png", png())
    at.file_uploader(key="train_upload").set_value(("pets.zip", buf.getvalue(), "application/zip"))
    run(at)
    assert not at.error, [e.value for e in at.error]
    assert any("2 classes" in m.value for m in at.markdown)
    assert at.button(key="train_launch")


def test_busy_device_queue_double_click_guard_and_stop():
    from cnnviz.training.config import TrainConfig
    from cnnviz.jobs import get_manager

    manager, store = get_manager(), RunStore()
    blocker = manager.submit(TrainConfig(arch="alexnet_cifar", epochs=50, subset=50, val_subset=5, image_size=32))
    try:
        at = tiny(open_train())
        at.button(key="train_launch").click()
        run(at)
        queued = at.session_state["train_run_id"]
        assert manager.status(queued).state == "queued"
        assert any("Queued" in p.proto.text for p in at.get("progress")), "the queue position is shown"
        at.button(key="train_launch").click()  # the same settings again while it waits: no second run
        run(at)
        assert at.session_state["train_run_id"] == queued
        assert sorted(r.id for r in store.list()) == [blocker, queued]
        at.button(key="train_stop").click()
        run(at)
        assert store.get(queued).status == "stopped"

        watcher = open_train({"run": str(blocker)})  # another tab watching the running blocker
        watcher.button(key="train_stop").click()
        run(watcher)
    finally:
        manager.stop(blocker)
        wait_for_end(blocker)
    assert store.get(blocker).status == "stopped"


def test_train_again_fills_any_config_and_diverged_runs_say_what_to_do():
    from types import SimpleNamespace

    from cnnviz.training.config import TrainConfig

    store = RunStore()
    config = TrainConfig(arch="alex_se", options={"se_1": True}, mode="finetune", init="none", lr=0.007,
                         batch_size=48, epochs=2, subset=4, val_subset=2, image_size=40, augment="cifar", seed=3)
    run_id = store.create(config)
    store.record_start(run_id, params=1, flops=1, classes=["a", "b"])
    store.record_end(run_id, SimpleNamespace(
        status="diverged", message="loss became nan in epoch 1", epochs=[], best_val_acc=None, best_epoch=None,
        train_seconds=1.0, params=None, flops=None, classes=["a", "b"], confusion=None, per_class_acc=None,
        checkpoint=None, val_predictions=None))
    at = open_train({"run": str(run_id)})
    assert any("lower the learning rate" in e.value for e in at.error)
    at.button(key="train_again").click()
    run(at)
    assert at.selectbox(key="train_model").value == "alex_se"
    assert at.toggle(key="train_opt_se_1").value is True and at.toggle(key="train_opt_se_2").value is True
    assert at.select_slider(key="train_lr").value == 0.007 and at.select_slider(key="train_batch_size").value == 48
    assert at.segmented_control(key="train_mode").value == "finetune" and at.radio(key="train_init").value == "none"
    assert (at.number_input(key="train_image_size").value, at.selectbox(key="train_augment").value) == (40, "cifar")
    assert not at.warning, [w.value for w in at.warning]  # no "default value and Session State" clashes


def test_every_setting_of_the_schema_has_a_widget_a_student_can_change():
    """A field the widget table maps (``ui`` set) is drawn on the page, so a recipe's trick can be switched off."""
    from cnnviz.ui import logic

    at = open_train()
    drawn = {w.key for kind in ("number_input", "selectbox", "select_slider", "toggle", "text_input")
             for w in getattr(at, kind)}
    missing = [logic.widget_key(f) for f in logic.form_fields() if logic.widget_key(f) not in drawn]
    assert not missing, f"no widget on the Train page for {missing}"


def test_choosing_a_recipe_fills_the_form():
    from cnnviz import recipes
    from cnnviz.ui import logic

    at = open_train()
    at.selectbox(key="train_model").set_value("alexnet_cifar")
    run(at)
    at.number_input(key="train_epochs").set_value(2)
    run(at)
    at.selectbox(key="train_recipe").set_value("shapes-1min")
    run(at)
    recipe = recipes.named_recipe("shapes-1min").config()
    for key, value in logic.widget_values(recipe).items():
        assert at.session_state[key] == value, key
    assert at.selectbox(key="train_model").value == "cifar_resnet" and at.number_input(key="train_epochs").value == 5
    assert at.select_slider(key="train_lr").value == 0.01 and at.selectbox(key="train_optimizer").value == "adam"

    at.selectbox(key="train_recipe").set_value("hymenoptera-freeze")  # the data is not here: the page says so
    run(at)
    assert (at.session_state["train_dataset"], at.session_state["train_model"], at.session_state["train_mode"],
            at.session_state["train_init"]) == ("hymenoptera", "resnet18", "freeze", "imagenet")
    assert at.session_state["train_batch_size"] == 4 and at.session_state["train_scheduler"] == "step"
    assert any("hymenoptera_data.zip" in e.value for e in at.error)


def test_a_new_dataset_starts_from_its_own_architecture():
    at = open_train()
    at.selectbox(key="train_dataset").set_value("folder")
    run(at)
    assert (at.session_state["train_model"], at.session_state["train_mode"]) == ("resnet18", "finetune")
    at.selectbox(key="train_dataset").set_value("shapes")
    run(at)
    assert at.selectbox(key="train_model").value == "cifar_resnet"
    assert at.segmented_control(key="train_mode").value == "scratch"


def test_random_backbone_freeze_is_refused_and_random_finetune_says_scratch():
    at = tiny(open_train())
    at.segmented_control(key="train_mode").set_value("freeze")
    run(at)
    at.radio(key="train_init").set_value("none")
    run(at)
    assert any("random features" in e.value and "earlier run" in e.value for e in at.error), [e.value for e in at.error]
    at.button(key="train_launch").click()
    run(at)
    assert any(e.value.startswith("This run cannot start") for e in at.error)
    assert RunStore().list() == [] and "train_run_id" not in at.session_state

    at.segmented_control(key="train_mode").set_value("finetune")
    run(at)
    at.radio(key="train_init").set_value("none")
    run(at)
    assert any("training from scratch" in i.value for i in at.info), [i.value for i in at.info]
    assert not at.error, [e.value for e in at.error]


def test_a_weights_file_that_does_not_fit_is_refused_before_it_is_queued():
    import torch

    from cnnviz.models import get_model

    buffer = io.BytesIO()
    torch.save(get_model("softmax", num_classes=10).state_dict(), buffer)  # weights of another network
    at = tiny(open_train())
    at.segmented_control(key="train_mode").set_value("finetune")
    run(at)
    at.radio(key="train_init").set_value("file")
    run(at)
    at.file_uploader(key="train_weights_upload").set_value(("wrong.pt", buffer.getvalue(), "application/octet-stream"))
    run(at)
    at.button(key="train_launch").click()
    run(at)
    refused = [e.value for e in at.error if e.value.startswith("This run cannot start")]
    assert refused and "wrong.pt" in refused[0], [e.value for e in at.error]
    assert RunStore().list() == [] and "train_run_id" not in at.session_state


def test_find_a_learning_rate_fills_the_lr():
    at = open_train()
    at.number_input(key="train_subset").set_value(10)
    at.number_input(key="train_val_subset").set_value(2)
    run(at)
    at.button(key="train_lr_find").click()
    run(at)
    found = at.session_state["train_lr_found"]
    assert found["suggested_lr"] and len(found["lrs"]) == len(found["losses"]) >= 2
    assert at.select_slider(key="train_lr").value == float(f"{found['suggested_lr']:.2g}")
    assert any(c.value.startswith("Suggested learning rate") for c in at.caption)
    assert at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart"), "the loss-against-lr chart"
    assert RunStore().list() == [], "the sweep stores no run"


def test_a_run_stopped_before_its_first_epoch_kept_nothing_and_names_its_upload():
    from types import SimpleNamespace

    from cnnviz.training.config import TrainConfig

    store = RunStore()
    config = TrainConfig(arch="resnet18", dataset="folder", data_path="/uploads/6e52aaac321f60a0/pets.zip",
                         mode="finetune", epochs=3)
    run_id = store.create(config)
    store.record_start(run_id, params=1, flops=1, classes=["cats", "dogs"])
    store.record_end(run_id, SimpleNamespace(
        status="stopped", message="stopped by request after 0 finished epoch(s)", epochs=[], best_val_acc=None,
        best_epoch=None, train_seconds=1.0, params=None, flops=None, classes=["cats", "dogs"], confusion=None,
        per_class_acc=None, checkpoint=None, val_predictions=None))
    at = open_train({"run": str(run_id)})
    warnings = [w.value for w in at.warning]
    assert any("nothing was kept" in w for w in warnings) and not any("best epoch" in w for w in warnings), warnings
    assert any("on pets.zip" in c.value for c in at.caption), [c.value for c in at.caption]


def test_switching_mode_keeps_typed_values_and_offers_the_recipes():
    at = open_train()
    assert at.selectbox(key="train_optimizer").value == "adam"  # scratch on shapes: Adam, one-cycle
    at.number_input(key="train_epochs").set_value(2)
    at.select_slider(key="train_lr").set_value(0.05)
    run(at)
    at.segmented_control(key="train_mode").set_value("finetune")
    run(at)
    assert at.number_input(key="train_epochs").value == 2 and at.select_slider(key="train_lr").value == 0.05
    assert at.selectbox(key="train_optimizer").value == "sgd", "an untouched field follows the new recipe"
    notes = [c.value for c in at.caption if c.value.startswith("Kept your")]
    assert notes and "epochs 2" in notes[0] and "lr 0.05" in notes[0] and "finetune on shapes" in notes[0], notes
    at.button(key="train_use_recipe").click()
    run(at)
    assert at.select_slider(key="train_lr").value == 0.001
    assert not [c for c in at.caption if c.value.startswith("Kept your")]
    at.segmented_control(key="train_mode").set_value("scratch")  # now untouched again: the recipe fills it
    run(at)
    assert at.select_slider(key="train_lr").value == 0.01 and at.selectbox(key="train_optimizer").value == "adam"


def _zip(classes: tuple[str, ...]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for cls in classes:
            for i in range(5):
                zf.writestr(f"pics/{cls}/{i}.png", png())
    return buf.getvalue()


def test_a_new_upload_replaces_the_last_summary_and_names_the_file():
    at = open_train()
    at.selectbox(key="train_dataset").set_value("folder")
    run(at)
    at.file_uploader(key="train_upload").set_value(("pets.zip", _zip(("cats", "dogs")), "application/zip"))
    run(at)
    assert any("pets.zip" in m.value and "2 classes" in m.value for m in at.markdown)
    at.file_uploader(key="train_upload").set_value(("birds.zip", _zip(("crows", "owls", "tits")), "application/zip"))
    run(at)
    summaries = [m.value for m in at.markdown if "classes" in m.value and "training images" in m.value]
    assert len(summaries) == 1 and "birds.zip" in summaries[0] and "3 classes" in summaries[0], summaries
    assert "birds.zip" in at.text_input(key="train_name").placeholder


def test_a_cached_feature_run_says_its_epochs_time_the_head_only():
    from types import SimpleNamespace

    from cnnviz.training.config import TrainConfig

    store = RunStore()
    run_id = store.create(TrainConfig(arch="resnet18", mode="freeze", init="imagenet", epochs=1))
    store.record_start(run_id, params=1, flops=1, classes=["a", "b"])
    row = {"epoch": 1, "train_loss": 0.5, "train_acc": 0.8, "val_loss": 0.6, "val_acc": 0.7, "lr": 0.001,
           "seconds": 0.01, "images_per_sec": 316224.0}
    store.record_epoch(run_id, row)
    store.record_end(run_id, SimpleNamespace(
        status="finished", message="", epochs=[row], best_val_acc=0.7, best_epoch=1, train_seconds=30.0,
        params=None, flops=None, classes=["a", "b"], confusion=None, per_class_acc=None, checkpoint=None,
        val_predictions=None))
    at = open_train({"run": str(run_id)})
    assert any("(head only, on cached features)" in c.value for c in at.caption), [c.value for c in at.caption]
    time_metric = next(m for m in at.metric if m.label == "Training time")
    assert "30 s of it outside the epochs" in time_metric.help
