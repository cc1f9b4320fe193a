"""The command line: JSON shapes, exit codes, and a real (tiny) training run through ``python -m cnnviz``."""

from __future__ import annotations

import csv
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnviz.cli import main
from cnnviz.cli.train import ProgressBar
from cnnviz.runs import RunStore

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str) -> subprocess.CompletedProcess:
    """``python -m cnnviz ARGS`` in a child process (the environment carries the test's CNNVIZ_HOME)."""
    return subprocess.run([sys.executable, "-m", "cnnviz", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "CNNVIZ_OFFLINE": "1"}, timeout=600)


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_summary_json_shape(capsys):
    code, out, err = run_main(capsys, "summary", "--arch", "cifar_resnet", "--option", "depth=20", "--option",
                              "shortcut=A", "--num-classes", "10", "--image-size", "32", "--json")
    assert code == 0
    doc = json.loads(out)
    assert {"params", "trainable_params", "flops", "layers"} <= set(doc)
    assert doc["params"] == doc["trainable_params"] == 269_722  # He et al.'s ResNet-20
    assert doc["layers"] and {"layer", "type", "output_shape", "params", "trainable"} <= set(doc["layers"][0])


def test_summary_text_table(capsys):
    code, out, _ = run_main(capsys, "summary", "--arch", "alexnet_cifar", "--num-classes", "10")
    assert code == 0 and "Parameters:" in out and "FLOPs at 32x32" in out


@pytest.mark.parametrize("args, message", [
    (["summary", "--arch", "lenet"], "unknown architecture 'lenet'"),
    (["summary", "--arch", "alexnet", "--option", "wings=2"], "alexnet has no option 'wings'"),
    (["summary", "--arch", "alexnet", "--option", "lrn=maybe"], "option lrn expects true/false"),
    (["summary", "--arch", "alexnet", "--option", "lrn"], "--option expects KEY=VALUE"),
    (["summary", "--arch", "alexnet", "--image-size", "32"], "alexnet needs inputs of at least"),
    (["train", "--arch", "softmax", "--dataset", "imagenet22k"], "unknown dataset 'imagenet22k'"),
    (["train", "--arch", "softmax", "--dataset", "cifar10"], "place cifar-10-python.tar.gz"),
    (["train", "--arch", "softmax", "--epochs", "0"], "epochs must be at least 1"),
    (["train", "--arch", "resnet18", "--mode", "probe", "--probe-layer", "layer9"], "no probe point 'layer9'"),
    (["train", "--arch", "softmax", "--mode", "finetune", "--init", "run:77"], "no run 77"),
    (["train", "--arch", "softmax", "--mode", "finetune", "--init", "/no/such/file.pth"], "no such weights file"),
    (["runs", "show", "5"], "no run 5"),
    (["predict", "--run", "5", "x.png"], "no run 5"),
])
def test_user_errors_exit_2_with_one_line(capsys, monkeypatch, args, message):
    monkeypatch.setenv("CNNVIZ_OFFLINE", "1")
    code, out, err = run_main(capsys, *args)
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert RunStore().list() == []  # nothing half-made in the store


def test_bad_arch_from_the_real_entry_point():
    result = cli("summary", "--arch", "nope", "--num-classes", "10")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("python -m cnnviz summary: error: unknown architecture 'nope'")
    assert result.stderr.count("\n") == 1


def test_argparse_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--mode", "sideways"])
    _, err = capsys.readouterr()
    assert info.value.code == 2 and err.count("\n") == 1 and "invalid choice" in err


def picture(path: Path) -> Path:
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(path)
    return path


