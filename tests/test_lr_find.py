"""The learning-rate finder: a finite suggestion on shapes, the pick itself, the command line's JSON, the chart."""

from __future__ import annotations

import json
import math

import pytest

from cnnviz import charts
from cnnviz.cli import main
from cnnviz.recipes import default_config
from cnnviz.training.lr_find import lr_find, suggest_lr


def test_finite_suggestion_on_shapes():
    result = lr_find(default_config(dataset="shapes", subset=20, val_subset=2), steps=30)
    assert 2 <= len(result.lrs) == len(result.losses) <= 30
    assert result.lrs == sorted(result.lrs) and result.lrs[0] == pytest.approx(1e-7)
    assert all(math.isfinite(v) for v in result.losses)
    assert result.suggested_lr is not None and 1e-7 <= result.suggested_lr <= 10


def test_suggestion_is_the_steepest_descent_before_the_minimum():
    lrs = [10 ** (k / 2) for k in range(-12, 1)]  # 1e-6 ... 1
    losses = [2.3, 2.3, 2.3, 2.29, 2.28, 2.2, 1.6, 1.2, 1.1, 1.05, 1.0, 3.0, 9.0]
    assert suggest_lr(lrs, losses) == lrs[6]  # 2.2 -> 1.2 is the biggest fall per decade
    assert suggest_lr(lrs[:2], [3.0, 2.0]) == pytest.approx(lrs[1] / 10)  # too short: the minimum / 10
    assert suggest_lr(lrs, sorted(losses)) is None  # the loss only rose


def test_lr_find_command_prints_json(capsys):
    code = main(["lr-find", "--dataset", "shapes", "--subset", "10", "--val-subset", "2", "--steps", "12",
                 "--json"])
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert set(doc) == {"suggested_lr", "lrs", "losses"}
    assert len(doc["lrs"]) == len(doc["losses"]) >= 2 and "sweeping lr" in err
    assert code == (0 if doc["suggested_lr"] is not None else 1)


def test_lr_find_refuses_what_train_refuses(capsys):
    code = main(["lr-find", "--arch", "cifar_resnet", "--mode", "freeze", "--init", "none"])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1 and "random features" in err


def test_lr_find_chart_has_a_log_axis():
    spec = charts.lr_find_curve([1e-5, 1e-3, 1e-1], [2.3, 1.5, 4.0], suggested=1e-3).to_dict()
    assert spec["layer"][0]["encoding"]["x"]["scale"]["type"] == "log"
    assert charts.lr_find_curve([1e-5, 1e-3], [2.3, 2.2]).to_dict()["encoding"]["x"]["scale"]["type"] == "log"
