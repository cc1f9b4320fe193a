"""The plain-Python logic behind the pages: progress/ETA/queue text, statuses, uploads, configs, recipes."""

from __future__ import annotations

import io
import zipfile

import pytest

from cnnviz import recipes
from cnnviz.models import get_spec, list_models
from cnnviz.training.config import MODES, TrainConfig
from cnnviz.ui import logic

# -- progress, ETA and the queue --------------------------------------------------------------


def batches(epoch_sizes: list[int]) -> list[dict]:
    """Batch rows as the store returns them: ``epoch_sizes[i]`` batches in epoch i+1."""
    rows, step = [], 0
    for epoch, n in enumerate(epoch_sizes, start=1):
        for _ in range(n):
            step += 1
            rows.append({"step": step, "epoch": epoch, "loss": 1.0})
    return rows


def test_queued_shows_position():
    p = logic.run_progress(status="queued", epochs_total=3, epoch_rows=[], batch_rows=[], started_at=None,
                           now=100.0, queue_position=3)
    assert p.fraction == 0 and "position 3" in p.text
    p = logic.run_progress(status="queued", epochs_total=3, epoch_rows=[], batch_rows=[], started_at=None,
                           now=100.0, queue_position=1)
    assert "next in line" in p.text


def test_running_before_first_batch_says_preparing():
    p = logic.run_progress(status="running", epochs_total=3, epoch_rows=[], batch_rows=[], started_at=0.0, now=5.0)
    assert p.fraction == 0 and "Preparing" in p.text


def test_first_epoch_uses_expected_batches_and_gives_eta():
    p = logic.run_progress(status="running", epochs_total=2, epoch_rows=[], batch_rows=batches([5]),
                           started_at=0.0, now=10.0, expected_batches=10)
    assert p.fraction == pytest.approx(0.25)
    assert "Epoch 1 of 2, batch 5 of 10" in p.text
    assert p.eta_seconds == pytest.approx(30.0) and "30 s left" in p.text


def test_later_epochs_use_the_measured_batch_count():
    rows = batches([4, 2])
    assert logic.batches_per_epoch(rows) == 4
    p = logic.run_progress(status="running", epochs_total=4, epoch_rows=[{"epoch": 1}], batch_rows=rows,
                           started_at=0.0, now=30.0, expected_batches=99)
    assert p.fraction == pytest.approx((1 + 0.5) / 4)
    assert "Epoch 2 of 4, batch 2 of 4" in p.text


def test_after_the_last_epoch_the_run_says_it_is_testing_and_saving():
    """Not "Epoch 5 of 5, batch 0 of 47; about 0 s left" while the test set is evaluated."""
    p = logic.run_progress(status="running", epochs_total=2, epoch_rows=[{"epoch": 1}, {"epoch": 2}],
                           batch_rows=batches([4, 4]), started_at=0.0, now=30.0)
    assert p.fraction == 1.0 and p.text.startswith("All 2 epochs done") and "test set" in p.text
    assert "batch" not in p.text
    p = logic.run_progress(status="running", epochs_total=2, epoch_rows=[{"epoch": 1}, {"epoch": 2}],
                           batch_rows=batches([4, 4]), started_at=0.0, now=30.0, stopping=True)
    assert p.text.startswith("Stopping... All 2 epochs done")


def test_first_epoch_without_a_batch_count_still_reports():
    p = logic.run_progress(status="running", epochs_total=3, epoch_rows=[], batch_rows=batches([3]),
                           started_at=0.0, now=1.0)
    assert p.fraction == 0 and "batch 3" in p.text and p.eta_seconds is None


def test_stopping_and_terminal_states():
    p = logic.run_progress(status="running", epochs_total=2, epoch_rows=[], batch_rows=batches([1]),
                           started_at=0.0, now=1.0, expected_batches=2, stopping=True)
    assert p.text.startswith("Stopping")
    p = logic.run_progress(status="finished", epochs_total=2, epoch_rows=[{}, {}], batch_rows=[], started_at=0.0,
                           now=1.0)
    assert p.fraction == 1.0
    p = logic.run_progress(status="stopped", epochs_total=4, epoch_rows=[{}], batch_rows=[], started_at=0.0, now=1.0)
    assert p.fraction == 0.25 and "1 of 4" in p.text


@pytest.mark.parametrize("status,level,words", [
    ("finished", "success", "Finished"), ("stopped", "warning", "best epoch"),
    ("diverged", "error", "lower the learning rate"), ("interrupted", "warning", "launch it again"),
    ("failed", "error", "disk full"),
])
def test_status_messages_tell_what_to_do(status, level, words):
    got_level, text = logic.status_message(status, "disk full" if status == "failed" else None)
    assert got_level == level and words in text