def test_train_json_then_runs_and_predict(tmp_path, capsys):
    """One real tiny run through ``python -m cnnviz train --json``, then every runs/predict command on it."""
    result = cli("train", "--arch", "softmax", "--dataset", "shapes", "--epochs", "1", "--subset", "6",
                 "--val-subset", "3", "--batch-size", "16", "--name", "tiny", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert {"run_id", "status", "best_val_acc", "best_epoch", "epochs", "train_seconds", "params", "flops"} <= set(doc)
    assert doc["status"] == "finished" and doc["best_epoch"] == 1 and 0 <= doc["best_val_acc"] <= 1
    (row,) = doc["epochs"]
    assert {"train_loss", "train_acc", "val_loss", "val_acc", "seconds"} <= set(row)
    assert doc["params"] == 3 * 32 * 32 * 10 + 10 and doc["flops"] > 0
    assert "epoch   1" in result.stderr  # progress went to stderr
    run_id = doc["run_id"]

    store = RunStore()
    run = store.get(run_id)
    assert (run.name, run.status, run.config.arch) == ("tiny", "finished", "softmax")
    assert Path(run.checkpoint).is_file()

    code, out, _ = run_main(capsys, "runs", "list", "--json")
    assert code == 0 and [r["id"] for r in json.loads(out)] == [run_id]
    code, out, _ = run_main(capsys, "runs", "list")
    assert code == 0 and "tiny" in out and "finished" in out
    code, out, _ = run_main(capsys, "runs", "show", str(run_id), "--json")
    card = json.loads(out)
    assert card["id"] == run_id and card["config"]["arch"] == "softmax" and len(card["epochs"]) == 1
    code, out, _ = run_main(capsys, "runs", "show", str(run_id))
    assert code == 0 and "best val acc" in out
    code, out, _ = run_main(capsys, "runs", "export", str(run_id))
    assert code == 0 and [r["epoch"] for r in csv.DictReader(io.StringIO(out))] == ["1"]
    code, _, _ = run_main(capsys, "runs", "export", str(run_id), "--json", "--output", str(tmp_path / "card.json"))
    assert code == 0 and json.loads((tmp_path / "card.json").read_text())["id"] == run_id

    good, bad = picture(tmp_path / "good.png"), tmp_path / "bad.jpg"
    bad.write_bytes(b"definitely not a jpeg")
    code, out, err = run_main(capsys, "predict", "--run", str(run_id), "--topk", "3", str(good), str(bad), "--json")
    assert code == 1  # one file failed, the other was still predicted
    doc = json.loads(out)
    ok, failed = doc["results"]
    assert len(ok["top"]) == 3 and ok["top"][0]["class"] in run.classes and 0 < ok["top"][0]["prob"] <= 1
    assert "not a readable image" in failed["error"] and err.count("\n") == 1
    code, out, _ = run_main(capsys, "predict", "--run", str(run_id), str(good))
    assert code == 0 and out.startswith(f"{good}: ")

    code, out, _ = run_main(capsys, "runs", "rename", str(run_id), "renamed", "--json")
    assert json.loads(out) == {"run_id": run_id, "name": "renamed"}
    code, out, _ = run_main(capsys, "runs", "delete", str(run_id), "--json")
    assert code == 0 and json.loads(out) == {"deleted": run_id}
    assert store.list() == [] and not Path(run.checkpoint).exists()


def test_prefetch_reports_each_failure(capsys, monkeypatch):
    monkeypatch.setenv("CNNVIZ_OFFLINE", "1")
    from cnnviz.models import WeightsUnavailable
    from cnnviz.models import weights as weights_module

    def offline(name, progress=False):
        raise WeightsUnavailable(f"Place the file for {name} in the folder /cache and try again.")

    monkeypatch.setattr(weights_module, "imagenet_state_dict", offline)
    code, out, err = run_main(capsys, "prefetch", "--weights", "resnet18", "softmax", "--datasets", "hymenoptera",
                              "--json")
    doc = json.loads(out)
    assert code == 1 and doc["ok"] is False
    assert "Place the file for ResNet18_Weights.IMAGENET1K_V1" in doc["weights"]["resnet18"]
    assert doc["weights"]["softmax"] == "error: softmax has no ImageNet weights"
    assert doc["datasets"]["hymenoptera"].startswith("error: ") and "hymenoptera" in doc["datasets"]["hymenoptera"]


def test_progress_bar_draws_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    from types import SimpleNamespace

    from cnnviz.training.config import TrainConfig

    stream = Terminal()
    bar = ProgressBar(stream)
    state = SimpleNamespace(config=TrainConfig(), device="cpu", params=1000, classes=["a", "b"], epoch=1, epochs=2,
                            batch=5, batches=10, loss=0.5, history=[], status="finished", message="done")
    bar.before_fit(state)
    bar.after_batch(state)
    state.history.append({"epoch": 1, "train_loss": 0.5, "train_acc": 0.8, "val_loss": 0.6, "val_acc": 0.7,
                          "seconds": 1.0})
    bar.after_epoch(state)
    bar.after_fit(state)
    text = stream.getvalue()
    assert "1,000 parameters" in text and "[" + "#" * 14 in text and "5/10 loss 0.5000" in text
    assert "val loss 0.6000 acc 0.7000" in text and text.endswith("finished: done\n")


def test_progress_bar_shows_the_frozen_features_step_and_labels_head_only_epochs():
    """Freeze epochs on cached features time the head alone: the bar says so, and names the features step."""
    import time as clock
    from types import SimpleNamespace

    from cnnviz.training.config import TrainConfig

    stream = io.StringIO()
    bar = ProgressBar(stream)
    state = SimpleNamespace(config=TrainConfig(arch="resnet18", mode="freeze", init="imagenet"), device="cpu",
                            params=1000, classes=["a", "b"], epoch=1, epochs=1, batch=1, batches=1, loss=0.5,
                            phase="features", started_at=clock.time() - 2.0, history=[], status="finished", message="")
    bar.before_fit(state)
    state.history.append({"epoch": 1, "train_loss": 0.5, "train_acc": 0.8, "val_loss": 0.6, "val_acc": 0.7,
                          "seconds": 0.0})
    bar.after_epoch(state)
    lines = stream.getvalue().splitlines()
    assert lines[1].startswith("frozen features computed once (2.") and "before epoch 1" in lines[1], lines
    assert lines[2].startswith("epoch   1") and lines[2].rstrip().endswith("(head only, on cached features)")

    scratch = ProgressBar(io.StringIO())
    scratch.before_fit(SimpleNamespace(config=TrainConfig(), phase="data", params=None, history=[]))
    assert "features" not in scratch.stream.getvalue() and not scratch.cached


@pytest.mark.skipif(shutil.which("script") is None, reason="needs util-linux script(1) for a terminal")
def test_each_epoch_line_shows_once_on_a_terminal():
    """On a terminal stdout and the progress bar share the screen: each epoch and the end appear once."""
    command = (f"{shlex.quote(sys.executable)} -m cnnviz train --arch softmax --epochs 2 --subset 4 "
               "--val-subset 2")
    done = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "CNNVIZ_OFFLINE": "1"}, timeout=600)
    assert done.returncode == 0, done.stdout
    screen = done.stdout.replace("\r", "\n")
    assert screen.count("epoch   1  train loss") == 1 and screen.count("epoch   2  train loss") == 1, screen
    assert screen.count("finished") == 1, screen


