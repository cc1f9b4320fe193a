"""The one schema: TrainConfig's field metadata, validate, validate_config, and the one source of defaults."""

from __future__ import annotations

import pytest

from cnnviz import recipes
from cnnviz.cli import build_parser
from cnnviz.cli.train import config_from_args
from cnnviz.training.checks import config_problems, validate_config
from cnnviz.training.config import SECTIONS, ConfigError, TrainConfig, knobs, validate
from cnnviz.ui import logic


def test_every_field_carries_its_schema():
    for f in knobs():
        assert f.metadata["help"], f.name
        assert f.metadata["section"] in SECTIONS, f.name


def test_all_problems_in_one_message():
    with pytest.raises(ConfigError) as info:
        TrainConfig(epochs=0, lr=-1, optimizer="rmsprop", mode="probe")
    problems = info.value.problems
    assert len(problems) == 4
    assert "epochs must be at least 1" in str(info.value) and "lr must be a positive number" in str(info.value)
    assert "optimizer must be one of sgd" in str(info.value) and "probe mode needs probe_layer" in str(info.value)
    assert isinstance(info.value, ValueError)
    assert validate(TrainConfig()) == []


@pytest.mark.parametrize("changes, words", [
    ({"arch": "lenet"}, "unknown architecture 'lenet'"),
    ({"options": {"wings": 2}}, "no option 'wings'"),
    ({"arch": "resnet18", "mode": "probe", "probe_layer": "layer9"}, "no probe point 'layer9'"),
    ({"arch": "alexnet", "image_size": 32}, "needs inputs of at least"),
    ({"dataset": "imagenet22k"}, "unknown dataset 'imagenet22k'"),
    ({"dataset": "cifar10", "loss": "bce"}, "bce needs two classes"),
    ({"dataset": "shapes", "labels": "coarse"}, "label sets"),
])
def test_registry_checks(changes, words):
    config = TrainConfig(**changes)
    assert any(words in p for p in config_problems(config)), config_problems(config)
    with pytest.raises(ConfigError, match=words):
        validate_config(config)


@pytest.mark.parametrize("init", ["imagenet", "run:3", "weights.pth"])
def test_scratch_refuses_starting_weights(init):
    """A scratch run never reads its init: naming one is refused, not recorded on the run card as if used."""
    problems = config_problems(TrainConfig(mode="scratch", init=init))
    assert len(problems) == 1 and "init is only used by finetune/freeze/probe" in problems[0]
    assert "drop --init or choose --mode finetune" in problems[0] and init in problems[0]
    assert config_problems(TrainConfig(mode="scratch", init="none")) == []
    assert config_problems(TrainConfig(mode="finetune", init=init)) == []


def test_the_train_page_never_builds_scratch_with_weights():
    """The page keeps the Start-from choice while the mode is scratch; the config it builds drops it."""
    values = {**logic.widget_values(TrainConfig()), "train_model": "alexnet_cifar", "train_mode": "scratch",
              "train_init": "imagenet"}
    config = logic.build_train_config(values, options={})
    assert config.init == "none" and config_problems(config) == []


def test_named_recipes_pass_the_registry_checks():
    for recipe in recipes.NAMED_RECIPES:
        config = recipe.config()
        assert not (config.mode == "scratch" and config.init != "none"), recipe.name


def test_registry_checks_pass_on_good_configs():
    validate_config(TrainConfig())
    validate_config(TrainConfig(arch="resnet18", mode="probe", probe_layer="input", dataset="hymenoptera",
                                loss="bce"))


def parse(argv):
    return build_parser().parse_args(argv)


def test_cli_and_train_page_start_from_one_default():
    """``train`` with no flags is the recipe's default config, and the page's widgets map to the same."""
    default = recipes.default_config(dataset="shapes")
    assert config_from_args(parse(["train", "--dataset", "shapes"])) == default
    assert config_from_args(parse(["train"])) == default
    assert logic.build_train_config({**logic.widget_values(default), "train_model": default.arch},
                                    options=default.options) == default


def test_cli_flags_are_generated_from_the_fields():
    flags = {a.dest for a in build_parser()._subparsers._group_actions[0].choices["train"]._actions}
    assert {f.name for f in knobs() if f.metadata["flag"] != ""} <= flags
    args = parse(["train", "--arch", "alexnet_cifar", "--lr", "0.2", "--subset", "0", "--track-grad-norms",
                  "--mode", "probe", "--allow-random-backbone"])
    config = config_from_args(args)
    assert (config.lr, config.subset, config.track_grad_norms, config.probe_layer) == (0.2, None, True, "block3")


def test_widget_table_round_trips_every_table_field():
    config = TrainConfig(epochs=4, batch_size=48, lr=0.007, subset=None, val_subset=3, track_grad_norms=True,
                         precision="fp32", name="x", image_size=40)
    values = logic.widget_values(config)
    assert values["train_subset"] == 0 and values["train_grad_norms"] is True
    rebuilt = logic.build_train_config({**values, "train_model": config.arch}, options={})
    assert rebuilt == config


def test_init_problem_says_when_a_weights_file_does_not_fit_its_network(tmp_path):
    import torch

    from cnnviz.models import get_model
    from cnnviz.training.checks import init_problem

    fits, wrong = tmp_path / "fits.pt", tmp_path / "wrong.pt"
    torch.save(get_model("cifar_resnet", num_classes=10, options={"depth": 20}).state_dict(), fits)
    torch.save(get_model("softmax", num_classes=10).state_dict(), wrong)
    config = TrainConfig(arch="cifar_resnet", options={"depth": 20}, mode="finetune", init=str(fits))
    assert init_problem(config) is None
    problem = init_problem(config.replace(init=str(wrong)))
    assert problem and "wrong.pt" in problem and "\n" not in problem
    assert init_problem(config.replace(init=str(tmp_path / "missing.pt"))) is not None
    assert init_problem(config.replace(init="none")) is None
