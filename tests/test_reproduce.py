"""``reproduce``: an experiment's plan, run in the foreground, written as Markdown and CSV beside the published figures."""

from __future__ import annotations

import csv
import json

from cnnviz.cli import main
from cnnviz.runs import RunStore


def test_reproduce_quick_writes_the_table_with_the_published_column(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CNNVIZ_HOME", str(tmp_path / "home"))
    out = tmp_path / "results"
    code = main(["reproduce", "exp5", "--size", "quick", "--dataset", "shapes", "--only", "alexnet",
                 "--only", "resnet18", "--subset", "2", "--epochs", "1", "--out", str(out), "--json"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    md, table = (out / "exp5-quick.md").read_text(), list(csv.DictReader((out / "exp5-quick.csv").open()))
    header = next(line for line in md.splitlines() if line.startswith("| run id"))
    for column in ("best val acc", "test acc", "time", "published", "published split", "compared on", "seconds"):
        assert f" {column} |" in header
    assert "## Published figures" in md and "| ResNet-18, 25 epochs (140 min) | 0.841 | test |" in md
    assert "`--only alexnet --only resnet18 --dataset shapes --subset 2 --epochs 1`" in md and "of wall time" in md
    assert "the dataset's own test split" in md  # which split each figure is
    assert [row["run"] for row in table] == ["AlexNet (plain)", "ResNet-18 (CIFAR stem)"]
    assert all(row["test acc"] and row["seconds"] for row in table)
    # the runs went through the store, tagged as the experiment's group, so the app shows them
    runs = RunStore(tmp_path / "home").list()
    assert sorted(r.id for r in runs) == sorted(doc["runs"]) and {r.experiment for r in runs} == {"exp5"}
    assert all(r.status == "finished" and r.test_acc is not None for r in runs)


def test_reproduce_refuses_an_unknown_run_key(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CNNVIZ_HOME", str(tmp_path / "home"))
    assert main(["reproduce", "exp5", "--only", "nope", "--out", str(tmp_path)]) == 2
    assert "plans no run 'nope'" in capsys.readouterr().err


def test_reproduce_from_runs_assembles_the_table_without_training(tmp_path, monkeypatch, capsys):
    """Runs trained on different days become one table; each departure from the plan is named; nothing trains."""
    monkeypatch.setenv("CNNVIZ_HOME", str(tmp_path / "home"))
    first = ["reproduce", "exp5", "--size", "quick", "--dataset", "shapes", "--subset", "2", "--out", str(tmp_path)]
    assert main([*first, "--only", "alexnet", "--epochs", "1", "--json"]) == 0
    a = json.loads(capsys.readouterr().out)["runs"]
    assert main([*first, "--only", "alexse-1", "--epochs", "2", "--json"]) == 0
    b = json.loads(capsys.readouterr().out)["runs"]
    store = RunStore(tmp_path / "home")
    before = len(store.list())
    out = tmp_path / "assembled"
    code = main(["reproduce", "exp5", "--size", "quick", "--dataset", "shapes", "--from-runs", *map(str, a + b),
                 "--out", str(out)])
    assert code == 0 and len(store.list()) == before  # no new run
    md = (out / "exp5-quick.md").read_text()
    rows = list(csv.DictReader((out / "exp5-quick.csv").open()))
    assert [row["run"] for row in rows] == ["AlexNet (plain)", "AlexSE, SE after block 1"]
    assert f"--from-runs {a[0]} {b[0]}" in md and "training time added up" in md
    assert f"run {a[0]} (alexnet): epochs 1 (plan 3)" in md and f"run {b[0]} (alexse-1): epochs 2 (plan 3)" in md
    capsys.readouterr()

    other = store.create(store.get(a[0]).config, name="plain")  # not one of the experiment's runs
    assert main(["reproduce", "exp5", "--from-runs", str(other), "--out", str(out)]) == 2
    assert "not one of exp5's planned runs" in capsys.readouterr().err
    assert main(["reproduce", "exp5", "--from-runs", "999", "--out", str(out)]) == 2
    assert "no run 999" in capsys.readouterr().err


def test_reproduce_says_what_is_missing_before_it_trains_anything(tmp_path, monkeypatch, capsys):
    """Without the ImageNet weights (or the dataset) a plan would fail run by run after training the
    others: it is refused up front, in one line that says what to place where and what else to do."""
    monkeypatch.setenv("CNNVIZ_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CNNVIZ_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty torch cache: no weights placed
    assert main(["reproduce", "exp1", "--dataset", "shapes", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "alexnet-owt-7be5be79.pth" in err and "resnet18-f37072fd.pth" in err and "--random-init" in err
    assert err.count("\n") == 0 and RunStore(tmp_path / "home").list() == []
    assert main(["reproduce", "exp4", "--out", str(tmp_path)]) == 2  # CIFAR-100 is not in the data folder
    err = capsys.readouterr().err
    assert "CIFAR-100" in err and "--dataset" in err and RunStore(tmp_path / "home").list() == []

    out = tmp_path / "results"
    assert main(["reproduce", "exp1", "--dataset", "shapes", "--random-init", "--only", "alexnet-finetune",
                 "--subset", "2", "--epochs", "1", "--out", str(out)]) == 0
    md = (out / "exp1-quick.md").read_text()
    assert "random init" in md and "--random-init" in md
    assert [r.config.init for r in RunStore(tmp_path / "home").list()] == ["none"]