def test_closed_pipe_exits_quietly():
    """``python -m cnnviz runs list | head -1``: the reader goes away; no traceback, the SIGPIPE exit code."""
    child = subprocess.Popen([sys.executable, "-m", "cnnviz", "runs", "list"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, cwd=ROOT, env={**os.environ, "CNNVIZ_OFFLINE": "1"})
    child.stdout.close()  # the reader is gone before the first line is written
    err = child.stderr.read().decode()
    assert child.wait(timeout=60) == 141 and "Traceback" not in err and err == ""


def test_submit_json_worker_once_then_stop_and_resume(capsys):
    """``submit --json`` queues for the workers; ``worker --once`` trains it; ``runs stop|resume`` go through the store."""
    code, out, _ = run_main(capsys, "submit", "--arch", "softmax", "--dataset", "shapes", "--epochs", "1",
                            "--subset", "6", "--val-subset", "3", "--student", "ann", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc == {"run_id": doc["run_id"], "status": "queued"}
    run_id = doc["run_id"]
    store = RunStore()
    assert (store.get(run_id).status, store.get(run_id).student) == ("queued", "ann")

    code, out, _ = run_main(capsys, "runs", "list", "--json")
    (row,) = json.loads(out)
    assert {"student", "status", "created_at", "started_at", "finished_at", "epochs_done"} <= set(row)
    assert (row["student"], row["status"], row["epochs_done"], row["started_at"]) == ("ann", "queued", 0, None)

    done = cli("worker", "--once", "--threads", "1", "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["trained"] is True, done.stderr[-2000:]
    code, out, _ = run_main(capsys, "runs", "list", "--json")
    (row,) = json.loads(out)
    assert (row["status"], row["epochs_done"]) == ("finished", 1) and row["finished_at"] >= row["started_at"]

    code, out, _ = run_main(capsys, "runs", "stop", str(run_id), "--json")
    assert json.loads(out) == {"run_id": run_id, "stopping": False, "status": "finished"}
    code, _, err = run_main(capsys, "runs", "resume", str(run_id))
    assert code == 2 and "only a stopped, interrupted or failed run can resume" in err

    queued = store.create(store.get(run_id).config, student="ann")
    code, out, _ = run_main(capsys, "runs", "stop", str(queued), "--json")
    assert json.loads(out)["status"] == "stopped"
    code, out, _ = run_main(capsys, "runs", "resume", str(queued), "--json")
    assert code == 0 and json.loads(out)["status"] == "queued" and store.get(queued).resume_of == queued


def test_train_owns_its_run_as_the_student():
    result = cli("train", "--arch", "softmax", "--dataset", "shapes", "--epochs", "1", "--subset", "4",
                 "--val-subset", "2", "--student", "bob", "--json")
    assert result.returncode == 0, result.stderr
    run = RunStore().get(json.loads(result.stdout)["run_id"])
    assert (run.student, run.status) == ("bob", "finished") and run.worker is None


def _bad_weights(folder: Path) -> dict[str, Path]:
    import torch

    files = {"random": folder / "random.pth", "empty": folder / "empty.pth", "pickled": folder / "pickled.pth"}
    files["random"].write_bytes(np.random.default_rng(0).bytes(2048))
    files["empty"].write_bytes(b"")
    torch.save({"hook": print}, files["pickled"])  # a reference to Python code: weights_only refuses it
    return files


@pytest.mark.parametrize("kind, words", [("random", "not a readable weights file"), ("empty", "is empty"),
                                         ("pickled", "contains Python code")])
def test_bad_init_file_is_a_one_line_usage_error_and_stores_no_run(tmp_path, kind, words):
    path = _bad_weights(tmp_path)[kind]
    done = cli("train", "--mode", "finetune", "--init", str(path), "--epochs", "1", "--subset", "4",
               "--val-subset", "2")
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and path.name in lines[0] and words in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    assert RunStore().list() == []


def test_init_with_scratch_is_a_one_line_usage_error_and_stores_no_run(tmp_path):
    path = tmp_path / "weights.pth"
    path.write_bytes(b"never read")
    done = cli("train", "--mode", "scratch", "--init", str(path), "--epochs", "1", "--subset", "4",
               "--val-subset", "2")
    assert done.returncode == 2 and done.stdout == "", done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "init is only used by finetune/freeze/probe" in lines[0], done.stderr
    assert "drop --init or choose --mode finetune" in lines[0] and "Traceback" not in done.stderr
    assert RunStore().list() == []


def test_wrapped_state_dict_with_module_prefix_is_unwrapped(tmp_path):
    import torch

    from cnnviz.models import get_model

    state = get_model("cifar_resnet", num_classes=10, options={"depth": 20}).state_dict()
    path = tmp_path / "published.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 200}, path)
    done = cli("train", "--arch", "cifar_resnet", "--option", "depth=20", "--mode", "finetune", "--init", str(path),
               "--epochs", "1", "--subset", "4", "--val-subset", "2", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "finished"


def test_recipes_lists_every_named_recipe(capsys):
    from cnnviz.recipes import NAMED_RECIPES

    code, out, _ = run_main(capsys, "recipes", "--json")
    doc = json.loads(out)
    assert code == 0 and [r["name"] for r in doc] == [r.name for r in NAMED_RECIPES]
    assert all({"name", "title", "why", "values", "config"} <= set(r) for r in doc)
    assert next(r for r in doc if r["name"] == "shapes-1min")["config"]["arch"] == "cifar_resnet"
    code, out, _ = run_main(capsys, "recipes")
    assert code == 0 and "hymenoptera-freeze" in out and "--recipe NAME" in out


def test_train_recipe_with_overrides_runs():
    """``train --recipe shapes-1min``: the recipe's settings, except the flags given (a tiny subset here)."""
    result = cli("train", "--recipe", "shapes-1min", "--epochs", "1", "--subset", "4", "--val-subset", "2", "--json")
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)["config"]
    assert (config["epochs"], config["subset"], config["val_subset"]) == (1, 4, 2)  # the overrides
    assert (config["arch"], config["optimizer"], config["scheduler"]) == ("cifar_resnet", "adam", "onecycle")


def test_unset_flags_keep_the_recipe():
    from cnnviz.cli import build_parser
    from cnnviz.cli.train import config_from_args
    from cnnviz.recipes import named_recipe

    args = build_parser().parse_args(["train", "--recipe", "hymenoptera-freeze"])
    assert config_from_args(args) == named_recipe("hymenoptera-freeze").config()
    args = build_parser().parse_args(["train", "--recipe", "hymenoptera-freeze", "--lr", "0.01"])
    assert config_from_args(args) == named_recipe("hymenoptera-freeze").config(lr=0.01)


def test_a_recipes_switches_turn_off_from_the_command_line():
    """Every on/off setting has --x and --no-x, so a recipe's trick can be switched off to see what it was worth."""
    from cnnviz.cli import build_parser
    from cnnviz.cli.train import config_from_args
    from cnnviz.recipes import named_recipe

    recipe = named_recipe("cifar10-10min").config()
    assert recipe.nesterov and recipe.tta_flip
    args = build_parser().parse_args(["train", "--recipe", "cifar10-10min", "--no-nesterov", "--no-tta-flip"])
    assert config_from_args(args) == recipe.replace(nesterov=False, tta_flip=False)
    args = build_parser().parse_args(["train", "--dataset", "shapes", "--tta-flip"])
    assert config_from_args(args).tta_flip


@pytest.mark.parametrize("mode", ["freeze", "probe"])
def test_random_backbone_refused_from_the_real_entry_point(mode):
    result = cli("train", "--arch", "resnet18", "--dataset", "shapes", "--mode", mode, "--init", "none",
                 "--epochs", "1", "--subset", "2")
    assert result.returncode == 2 and result.stdout == "" and result.stderr.count("\n") == 1
    assert "randomly initialised network trains only its last layer on random features" in result.stderr
    assert "resnet18-f37072fd.pth" in result.stderr and "run:ID" in result.stderr and "scratch" in result.stderr
    assert RunStore().list() == []  # nothing stored


def test_random_backbone_runs_when_asked_and_finetune_says_scratch(capsys, monkeypatch):
    monkeypatch.setenv("CNNVIZ_OFFLINE", "1")
    tiny = ["--arch", "cifar_resnet", "--dataset", "shapes", "--epochs", "1", "--subset", "3", "--val-subset", "2",
            "--init", "none", "--json"]
    code, out, err = run_main(capsys, "train", "--mode", "freeze", "--allow-random-backbone", *tiny)
    assert code == 0 and json.loads(out)["config"]["allow_random_backbone"] is True
    code, out, err = run_main(capsys, "train", "--mode", "finetune", *tiny)
    assert code == 0 and json.loads(out)["status"] == "finished"
    notes = [line for line in err.splitlines() if "note:" in line]
    assert len(notes) == 1 and "trains from scratch" in notes[0]


def test_submit_refuses_an_init_file_that_does_not_fit_like_train(capsys, tmp_path):
    import torch

    from cnnviz.models import get_model

    wrong = tmp_path / "wrong.pt"
    torch.save(get_model("softmax", num_classes=10).state_dict(), wrong)  # weights of another network
    flags = ("--arch", "alexnet_cifar", "--dataset", "shapes", "--mode", "finetune", "--init", str(wrong),
             "--epochs", "1", "--subset", "4", "--val-subset", "2")
    code, out, trained = run_main(capsys, "train", *flags)
    assert code == 2 and out == "" and trained.count("\n") == 1 and "wrong.pt" in trained, trained
    code, out, queued = run_main(capsys, "submit", *flags, "--student", "ann", "--json")
    assert code == 2 and out == "", queued
    assert queued == trained.replace("cnnviz train:", "cnnviz submit:")  # the same one line
    assert RunStore().list() == []  # nothing queued
