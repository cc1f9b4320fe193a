"""The Altair chart builders: DataFrames in, valid Vega-Lite specs out."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from cnnviz import charts

EPOCHS = [
    {"epoch": 1, "train_loss": 2.1, "train_acc": 0.3, "val_loss": 1.9, "val_acc": 0.35, "seconds": 4.0},
    {"epoch": 2, "train_loss": 1.5, "train_acc": 0.5, "val_loss": 1.6, "val_acc": 0.45, "seconds": 5.0},
]


def spec_of(chart) -> dict:
    """The chart's Vega-Lite dict (raises if Altair finds it invalid)."""
    return chart.to_dict()


@pytest.mark.parametrize("metric", ["loss", "acc"])
@pytest.mark.parametrize("x", ["epoch", "wall"])
def test_curves_single_run(metric, x):
    spec_of(charts.curves(pd.DataFrame(EPOCHS), metric=metric, x=x))


def test_live_curves_keep_the_whole_epoch_axis():
    spec = spec_of(charts.curves(pd.DataFrame(EPOCHS[:1]), metric="loss", epochs_total=5))
    assert spec["layer"][0]["encoding"]["x"]["scale"]["domain"] == [1, 5]


def test_curves_frame_is_long_with_cumulative_wall_time():
    long = charts.curves_frame(pd.DataFrame(EPOCHS), metric="loss")
    assert set(long["split"]) == {"train", "val"}
    assert sorted(long[long["split"] == "val"]["wall"]) == [4.0, 9.0]


def test_curves_overlay_colours_by_run():
    frame = pd.concat([pd.DataFrame(EPOCHS).assign(run="a"), pd.DataFrame(EPOCHS).assign(run="b")])
    spec = spec_of(charts.curves(frame, metric="acc", x="wall"))
    assert "run" in str(spec["layer"][0]["encoding"]["color"])


def test_curves_without_validation_columns():
    frame = pd.DataFrame([{"epoch": 1, "train_loss": 1.0}])
    assert set(charts.curves_frame(frame, metric="loss")["split"]) == {"train"}


def test_batch_loss_smooths():
    frame = pd.DataFrame({"step": range(1, 51), "loss": [2.0 - i / 50 for i in range(50)]})
    spec_of(charts.batch_loss(frame, window=10))


def test_confusion_frame_rates_and_selection():
    matrix = [[8, 2], [1, 9]]
    frame = charts.confusion_frame(matrix, ["ants", "bees"])
    assert len(frame) == 4
    row = frame[(frame["true"] == "ants") & (frame["predicted"] == "bees")].iloc[0]
    assert row["count"] == 2 and row["rate"] == pytest.approx(0.2)
    spec = spec_of(charts.confusion(frame, selectable=True))
    assert charts.CONFUSION_SELECTION in str(spec)


def test_confusion_many_classes_drops_numbers():
    n = 25
    matrix = [[1 if i == j else 0 for j in range(n)] for i in range(n)]
    spec = spec_of(charts.confusion(charts.confusion_frame(matrix, [f"c{i}" for i in range(n)])))
    assert "layer" not in spec  # heat map only, no text layer


def test_per_class_counts_cost_topk():
    spec_of(charts.per_class_accuracy(["a", "b"], [0.5, 1.0]))
    spec_of(charts.class_counts({"a": 3, "b": 4}))
    runs = pd.DataFrame({"run": ["x", "y"], "best_val_acc": [0.8, 0.9], "train_seconds": [10.0, 20.0],
                         "params": [1e6, 2e7], "flops": [1e8, 1e9]})
    for cost in ("train_seconds", "params", "flops"):
        spec_of(charts.cost_scatter(runs, cost=cost))
    spec_of(charts.topk_bars([("cat", 0.7), ("dog", 0.2)]))