@pytest.mark.parametrize("status", ["stopped", "interrupted"])
def test_a_run_ended_before_its_first_epoch_kept_nothing(status):
    level, text = logic.status_message(status, "stopped by request after 0 finished epoch(s)", epochs_done=0)
    assert level == "warning" and "nothing was kept" in text and "best epoch" not in text
    assert "best epoch so far is kept" in logic.status_message("stopped", epochs_done=1)[1]


@pytest.mark.parametrize("value,expected", [("3", 3), (4, 4), (" 7 ", 7), ("x", None), ("0", None), ("-2", None),
                                            (None, None), (True, None)])
def test_parse_run_id(value, expected):
    assert logic.parse_run_id(value) == expected


def test_terminal_statuses_and_small_helpers():
    assert set(logic.TERMINAL) == {"finished", "stopped", "diverged", "failed", "interrupted"}
    assert logic.signed_delta(1580, 1000, str) == "+580 vs default"
    assert logic.signed_delta(900, 1000, str) == "-100 vs default"
    assert logic.signed_delta(5, 5, str) is None and logic.signed_delta(None, 5, str) is None
    assert logic.options_key({"b": 1, "a": True}) == logic.options_key({"a": True, "b": 1})


# -- uploads -----------------------------------------------------------------------------------


def make_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("cats/a.png", b"not really a png")
    return buf.getvalue()


def test_save_upload_stores_by_hash_once(tmp_path):
    data = make_zip()
    first = logic.save_upload(data, folder=tmp_path / "uploads", filename="pets.zip")
    again = logic.save_upload(data, folder=tmp_path / "uploads", filename="other-name.zip")
    assert first == again and first.suffix == ".zip" and first.read_bytes() == data
    assert not list((tmp_path / "uploads").glob("*.part"))


@pytest.mark.parametrize("data,words", [(b"", "empty"), (b"PK but not a zip", "not a .zip archive")])
def test_save_upload_refuses_bad_zip(tmp_path, data, words):
    with pytest.raises(logic.UploadError, match=words):
        logic.save_upload(data, folder=tmp_path, filename="pets.zip")
    assert not any(tmp_path.iterdir())


def test_save_upload_weights_keeps_suffix(tmp_path):
    path = logic.save_upload(b"\x80\x02weights", folder=tmp_path, filename="alexnet.PTH", kind="weights")
    assert path.suffix == ".pth"


# -- the one function that builds a TrainConfig from the Train page's widgets -----------------------

BASE = {"train_dataset": "shapes", "train_model": "alexnet_cifar", "train_mode": "scratch", "train_epochs": 2,
        "train_batch_size": 32, "train_lr": 0.01, "train_optimizer": "sgd", "train_image_size": 32,
        "train_subset": 0, "train_val_subset": 5, "train_augment": "none", "train_name": "  my run "}


def test_nesterov_left_on_is_dropped_when_the_optimiser_is_not_sgd_with_momentum():
    """The toggle is greyed out for Adam or momentum 0; a value left on from a recipe must not block the run."""
    on = {**BASE, "train_nesterov": True, "train_momentum": 0.85}
    assert logic.build_train_config(on, options={}).nesterov
    assert not logic.build_train_config({**on, "train_optimizer": "adam"}, options={}).nesterov
    assert not logic.build_train_config({**on, "train_momentum": 0.0}, options={}).nesterov


def test_build_scratch_config():
    config = logic.build_train_config(BASE, options={"se_2": True})
    assert isinstance(config, TrainConfig)
    assert (config.arch, config.init, config.subset, config.val_subset, config.name) == (
        "alexnet_cifar", "none", None, 5, "my run")
    assert config.options == {"se_2": True}
    assert TrainConfig.from_json(config.to_json()) == config


def test_scratch_ignores_any_chosen_initialisation():
    config = logic.build_train_config({**BASE, "train_init": "imagenet"}, options={})
    assert config.init == "none"


@pytest.mark.parametrize("init,extra,expected", [
    ("imagenet", {}, "imagenet"), ("run", {"train_init_run": 7}, "run:7"),
    ("file", {"train_weights_path": "/tmp/w.pth"}, "/tmp/w.pth"), ("none", {}, "none"),
])
def test_finetune_initialisations(init, extra, expected):
    config = logic.build_train_config({**BASE, "train_mode": "finetune", "train_init": init, **extra}, options={})
    assert config.init == expected


