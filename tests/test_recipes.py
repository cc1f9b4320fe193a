"""Named recipes and the defaults that learn: every recipe is a valid config, the default run is one of them,
and the datasets start from what learns (ImageNet features on photos)."""

from __future__ import annotations

import math

import pytest

from cnnviz import recipes
from cnnviz.training.checks import validate_config


@pytest.mark.parametrize("named", recipes.NAMED_RECIPES, ids=lambda r: r.name)
def test_every_named_recipe_builds_a_valid_config(named):
    config = named.config()
    validate_config(config)
    assert named.title and named.why
    for key, value in named.values.items():
        assert getattr(config, key) == value, key  # a recipe's own values survive default_config


def test_the_required_recipes_exist():
    names = {r.name for r in recipes.NAMED_RECIPES}
    assert {"shapes-1min", "hymenoptera-finetune", "hymenoptera-freeze", "cifar10-course-alexnet-scratch",
            "cifar10-course-alexnet-finetune", "cifar10-course-resnet18", "cifar10-course-vgg16",
            "cifar10-10min"} <= names
    assert len(names) == len(recipes.NAMED_RECIPES)


def test_the_default_shapes_run_is_the_one_minute_recipe():
    assert recipes.default_config(dataset="shapes") == recipes.named_recipe("shapes-1min").config()
    default = recipes.default_config()
    assert (default.arch, default.dataset, default.mode, default.scheduler) == ("cifar_resnet", "shapes", "scratch",
                                                                               "onecycle")


def test_tutorial_and_course_settings():
    tutorial = recipes.named_recipe("hymenoptera-finetune").config()
    assert (tutorial.arch, tutorial.init, tutorial.optimizer, tutorial.lr, tutorial.momentum) == (
        "resnet18", "imagenet", "sgd", 0.001, 0.9)
    assert (tutorial.scheduler, tutorial.step_size, tutorial.image_size) == ("step", 7, 224)
    assert recipes.named_recipe("hymenoptera-freeze").config().mode == "freeze"
    for name in ("cifar10-course-alexnet-scratch", "cifar10-course-resnet18", "cifar10-course-vgg16"):
        course = recipes.named_recipe(name).config()
        assert (course.dataset, course.lr, course.epochs, course.batch_size) == ("cifar10", 0.05, 10, 256)
    assert recipes.named_recipe("cifar10-course-alexnet-scratch").config().init == "none"


def test_overrides_win_over_a_recipe():
    config = recipes.named_recipe("shapes-1min").config(epochs=1, subset=5)
    assert (config.epochs, config.subset, config.optimizer) == (1, 5, "adam")
    with pytest.raises(ValueError, match="unknown recipe 'nope'"):
        recipes.named_recipe("nope")


@pytest.mark.parametrize("dataset", ["hymenoptera", "folder"])
def test_photos_start_by_fine_tuning_imagenet_weights(dataset):
    config = recipes.default_config(dataset=dataset, data_path="x.zip" if dataset == "folder" else None)
    assert (config.arch, config.mode, config.init) == ("resnet18", "finetune", "imagenet")
    assert config.lr == 0.001 and config.augment == "standard"


def test_cifar_starts_from_scratch_with_augmentation():
    config = recipes.default_config(dataset="cifar10")
    assert (config.arch, config.mode, config.init, config.augment) == ("cifar_resnet", "scratch", "none", "cifar")


def test_a_named_architecture_trains_from_scratch_unless_told():
    assert recipes.default_config(dataset="hymenoptera", arch="alexnet_cifar").mode == "scratch"
    assert recipes.default_config(dataset="hymenoptera", mode="freeze").arch == "resnet18"
    assert recipes.default_config(arch="resnet18", mode="freeze").init == "imagenet"
    assert recipes.default_config(arch="cifar_resnet", mode="finetune").init == "none"  # it has no weights


@pytest.mark.parametrize("precision", ["auto", "fp32", "bf16"])
def test_the_first_speed_guess_times_a_step_at_the_trainers_precision(precision):
    from cnnviz.recipes import measure_flops_per_second

    rate = measure_flops_per_second(arch="cifar_resnet", image_size=16, options={"depth": 20}, batch=4,
                                    device="cpu", precision=precision)
    assert math.isfinite(rate) and rate > 0