def test_charts_module_does_not_import_streamlit():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(charts))
    names = {a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "streamlit" not in names | modules


def test_confusion_is_square_and_sized_by_its_classes():
    two = spec_of(charts.confusion(charts.confusion_frame([[3, 1], [0, 4]], ["ants", "bees"])))
    ten = spec_of(charts.confusion(charts.confusion_frame([[1] * 10] * 10, [f"class {i}" for i in range(10)])))
    assert two["width"] == two["height"] >= 80 * 2 / 2  # square, not squashed to 20 px rows
    assert ten["width"] == ten["height"] >= 10 * 28  # a readable cell per class
    assert ten["layer"][0]["encoding"]["x"]["axis"]["labelAngle"] == -45  # long labels angled, not overlapping
    assert charts.confusion_size(2) < charts.confusion_size(10) < charts.confusion_size(20)


def test_accuracy_curves_draw_chance_and_points():
    spec = spec_of(charts.curves(pd.DataFrame(EPOCHS[:1]), metric="acc", chance=0.1))
    text = json.dumps(spec)
    assert '"type": "rule"' in text and "chance 10.0%" in text
    assert any(layer.get("mark", {}).get("type") == "point" for layer in spec["layer"])  # a one-epoch run shows
    assert "chance" not in str(spec_of(charts.curves(pd.DataFrame(EPOCHS), metric="loss", chance=0.1)))


def test_batch_loss_has_a_legend_and_whole_batch_ticks():
    frame = pd.DataFrame({"step": range(1, 51), "loss": [2.0 - i / 50 for i in range(50)]})
    spec = spec_of(charts.batch_loss(frame, window=10))
    assert spec["encoding"]["color"]["scale"]["domain"] == ["each batch", "mean of last 10"]
    assert spec["encoding"]["x"]["axis"]["format"] == "d" and spec["encoding"]["x"]["axis"]["tickMinStep"] == 1


def test_run_colours_are_distinct_and_stable_per_id():
    first = charts.run_colors(["#3 a", "#4 b"]).to_dict()["range"]
    again = charts.run_colors(["#4 b", "#3 a", "#5 c"]).to_dict()["range"]
    assert len(set(first)) == 2 and again[:2] == first[::-1]
    clash = charts.run_colors(["#1 x", "#11 y"]).to_dict()["range"]
    assert clash[0] != clash[1]  # ids ten apart still get different hues


def test_legends_keep_whole_run_names_and_scatter_labels_are_short():
    long_name = "#12 a very long run name that legends used to cut off"
    frame = pd.concat([pd.DataFrame(EPOCHS).assign(run=long_name), pd.DataFrame(EPOCHS).assign(run="#2 b")])
    legend = spec_of(charts.curves(frame, metric="acc"))["layer"][0]["encoding"]["color"]["legend"]
    assert legend["labelLimit"] == 0 and legend["orient"] == "bottom"
    runs = pd.DataFrame({"run": [long_name, "#2 b"], "best_val_acc": [0.8, 0.9], "train_seconds": [10.0, 20.0]})
    spec = spec_of(charts.cost_scatter(runs))
    assert spec["layer"][1]["encoding"]["text"]["field"] == "tag"
    assert spec["layer"][0]["encoding"]["x"]["scale"]["padding"] > 0  # the last point's label stays inside
    assert "trainable" in charts.COST_TITLES["trainable_params"]


def test_probe_depth_axis_spans_zero_to_one_with_chance():
    import pandas as pd

    frame = pd.DataFrame({"layer": ["input", "layer2", "layer4"], "depth": [0, 1, 2], "accuracy": [0.33, 0.5, 0.66]})
    spec = json.dumps(charts.probe_depth(frame, chance=0.1).to_dict())
    assert '"scale": {"domain": [0, 1]}' in spec
    assert '"zero": false' not in spec
    assert "chance 10" in spec


def test_loss_curves_read_on_a_log_axis():
    import pandas as pd

    epochs = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [2.3, 1.2, 0.4], "val_loss": [22.0, 1.6, 0.3],
                           "seconds": [9.0, 9.0, 9.0]})
    spec = json.dumps(charts.curves(epochs, metric="loss").to_dict())
    assert '"type": "log"' in spec and "log scale" in spec
    accuracy = json.dumps(charts.curves(epochs.rename(columns={"train_loss": "train_acc", "val_loss": "val_acc"})
                                        .assign(train_acc=[0.2, 0.5, 0.9], val_acc=[0.1, 0.4, 0.9]), metric="acc").to_dict())
    assert '"type": "log"' not in accuracy