def test_probe_layer_only_in_probe_mode():
    values = {**BASE, "train_mode": "probe", "train_init": "none", "train_probe_layer": "block2"}
    assert logic.build_train_config(values, options={}).probe_layer == "block2"
    assert logic.build_train_config({**values, "train_mode": "freeze"}, options={}).probe_layer is None


@pytest.mark.parametrize("values,words", [
    ({"train_mode": "finetune", "train_init": "run"}, "earlier run"),
    ({"train_mode": "finetune", "train_init": "file"}, "weights file"),
    ({"train_dataset": "folder"}, "Upload a .zip"),
])
def test_missing_pieces_are_named(values, words):
    with pytest.raises(ValueError, match=words):
        logic.build_train_config({**BASE, **values}, options={})


def test_folder_dataset_uses_the_uploaded_zip():
    config = logic.build_train_config({**BASE, "train_dataset": "folder", "train_upload_path": "/x/a.zip"}, options={})
    assert config.data_path == "/x/a.zip"


def test_images_for_estimate():
    counts = {"a": 100, "b": 30}
    assert logic.images_for_estimate(train_counts=counts, val_counts={"a": 20, "b": 10}) == (130, 30)
    assert logic.images_for_estimate(train_counts=counts, val_counts={"a": 20, "b": 10}, subset=50,
                                     val_subset=5) == (80, 10)
    # carved validation holds out only what it validates on: the rest of each share trains
    assert logic.images_for_estimate(train_counts=counts, val_counts={"a": 20, "b": 10}, val_subset=5,
                                     val_carved=True) == (130 + 15 + 5, 10)


# -- confusion cells -----------------------------------------------------------------------------


def test_confusion_cells_mistakes_first():
    matrix = [[5, 1, 0], [3, 4, 0], [0, 0, 2]]
    assert logic.confusion_cells(matrix, ["a", "b", "c"]) == [(1, 0), (0, 1), (0, 0), (1, 1), (2, 2)]


def test_cell_indices_and_misclassified():
    labels, preds = [0, 0, 1, 1, 2], [0, 1, 1, 0, 2]
    assert logic.cell_indices(labels, preds, true=1, predicted=0) == [3]
    assert logic.misclassified(labels, preds) == [1, 3]


# -- recipes -------------------------------------------------------------------------------------

DATASETS = ("shapes", "hymenoptera", "cifar10", "cifar100", "folder")


@pytest.mark.parametrize("arch", list_models())
@pytest.mark.parametrize("mode", MODES)
def test_every_recipe_makes_a_valid_config(arch, mode):
    spec = get_spec(arch)
    for dataset in DATASETS:
        rec = recipes.recipe(arch=arch, dataset=dataset, mode=mode, default_size=spec.default_size,
                             min_size=spec.min_size, native_size={"cifar10": 32, "cifar100": 32}.get(dataset, 64))
        values = rec.values
        assert values["image_size"] >= spec.min_size
        TrainConfig(arch=arch, dataset=dataset, mode=mode, probe_layer="input" if mode == "probe" else None,
                    **{k: v for k, v in values.items()})
        assert rec.why


def test_recipe_choices_follow_the_course():
    finetune = recipes.recipe(arch="resnet18", dataset="hymenoptera", mode="finetune", native_size=224).values
    assert finetune["lr"] == 0.001 and finetune["image_size"] == 224 and finetune["batch_size"] == 32
    scratch = recipes.recipe(arch="alexnet_cifar", dataset="cifar10", mode="scratch", default_size=32,
                             native_size=32).values
    assert scratch["augment"] == "cifar" and scratch["image_size"] == 32 and scratch["subset"] == 1000
    small = recipes.recipe(arch="alexnet", dataset="cifar10", mode="finetune", default_size=224, min_size=63,
                           native_size=32).values
    assert small["image_size"] == 64  # upscale only as far as the network and its pretrained features need


def test_epoch_estimate_and_formatting():
    seconds = recipes.estimate_epoch_seconds(flops_per_image=1e9, train_images=100, val_images=50,
                                             flops_per_second=1e11, mode="scratch")
    assert seconds == pytest.approx((3 * 100 + 50) * 1e9 / 1e11)
    frozen = recipes.estimate_epoch_seconds(flops_per_image=1e9, train_images=100, val_images=50,
                                            flops_per_second=1e11, mode="freeze")
    assert frozen < seconds
    with pytest.raises(ValueError):
        recipes.estimate_epoch_seconds(flops_per_image=1, train_images=1, val_images=1, flops_per_second=0)
    assert [recipes.format_seconds(s) for s in (5, 65, 1800, 4000)] == ["5 s", "1 min 5 s", "30 min", "1 h 6 min"]
    assert recipes.features_cached(mode="freeze", augment="none")
    assert not recipes.features_cached(mode="freeze", augment="standard")
    assert not recipes.features_cached(mode="finetune", augment="none")


