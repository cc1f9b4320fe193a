"""The Compare page's pure logic: runs table, filters, curves, cost and disagreement frames."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from cnnviz import compare
from cnnviz.training.config import TrainConfig


def _run(run_id: int, *, name: str = "", status: str = "finished", preds=None, classes=("a", "b", "c"), student="",
         **config):
    """A stand-in with the fields of cnnviz.runs.Run that the compare logic reads."""
    return SimpleNamespace(
        id=run_id, name=name, config=TrainConfig(**config), status=status, message=None, student=student,
        created_at=1_700_000_000.0 + run_id, started_at=None, finished_at=None, train_seconds=12.5 * run_id,
        params=1000 * run_id, flops=10_000 * run_id, classes=list(classes), best_val_acc=0.5 + run_id / 100,
        best_epoch=2, confusion=[[2, 0, 0], [1, 1, 0], [0, 0, 2]], per_class_acc=[1.0, 0.5, 1.0],
        checkpoint=None, val_predictions=preds,
    )


@pytest.fixture
def runs():
    return [
        _run(1, arch="alexnet_cifar", dataset="shapes", mode="scratch"),
        _run(2, name="my resnet", arch="resnet18", dataset="cifar100", labels="coarse", mode="finetune", init="imagenet"),
        _run(3, arch="alexnet_cifar", options={"residual_1": True, "lrn": False}, dataset="shapes", status="failed"),
        _run(4, arch="resnet18", dataset="shapes", mode="probe", probe_layer="layer3", status="running"),
    ]


def test_runs_table_has_every_column_newest_first(runs):
    table = compare.runs_table(runs=runs, epochs_done={4: 1})
    assert list(table.columns) == list(compare.TABLE_COLUMNS)
    assert table["id"].tolist() == [4, 3, 2, 1]
    by_id = table.set_index("id")
    assert by_id.loc[2, "name"] == "my resnet"
    assert by_id.loc[1, "name"] == "alexnet_cifar scratch"  # unnamed runs are described
    assert by_id.loc[2, "dataset"] == "cifar100 (coarse)"
    assert by_id.loc[4, "mode"] == "probe @layer3"
    assert by_id.loc[3, "options"] == "no lrn, residual_1"
    assert by_id.loc[4, "epochs"] == 1 and by_id.loc[1, "epochs"] == 3
    assert by_id.loc[3, "params"] == 3000 and by_id.loc[3, "time (s)"] == pytest.approx(37.5)


def test_empty_table_keeps_its_columns():
    table = compare.runs_table(runs=[])
    assert table.empty and list(table.columns) == list(compare.TABLE_COLUMNS)
    assert compare.filter_runs(table, text="resnet").empty
    assert compare.filter_choices(table) == {"architecture": [], "dataset": [], "mode": [], "status": []}


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, [4, 3, 2, 1]),
        ({"architectures": ["resnet18"]}, [4, 2]),
        ({"datasets": ["shapes"], "statuses": ["finished"]}, [1]),
        ({"modes": ["finetune", "scratch"]}, [3, 2, 1]),
        ({"text": "RESNET imagenet"}, [2]),
        ({"text": "residual"}, [3]),
        ({"text": "#3"}, [3]),
        ({"text": "nothing-like-this"}, []),
    ],
)
def test_filter_runs(runs, filters, expected):
    table = compare.runs_table(runs=runs)
    assert compare.filter_runs(table, **filters)["id"].tolist() == expected


def test_filter_choices_and_csv(runs):
    table = compare.runs_table(runs=runs)
    choices = compare.filter_choices(table)
    assert choices["architecture"] == ["alexnet_cifar", "resnet18"]
    assert choices["status"] == ["failed", "finished", "running"]
    text = compare.table_csv(table)
    assert text.splitlines()[0].startswith("id,name,student,architecture,dataset,mode,status")
    assert len(text.strip().splitlines()) == 5


def test_epochs_frame_feeds_the_curves_chart():
    from cnnviz import charts

    epochs = [
        {"epoch": 2, "train_loss": 0.5, "train_acc": 0.8, "val_loss": 0.6, "val_acc": 0.7, "seconds": 3.0,
         "grad_norms": {"conv1": 0.1}},
        {"epoch": 1, "train_loss": 1.0, "train_acc": 0.5, "val_loss": 0.9, "val_acc": None, "seconds": 2.0,
         "grad_norms": {"conv1": 0.2}},
    ]
    frame = compare.epochs_frame(epochs_by_run={"#1 x": epochs, "#2 y": epochs[:1], "#3 empty": []})
    assert set(frame["run"]) == {"#1 x", "#2 y"} and "grad_norms" not in frame.columns
    assert frame[frame.run == "#1 x"]["epoch"].tolist() == [1, 2]
    long = charts.curves_frame(frame, metric="acc")
    val = long[(long.run == "#1 x") & (long.split == "val")]
    assert val["epoch"].tolist() == [2] and val["wall"].tolist() == [5.0]  # a missing value is not drawn as 0
    for label, x in compare.CURVE_AXES.items():
        charts.curves(frame, metric="loss", x=x).to_dict()
    assert compare.epochs_frame(epochs_by_run={}).empty


def test_cost_frame_leaves_out_runs_without_accuracy(runs):
    from cnnviz import charts

    runs[3].best_val_acc = None
    frame = compare.cost_frame(compare.runs_table(runs=runs))
    assert sorted(frame["run"].str.split().str[0]) == ["#1", "#2", "#3"]
    for cost in compare.COST_AXES.values():
        assert frame[cost].notna().all()
        charts.cost_scatter(frame, cost=cost).to_dict()


def test_same_validation_set_explains_why_not():
    a = _run(1, preds=[0, 1, 2, 0])
    assert compare.same_validation_set(a, _run(2, arch="resnet18", mode="finetune", preds=[0, 0, 2, 1])) == (True, "")
    cases = {
        "dataset": _run(2, dataset="cifar10", preds=[0, 1, 2, 0]),
        "seed": _run(2, seed=1, preds=[0, 1, 2, 0]),
        "validation images per class": _run(2, val_subset=10, preds=[0, 1, 2, 0]),
        "validation split": _run(2, val_split="random", preds=[0, 1, 2, 0]),
        "sizes": _run(2, preds=[0, 1, 2]),
        "class lists": _run(2, preds=[0, 1, 2, 0], classes=("x", "y", "z")),
        "no saved per-image validation predictions": _run(2, preds=None),
    }
    for words, other in cases.items():
        ok, reason = compare.same_validation_set(a, other)
        assert not ok and words in reason, (words, reason)


def test_first_comparable_pair():
    runs = [_run(1, dataset="cifar10", preds=[0, 1]), _run(2, preds=[0, 1]), _run(3, preds=None), _run(4, preds=[1, 1])]
    assert compare.first_comparable_pair(runs) == (1, 3)
    assert compare.first_comparable_pair(runs[:3]) == (0, 1)  # nothing comparable: the first two


def test_disagreements_and_counts():
    truth = [0, 1, 2, 0, 1, 2]
    pred_a = [0, 1, 0, 1, 2, 2]
    pred_b = [0, 2, 2, 1, 0, 2]
    frame = compare.disagreement_frame(pred_a=pred_a, pred_b=pred_b, truth=truth, classes=["a", "b", "c"])
    assert frame["index"].tolist() == [1, 2, 4]
    assert frame["kind"].tolist() == ["only A right", "only B right", "both wrong, differently"]
    assert frame.iloc[0][["true", "A says", "B says"]].tolist() == ["b", "b", "c"]
    counts = compare.agreement_counts(pred_a=pred_a, pred_b=pred_b, truth=truth)
    assert counts == {"both right": 2, "only A right": 1, "only B right": 1, "both wrong, same answer": 1,
                      "both wrong, differently": 1}
    assert sum(counts.values()) == len(truth)


def test_compare_module_is_streamlit_free():
    import ast
    from pathlib import Path

    tree = ast.parse(Path(compare.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not any(name.startswith("streamlit") for name in imported)
    assert isinstance(compare.runs_table(runs=[]), pd.DataFrame)


def test_dataset_labels_follow_the_dataset_spec(runs):
    """Only datasets with several label sets (CIFAR-100's fine and coarse) name the labels in the table."""
    table = compare.runs_table(runs=[*runs, _run(5, dataset="cifar100", labels="fine")]).set_index("id")
    assert table.loc[5, "dataset"] == "cifar100 (fine)" and table.loc[1, "dataset"] == "shapes"
    assert compare.validation_key(runs[1].config)[2] == "coarse"


def test_model_choices_offer_runs_with_a_checkpoint_then_pretrained_weights(tmp_path):
    saved = tmp_path / "best.pt"
    saved.write_bytes(b"weights")
    runs = [_run(3, name="kept", status="stopped"), _run(2), _run(1)]
    runs[0].checkpoint, runs[2].checkpoint = str(saved), str(tmp_path / "gone.pt")
    choices = compare.model_choices(runs, pretrained=[("resnet18", 12.0)])
    assert [c.key for c in choices] == ["run:3", "imagenet:resnet18"]
    assert choices[0].label == "#3 kept (shapes, val 53%, stopped)" and choices[0].version == saved.stat().st_mtime
    assert choices[1].label == "resnet18 (ImageNet-pretrained, 1000 classes)" and choices[1].version == 12.0
    with pytest.raises(ValueError, match="unknown model key"):
        compare.load_choice("somewhere:3")


def test_unmeasured_counts_are_empty_and_say_why():
    failed = _run(7, status="failed")
    failed.params, failed.flops, failed.best_val_acc = 0, 0, None
    row = compare.runs_table(runs=[failed], epochs_done={7: 0}).iloc[0]
    assert pd.isna(row["params"]) and pd.isna(row["FLOPs"]) and pd.isna(row["best val acc"])
    assert row["note"] == "failed before training"
    assert compare.runs_table(runs=[_run(8, status="stopped")], epochs_done={8: 1}).iloc[0]["note"] == "stopped after 1 epoch"


def test_cost_frame_uses_trainable_parameters_for_frozen_runs():
    frozen, scratch = _run(1, mode="freeze"), _run(2)
    frozen.trainable_params = 20
    frame = compare.cost_frame(compare.runs_table(runs=[frozen, scratch])).set_index("run")
    assert frame.loc["#1 alexnet_cifar freeze", "trainable_params"] == 20
    assert frame.loc["#2 alexnet_cifar scratch", "trainable_params"] == 2000  # not recorded: all of them
    assert compare.COST_AXES["trainable parameters"] == "trainable_params"


def test_default_selection_keeps_to_the_newest_runs_dataset(runs):
    table = compare.runs_table(runs=[*runs, _run(5, dataset="hymenoptera"), _run(6, dataset="shapes", status="failed")])
    assert compare.default_selection(table) == [5]  # the newest finished run is on hymenoptera: no shapes mixed in
    assert compare.default_selection(compare.runs_table(runs=runs)) == [2]  # cifar100 (coarse) alone
    assert compare.default_selection(compare.runs_table(runs=[])) == []


def test_chance_only_when_the_runs_share_a_class_count():
    assert compare.common_chance([_run(1), _run(2)]) == pytest.approx(1 / 3)
    assert compare.common_chance([_run(1), _run(2, classes=("a", "b"))]) is None


def test_predict_defaults_to_models_that_know_the_pictures(tmp_path):
    saved = tmp_path / "best.pt"
    saved.write_bytes(b"weights")
    runs = [_run(3, dataset="hymenoptera", classes=("ants", "bees")), _run(2, classes=[f"c{i}" for i in range(10)]),
            _run(1, status="stopped")]
    for run in runs:
        run.checkpoint = str(saved)
    choices = compare.model_choices(runs)
    assert choices[0].knows == "knows: ants, bees" and choices[1].knows.endswith("(10 classes)")
    assert compare.picture_datasets(["shapes-star.jpg", "holiday.jpg", "shapes-ring.jpg"]) == ["shapes"]
    assert compare.default_models(choices, datasets=["shapes"]) == ["run:2"]  # a shapes star is not asked of ants
    assert compare.default_models(choices) == ["run:3"]  # no known domain: the newest finished run
    assert compare.default_models([]) == []


def test_a_students_own_runs_come_first_in_the_default_choices(tmp_path):
    """In a class the newest run is usually somebody else's: Predict and Compare start with your own."""
    saved = tmp_path / "best.pt"
    saved.write_bytes(b"weights")
    runs = [_run(4, student="bob"), _run(3, student="alice"), _run(2, student="alice", status="failed"),
            _run(1, student="bob", dataset="hymenoptera")]
    for run in runs:
        run.checkpoint = str(saved)
    choices = compare.model_choices(runs)
    assert compare.default_models(choices, student="alice") == ["run:3"]
    assert compare.default_models(choices, student="carol") == ["run:4"]  # no runs of her own: the newest
    assert compare.default_models(choices, datasets=["hymenoptera"], student="alice") == ["run:1"]  # only bob's knows it
    table = compare.runs_table(runs=runs)
    assert list(table["student"]) == ["bob", "alice", "alice", "bob"]
    assert compare.default_selection(table, student="alice") == [3]
    assert compare.default_selection(table, student="bob") == [4]  # his newest run's dataset only, never a mix
    assert compare.default_selection(table) == [4, 3]
    assert compare.run_label(runs[0]) == "#4 alexnet_cifar scratch · bob"
    assert compare.run_label(_run(9, name="mine")) == "#9 mine"  # nobody's run: no student named


def test_uploaded_datasets_are_named_by_their_file(runs, tmp_path):
    """Two uploads are not both "folder": the table, the default selection and the model pickers use the file's name."""
    from cnnviz.data import dataset_display_name

    pets, birds = "uploads/6e52aaac321f60a0/pets.zip", "uploads/17e8f791c7cc23e3/birds.zip"
    assert dataset_display_name("folder", pets) == "pets.zip"
    assert dataset_display_name("folder", "/home/me/holiday pictures/") == "holiday pictures"
    assert dataset_display_name("shapes") == "shapes" and dataset_display_name("nosuch", pets) == "nosuch"
    table = compare.runs_table(runs=[*runs, _run(5, dataset="folder", data_path=pets),
                                     _run(6, dataset="folder", data_path=birds)]).set_index("id")
    assert (table.loc[5, "dataset"], table.loc[6, "dataset"]) == ("pets.zip", "birds.zip")
    assert compare.default_selection(table.reset_index()) == [6]  # the newest upload alone, not every "folder"

    checkpoint = tmp_path / "best.pt"
    checkpoint.write_bytes(b"weights")
    run = _run(7, dataset="folder", data_path=pets)
    run.checkpoint = str(checkpoint)
    (choice,) = compare.model_choices([run])
    assert "pets.zip" in choice.label and choice.dataset == "folder"