def test_logic_and_recipes_stay_free_of_streamlit_and_torch():
    import subprocess
    import sys

    code = ("import sys, cnnviz.ui.logic, cnnviz.recipes; "
            "print('streamlit' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_one_epoch_is_singular():
    done = logic.run_progress(status="finished", epochs_total=1, epoch_rows=[{}], batch_rows=[], started_at=0.0,
                              now=1.0)
    assert done.text == "Finished after 1 of 1 epoch."
    assert logic.plural(3, "epoch") == "3 epochs"


def test_save_upload_keeps_the_users_file_name(tmp_path):
    path = logic.save_upload(make_zip(), folder=tmp_path / "uploads", filename="My pets (2024).zip")
    assert path.name == "My pets _2024_.zip" and path.parent.parent == tmp_path / "uploads"
    assert len(path.parent.name) == 16, "the content hash names the folder"
    odd = logic.save_upload(b"\x80\x02w", folder=tmp_path, filename="../../evil/..pth", kind="weights")
    assert odd.parent.parent == tmp_path and odd.suffix == ".pth"


def test_a_new_recipe_keeps_what_was_typed_by_hand():
    applied = {"train_epochs": 5, "train_lr": 0.01, "train_subset": 0}
    current = {"train_epochs": 5, "train_lr": 0.05, "train_subset": 0}  # the lr was typed
    recipe = {"train_epochs": 3, "train_lr": 0.001, "train_subset": 100, "train_seed": 0}
    updates, held = logic.merge_recipe(current, applied, recipe)
    assert updates == {"train_epochs": 3, "train_subset": 100, "train_seed": 0} and held == {"train_lr": 0.001}
    note = logic.kept_values_note(held, {**current, **updates}, recipe_for="freeze on shapes")
    assert note == "Kept your lr 0.05; the recipe for freeze on shapes suggests 0.001."
    assert logic.kept_values_note(held, {"train_lr": 0.001}, recipe_for="freeze") is None  # taken since
    # A typed value equal to the new recipe's needs no note; two kept values share one line.
    assert logic.merge_recipe({"train_lr": 0.001}, {"train_lr": 0.01}, {"train_lr": 0.001}) == ({}, {})
    note = logic.kept_values_note({"train_epochs": 3, "train_subset": 100}, {"train_epochs": 1, "train_subset": 0},
                                  recipe_for="probe on cifar10")
    assert note == "Kept your epochs 1 and images per class all; the recipe for probe on cifar10 suggests 3 and 100."


def test_starting_weights_are_named_for_people():
    from cnnviz.ui.logic import init_display_name

    assert init_display_name("imagenet") == "ImageNet weights"
    assert init_display_name("run:12") == "run 12"
    assert init_display_name("/srv/.cnnviz/uploads/weights/6e52aaac321f60a0/my-resnet.pth") == "my-resnet.pth"


def test_run_images_text_counts_what_a_run_sees():
    counts, val = {"a": 30, "b": 10}, {"a": 8, "b": 4}
    assert logic.run_images_text(train_counts=counts, val_counts=val, subset=None, val_subset=None, official_val=True) \
        == "A run trains on 40 images and validates on **12** (all of the official validation split)."
    assert logic.run_images_text(train_counts=counts, val_counts=val, subset=20, val_subset=5, official_val=False) \
        == "A run trains on 30 images and validates on **9** (5 per class of the validation split)."


def test_your_run_label_names_the_model_and_data_once():
    from types import SimpleNamespace

    run = SimpleNamespace(id=7, name="", config=SimpleNamespace(arch="resnet18"))
    assert logic.your_run_label(run, dataset="pets.zip", where="running, epoch 2 of 3") \
        == "Run 7: resnet18 on pets.zip · running, epoch 2 of 3"
    run.name = "run 7"  # a name that only repeats the id says nothing
    assert logic.your_run_label(run, dataset="shapes", where="position 2 in the queue") \
        == "Run 7: resnet18 on shapes · position 2 in the queue"
    run.name = "mine"
    assert logic.your_run_label(run, dataset="shapes", where="running").startswith("Run 7: mine, resnet18 on shapes")
