"""The experiment presets, groups in the run store, tables, estimates and conclusions (no training here
except the end-to-end check of each quick preset on tiny data)."""

from __future__ import annotations

import pytest

from cnnviz import experiments as ex
from cnnviz import recipes
from cnnviz.training.config import TrainConfig

KEYS = ex.list_experiments()


def _variants():
    for key in KEYS:
        for size in ex.SIZES:
            yield key, size


def _check_config(config: TrainConfig) -> None:
    from cnnviz.data import get_dataset_spec, list_datasets
    from cnnviz.models import get_spec, list_models, resolve_options

    assert config.arch in list_models()
    resolve_options(config.arch, config.options)  # every option name and value is valid
    spec = get_spec(config.arch)
    if config.mode == "probe":
        assert config.probe_layer == "input" or config.probe_layer in spec.probe_points
    assert config.dataset in list_datasets()
    assert config.labels in get_dataset_spec(config.dataset).label_sets
    assert config.image_size is None or config.image_size >= spec.min_size
    assert TrainConfig.from_json(config.to_json()) == config


@pytest.mark.parametrize(("key", "size"), list(_variants()))
def test_presets_build_valid_configs(key, size):
    exp = ex.get_experiment(key)
    plans = exp.plan(ex.Choices(size=size))
    assert plans, "an experiment launches at least one run"
    assert len({p.key for p in plans}) == len(plans), "run keys are unique within a group"
    for plan in plans:
        _check_config(plan.config)
        assert plan.label


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("fallback", ["shapes", "cifar10"])
def test_fallback_dataset_and_stand_in_inits_build_valid_configs(key, fallback):
    exp = ex.get_experiment(key)
    inits = {arch: "none" for arch in exp.pretrained_archs}
    plans = exp.plan(ex.Choices(size="quick", dataset=fallback, inits=inits))
    for plan in plans:
        _check_config(plan.config)
        assert plan.config.dataset == fallback
        assert plan.config.init in ("none",), "no run may still ask for ImageNet weights"
    assert any("random init" in p.label for p in plans) or not exp.pretrained_archs


def test_earlier_run_init_carries_that_runs_options():
    exp = ex.get_experiment("exp1")
    plans = exp.plan(ex.Choices(inits={"alexnet": "run:7"}, init_options={"alexnet": {"lrn": True}}))
    alex = [p for p in plans if p.config.arch == "alexnet"]
    assert all(p.config.init == "run:7" and p.config.options == {"lrn": True} for p in alex)
    assert all("run 7" in p.label for p in alex)
    assert all(p.config.init == "imagenet" for p in plans if p.config.arch == "resnet18")


def test_full_sizes_match_the_reports():
    exp1 = {p.key: p.config for p in ex.get_experiment("exp1").plan(ex.Choices(size="full"))}
    assert exp1["resnet18-finetune"].epochs == 25 and exp1["resnet18-finetune"].image_size == 224
    assert exp1["alexnet-freeze"].mode == "freeze" and exp1["alexnet-finetune"].mode == "finetune"
    exp2 = ex.get_experiment("exp2").plan(ex.Choices(size="full"))
    assert {(c.config.lr, c.config.epochs, c.config.batch_size) for c in exp2} == {(0.05, 10, 256)}
    assert [p.key for p in exp2] == ["alexnet-scratch", "alexnet-finetune", "resnet18-finetune", "vgg16-finetune"]
    exp4 = ex.get_experiment("exp4").plan(ex.Choices(size="full"))
    assert {p.config.labels for p in exp4} == {"fine", "coarse"} and {p.config.val_split for p in exp4} == {"random"}
    exp5 = ex.get_experiment("exp5").plan(ex.Choices(size="full"))
    assert all(p.config.epochs == 25 for p in exp5)
    se = {p.key: p.config.options for p in exp5 if p.config.arch == "alex_se"}
    assert se == {"alexse-1": {"se_1": True, "se_2": False}, "alexse-2": {"se_1": False, "se_2": True},
                  "alexse-12": {"se_1": True, "se_2": True}}
    exp6 = ex.get_experiment("exp6").plan(ex.Choices(size="full"))
    assert all(p.config.track_grad_norms for p in exp6)
    assert {(p.config.options["depth"], p.config.options["residual"]) for p in exp6} >= {(20, False), (56, False), (20, True), (56, True)}
    assert {p.config.options["shortcut"] for p in exp6} == {"A", "B"}


def test_probe_experiment_covers_every_depth_and_marks_the_pick():
    exp = ex.get_experiment("exp3")
    points = ex.probe_points()
    pick = ex.intermediate_points()[0]
    plans = exp.plan(ex.Choices(probe_layer=pick))
    layers = [p.config.probe_layer for p in plans]
    assert layers == ["input", *points]
    picked = [p for p in plans if p.key.endswith(ex.PICKED)]
    assert [p.config.probe_layer for p in picked] == [pick]
    with pytest.raises(ValueError, match="intermediate"):
        exp.plan(ex.Choices(probe_layer=points[-1]))


def test_choices_reject_unknown_size():
    with pytest.raises(ValueError, match="size"):
        ex.Choices(size="huge")


# -- groups in the run store --------------------------------------------------------------------

class FakeManager:
    """Records submissions in a real RunStore, as the job manager does, without training."""

    def __init__(self, store):
        self.store = store
        self.submitted = []

    def submit(self, config, *, name=None, **tags):
        self.submitted.append(config)
        return self.store.create(config, name=name, status="queued", **tags)


def test_launch_names_runs_and_latest_group_finds_them_again(tmp_path):
    from cnnviz.runs import RunStore

    store = RunStore(tmp_path / "home")
    exp = ex.get_experiment("exp1")
    plans = exp.plan(ex.Choices())
    manager = FakeManager(store)
    first = ex.launch(exp, plans, manager=manager, runs=store.list())
    second = ex.launch(exp, plans, manager=manager, runs=store.list())
    assert len(first) == len(second) == len(plans)
    assert [c.name for c in manager.submitted[:len(plans)]] == [f"exp1#1/{p.key}" for p in plans]
    group = ex.latest_group(store.list(), exp)
    assert [r.id for r in group] == second, "the newest launch, in launch order"
    store.rename(second[0], "my favourite run")  # renaming keeps it in its group (the config keeps the tag)
    assert [r.id for r in ex.latest_group(store.list(), exp)] == second
    assert ex.latest_group(store.list(), ex.get_experiment("exp2")) == []
    outcomes = ex.group_outcomes(exp, store)
    assert [o.key for o in outcomes] == [p.key for p in plans]
    assert [o.label for o in outcomes] == [p.label for p in plans], "labels are read back from the store"


def test_probe_group_remembers_the_students_pick(tmp_path):
    from cnnviz.runs import RunStore

    store = RunStore(tmp_path / "home")
    exp = ex.get_experiment("exp3")
    pick = ex.intermediate_points()[0]
    plans = exp.plan(ex.Choices(probe_layer=pick))
    ex.launch(exp, plans, manager=FakeManager(store), runs=[])
    labels = [o.label for o in ex.group_outcomes(exp, store)]
    assert labels == [p.label for p in plans]
    assert any("your pick" in label and pick in label for label in labels)


def test_every_plan_is_a_valid_train_config_in_both_sizes():
    for key in KEYS:
        for size in ex.SIZES:
            for plan in ex.get_experiment(key).plan(ex.Choices(size=size)):
                assert isinstance(plan.config, TrainConfig)
                assert TrainConfig(**plan.config.to_dict()) == plan.config, f"{key}/{size}/{plan.key}"
                _check_config(plan.config)


@pytest.mark.parametrize("key", KEYS)
def test_published_figures_cite_the_reports(key):
    exp = ex.get_experiment(key)
    run_keys = {p.key for p in exp.plan(ex.Choices())}
    for pub in exp.published:
        assert pub.citation and "DESIGN" not in pub.citation.upper(), pub
        assert pub.run_key is None or pub.run_key in run_keys, f"{pub.label} sits beside no planned run"
        assert pub.value is not None or pub.text
    for pair in exp.pairs:
        assert {pair.a, pair.b} <= run_keys | {p.key for p in exp.plan(ex.Choices(size="full"))}


def test_launched_runs_carry_their_experiment_group_and_label(tmp_path):
    from cnnviz.runs import RunStore

    store = RunStore(tmp_path / "home")
    exp = ex.get_experiment("exp2")
    plans = exp.plan(ex.Choices(inits={"alexnet": "none"}))
    ex.launch(exp, plans, manager=FakeManager(store), runs=[])
    ids = ex.launch(exp, plans, manager=FakeManager(store), runs=store.list())
    runs = sorted((r for r in store.list() if r.id in ids), key=lambda r: r.id)
    assert [(r.experiment, r.group, r.run_key, r.run_label) for r in runs] == [
        (exp.key, 2, p.key, p.label) for p in plans]
    store.rename(ids[0], "renamed")
    assert [o.label for o in ex.group_outcomes(exp, store)] == [p.label for p in plans]


def test_runs_stored_before_the_tags_are_found_by_name(tmp_path):
    from cnnviz.runs import RunStore

    store = RunStore(tmp_path / "home")
    exp = ex.get_experiment("exp1")
    plans = exp.plan(ex.Choices())
    ids = [store.create(p.config.replace(name=f"exp1#2/{p.key}"), name=f"exp1#2/{p.key}") for p in plans]
    assert [r.id for r in ex.latest_group(store.list(), exp)] == ids
    assert ex.next_group(store.list(), exp) == 3
    assert [o.key for o in ex.group_outcomes(exp, store)] == [p.key for p in plans]


def test_split_sizes_and_classes_come_from_the_dataset_registry():
    from cnnviz.data import get_dataset_spec, load_dataset

    spec = get_dataset_spec("shapes")
    for split in ("train", "val"):
        assert len(load_dataset("shapes", split=split, image_size=8)) == spec.split_images[split]
    assert get_dataset_spec("cifar100").classes_for("coarse") == 20
    assert get_dataset_spec("cifar100").classes_for("fine") == 100


def test_presence_is_asked_of_the_models_and_data_layers(tmp_path):
    from cnnviz.data.sources import dataset_present
    from cnnviz.models.weights import weights_location, weights_present

    assert dataset_present("shapes", tmp_path)
    assert not dataset_present("cifar10", tmp_path)
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"")
    assert dataset_present("cifar10", tmp_path)
    where = weights_location("alexnet")
    assert where is not None and where.suffix == ".pth"
    assert weights_present("alexnet") == where.is_file()
    assert ex.weights_file_hint("alexnet").startswith(f"`{where.name}`")


def test_parse_run_name():
    assert ex.parse_run_name("exp4#12/resnet18-coarse") == ("exp4", 12, "resnet18-coarse")
    assert ex.parse_run_name("run 3") is None
    assert ex.parse_run_name("") is None


# -- conclusions from fed results -----------------------------------------------------------------

def outcome(key, acc, seconds=None, *, exp="exp1", epochs=(), **config):
    plans = {p.key: p for p in ex.get_experiment(exp).plan(ex.Choices())}
    plan = plans.get(key)
    cfg = plan.config.replace(**config) if plan else TrainConfig(**config)
    label = plan.label if plan else key
    return ex.Outcome(key=key, label=label, config=cfg, best_val_acc=acc, train_seconds=seconds, epochs=list(epochs))


def test_transfer_conclusion_names_winner_margin_and_time():
    lines = ex.conclude(ex.get_experiment("exp1"), [
        outcome("alexnet-finetune", 0.902, 600), outcome("alexnet-freeze", 0.948, 230),
        outcome("resnet18-finetune", 0.948, 1000), outcome("resnet18-freeze", 0.954, 87.4),
    ])
    text = "\n".join(lines)
    assert "Freeze all but the last layer: ResNet-18 beat AlexNet by 0.6 points (0.954 vs 0.948), in 38% of the time" in text
    assert "Reset FC + fine-tune: ResNet-18 beat AlexNet by 4.6 points (0.948 vs 0.902), but took 1.7x as long" in text
    assert "AlexNet: freezing beat fine-tuning everything by 4.6 points" in text
    assert "Against the published figures" in text


def test_conclusion_ties_and_losers():
    lines = ex.conclude(ex.get_experiment("exp1"), [
        outcome("alexnet-finetune", 0.950, 100), outcome("resnet18-finetune", 0.948, 100),
    ])
    assert "ResNet-18 and AlexNet tied (0.948 vs 0.950)" in lines[0]
    lines = ex.conclude(ex.get_experiment("exp1"), [outcome("alexnet-freeze", 0.96), outcome("resnet18-freeze", 0.90)])
    assert "AlexNet beat ResNet-18 by 6.0 points" in lines[0]


def test_only_finished_runs_count():
    exp = ex.get_experiment("exp1")
    running = outcome("resnet18-freeze", 0.99)
    running.status = "running"
    assert ex.conclude(exp, [running]) == []


def test_cifar_transfer_conclusion_reports_the_gain():
    lines = ex.conclude(ex.get_experiment("exp2"), [
        outcome("alexnet-scratch", 0.399, exp="exp2"), outcome("alexnet-finetune", 0.897, exp="exp2"),
        outcome("resnet18-finetune", 0.950, exp="exp2"), outcome("vgg16-finetune", 0.937, exp="exp2"),
    ])
    assert "added 49.8 points (0.399 -> 0.897)" in lines[0]
    assert "ResNet-18 fine-tuned 0.950 > VGG16 fine-tuned 0.937 > AlexNet fine-tuned 0.897" in lines[1]


def test_probe_conclusion_and_depth_order():
    outs = [outcome(k, a, exp="exp3") for k, a in
            (("probe-layer4", 0.71), ("input", 0.39), ("probe-stem", 0.45), ("probe-layer2" + ex.PICKED, 0.58),
             ("probe-layer1", 0.50), ("probe-layer3", 0.66))]
    frame = ex.probe_depth_frame(outs)
    assert list(frame["layer"]) == ["raw pixels", "stem", "layer1", "layer2", "layer3", "layer4"]
    text = " ".join(ex.conclude(ex.get_experiment("exp3"), outs))
    assert "last conv layer (layer4) reached 0.710, +32.0 points against raw pixels (0.390)" in text
    assert "rose at every step deeper" in text


def test_probe_conclusion_flags_random_features():
    outs = [outcome("input", 0.40, exp="exp3", init="none"), outcome("probe-layer4", 0.30, exp="exp3", init="none")]
    text = " ".join(ex.conclude(ex.get_experiment("exp3"), outs))
    assert "-10.0 points" in text and "random (untrained) features" in text


def test_hybrids_conclusion_picks_best_se_placement():
    outs = [outcome(k, a, s, exp="exp5") for k, a, s in
            (("alexnet", 0.80, 50), ("alexresnet", 0.808, 60), ("alexse-1", 0.821, 55), ("alexse-2", 0.826, 55),
             ("alexse-12", 0.815, 58), ("resnet18", 0.841, 95))]
    text = "\n".join(ex.conclude(ex.get_experiment("exp5"), outs))
    assert text.startswith("Ranking: ResNet-18 0.841 > AlexSE, SE after block 2 0.826")
    assert "Best SE placement: SE after block 2 (0.826)" in text
    assert "spread between placements is 1.1 points" in text
    assert "ResNet-18 beat plain AlexNet by 4.1 points (0.841 vs 0.800), but took 1.9x as long" in text


def _epochs(losses, norms=None):
    return [{"epoch": i + 1, "train_loss": loss, "val_acc": 0.5, **({"grad_norms": norms} if norms else {})}
            for i, loss in enumerate(losses)]


def test_degradation_conclusion_detects_degradation_and_gradient_ratio():
    plain = {"stem.conv": 55.0, "layer1.0.conv1": 70.0, "layer1.0.conv2": 50.0, "layer2.0.conv1": 5.0,
             "layer3.8.conv1": 0.4, "layer3.8.conv2": 0.7, "layer3.8.conv3": 0.6, "fc": 0.6}
    even = {"stem.conv": 1.3, "layer1.0.conv1": 1.6, "layer1.0.conv2": 1.3, "layer2.0.conv1": 1.0,
            "layer3.8.conv1": 1.1, "layer3.8.conv2": 1.6, "layer3.8.conv3": 1.2, "fc": 6.8}
    outs = [
        outcome("plain-20", 0.60, exp="exp6", epochs=_epochs([1.5, 1.0])),
        outcome("plain-56", 0.45, exp="exp6", epochs=_epochs([2.0, 1.6], plain)),
        outcome("resnet-20", 0.62, exp="exp6", epochs=_epochs([1.4, 0.9])),
        outcome("resnet-56", 0.65, exp="exp6", epochs=_epochs([1.3, 0.8], even)),
        outcome("resnet-56-B", 0.66, exp="exp6", epochs=_epochs([1.3, 0.8])),
    ]
    text = "\n".join(ex.conclude(ex.get_experiment("exp6"), outs))
    assert "plain-56 vs plain-20: 0.450 vs 0.600" in text and "degradation" in text
    assert "ResNet-56 vs ResNet-20: 0.650 vs 0.620" in text and "fits its training data better" in text
    assert "plain-56 92x larger in epoch 1 and 92x larger in epoch 2; ResNet-56 1.1x larger and 1.1x larger" in text
    assert "explodes or vanishes with depth" in text
    frame = ex.grad_norm_frame(outs)
    assert set(frame["key"]) == {"plain-56", "resnet-56"}
    assert list(frame[frame["key"] == "plain-56"]["layer"])[:2] == ["stem.conv", "layer1.0.conv1"]
    assert ex.early_late_ratio({"grad_norms": {"a": 0.01, "b": 0.01, "c": 0.01, "d": 1, "e": 1, "f": 1}}) == pytest.approx(0.01)


# -- superclasses -------------------------------------------------------------------------------

def test_rollup_and_share_of_errors_in_the_right_superclass():
    classes = ["cat", "dog", "car", "truck"]
    mapping = {"cat": "animal", "dog": "animal", "car": "vehicle", "truck": "vehicle"}
    matrix = [[5, 3, 1, 0],   # cat: 3 errors within animals, 1 outside
              [2, 6, 0, 0],   # dog: 2 within
              [0, 1, 7, 2],   # car: 2 within, 1 outside
              [0, 0, 0, 9]]
    rolled, groups = ex.rollup_confusion(matrix, classes, mapping)
    assert groups == ["animal", "vehicle"]
    assert rolled == [[16, 1], [1, 18]]
    errors = ex.superclass_errors(matrix, classes, mapping)
    assert (errors.errors, errors.within) == (9, 7)
    assert errors.share == pytest.approx(7 / 9)
    assert errors.chance == pytest.approx(1 / 3)  # one sibling among three other classes
    assert errors.rolled_accuracy == pytest.approx(34 / 36)


def test_superclass_maps():
    assert ex.superclass_map(["airplane", "cat"]) == {"airplane": "vehicles", "cat": "animals"}
    mapping = ex.superclass_map(list(ex.CIFAR100_FINE_TO_COARSE))
    assert len(set(mapping.values())) == 20 and mapping["maple_tree"] == "trees"
    assert sum(1 for v in mapping.values() if v == "people") == 5
    assert ex.superclass_map(["circle", "square"]) is None
    assert ex.superclass_errors([[3, 0], [0, 2]], ["cat", "dog"], {"cat": "a", "dog": "a"}).share == 0.0


def test_fine_coarse_conclusion_uses_the_confusion_matrix():
    classes = ["cat", "dog", "airplane", "truck"]
    fine = outcome("alexnet-fine", 0.5, exp="exp4")
    fine.classes, fine.confusion = classes, [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 0, 2]]
    coarse = outcome("alexnet-coarse", 0.9, exp="exp4")
    coarse.classes = ["animals", "vehicles"]
    text = " ".join(ex.conclude(ex.get_experiment("exp4"), [fine, coarse]))
    assert "AlexNet: 0.500 on 4 fine classes, 0.900 on 2 superclasses" in text
    assert "100% landed in the right superclass (chance 33%)" in text


# -- tables and estimates ---------------------------------------------------------------------------

def test_tables_in_the_reports_format():
    rows = [{"epoch": 1, "train_loss": 0.7, "train_acc": 0.55, "val_loss": 0.6, "val_acc": 0.7, "seconds": 30.0},
            {"epoch": 2, "train_loss": 0.5, "train_acc": 0.75, "val_loss": 0.4, "val_acc": 0.85, "seconds": 31.0}]
    out = outcome("resnet18-freeze", 0.85, 61.0, epochs=rows)
    out.best_epoch = 2
    table = ex.epochs_table([out])
    assert list(table.columns) == ["run", "epoch", "train loss", "train acc", "val loss", "val acc", "time (s)"]
    assert list(table["time (s)"]) == [30.0, 61.0]
    summary = ex.results_table(ex.get_experiment("exp1"), [out])
    assert summary.loc[0, "published"] == "0.954" and summary.loc[0, "difference (points)"] == "-10.4"
    text = ex.report_text(out)
    assert text.startswith(f"Epoch 0/{out.config.epochs - 1}\n----------\ntrain Loss: 0.7000 Acc: 0.5500\nval Loss: 0.6000 Acc: 0.7000")
    assert "Training complete in 1m 1s" in text and text.endswith("Best val Acc: 0.8500")


def test_split_sizes():
    assert recipes.split_sizes(TrainConfig(dataset="hymenoptera")) == (245, 153)
    # CIFAR's validation is carved from its 50,000 training images (10%), never its test set
    assert recipes.split_sizes(TrainConfig(dataset="cifar10", subset=100)) == (1000, 5000)
    assert recipes.split_sizes(TrainConfig(dataset="cifar100", labels="coarse", subset=40, val_split="random")) == (800, 5000)


def test_estimates_scale_with_work():
    exp = ex.get_experiment("exp5")
    quick = ex.estimate_group_seconds(exp.plan(ex.Choices(size="quick")), flops_per_second=1e11)
    full = ex.estimate_group_seconds(exp.plan(ex.Choices(size="full")), flops_per_second=1e11)
    faster = ex.estimate_group_seconds(exp.plan(ex.Choices(size="quick")), flops_per_second=2e11)
    assert 0 < quick < full
    assert faster == pytest.approx(quick / 2)
    probe = TrainConfig(arch="resnet18", mode="probe", probe_layer="layer4", dataset="cifar10", subset=10, image_size=64)
    assert recipes.estimate_run_seconds(probe, flops_per_second=1e11) < recipes.estimate_run_seconds(
        probe.replace(mode="finetune", probe_layer=None), flops_per_second=1e11)


def test_init_choices_offer_earlier_runs_of_the_same_arch(tmp_path):
    from cnnviz.runs import RunStore

    store = RunStore(tmp_path / "home")
    a = store.create(TrainConfig(arch="alexnet", dataset="shapes", image_size=64), name="alex on shapes")
    b = store.create(TrainConfig(arch="resnet18", dataset="shapes"), name="resnet")
    c = store.create(TrainConfig(arch="alexnet", options={"batchnorm": True}, dataset="shapes"), name="alex with BN")
    for run_id in (a, b, c):
        store.set_status(run_id, "running")
        store.set_status(run_id, "finished")
    with store._write() as conn:  # a finished run with a checkpoint file path, as record_end leaves it
        conn.execute("UPDATE runs SET checkpoint = 'x.pt', best_val_acc = 0.8 WHERE id IN (?, ?, ?)", (a, b, c))
    offered = ex.init_choices("alexnet", store.list(), imagenet_available=False)
    assert [v for v, _ in offered] == [f"run:{a}", "none"], "same architecture and options only"
    assert [v for v, _ in ex.init_choices("alexnet", store.list(), imagenet_available=False,
                                          options={"batchnorm": True})] == [f"run:{c}", "none"]
    assert "alex on shapes" in offered[0][1] and "0.800" in offered[0][1]
    assert ex.init_choices("alexnet", [], imagenet_available=True)[0][0] == "imagenet"


def test_init_choices_put_the_best_earlier_run_first(tmp_path):
    from cnnviz.runs import RunStore

    store = RunStore(tmp_path / "home")
    ids = [store.create(TrainConfig(arch="alexnet", dataset="shapes", image_size=64), name=f"alex {i}") for i in range(3)]
    for run_id, acc in zip(ids, (0.9, 0.5, 0.7)):
        store.set_status(run_id, "running")
        store.set_status(run_id, "finished")
        with store._write() as conn:
            conn.execute("UPDATE runs SET checkpoint = 'x.pt', best_val_acc = ? WHERE id = ?", (acc, run_id))
    offered = [v for v, _ in ex.init_choices("alexnet", store.list(), imagenet_available=False)]
    assert offered == [f"run:{ids[0]}", f"run:{ids[2]}", f"run:{ids[1]}", "none"]


def test_running_epoch_text_never_counts_past_the_last_epoch():
    from cnnviz.experiments.groups import running_epoch_text

    assert running_epoch_text(0, 3) == "epoch 1 of 3"
    assert running_epoch_text(2, 3) == "epoch 3 of 3"
    assert running_epoch_text(3, 3) == "all 3 epochs done, finishing"


def test_small_differences_are_called_noise():
    a, b = outcome("alexnet-freeze", 0.30), outcome("resnet18-freeze", 0.33)
    a.confusion = b.confusion = [[250, 0], [0, 250]]  # 500 validation images
    text = ex.compare_pair(b, a, names=("ResNet-18", "AlexNet"))
    assert "beat AlexNet by 3.0 points" in text and "within the noise of 500 validation images (±5.9 points)" in text
    a.confusion = b.confusion = [[25000, 0], [0, 25000]]
    assert "noise" not in ex.compare_pair(b, a, names=("ResNet-18", "AlexNet"))


# -- every quick preset trains end to end (tiny data in the real on-disk formats) -----------------

@pytest.fixture
def tiny_data():
    """Tiny hymenoptera, CIFAR-10 and CIFAR-100 in the data folder, so the presets' own dataset names load."""
    import os
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from data_helpers import write_cifar10_pickles, write_cifar100_pickles, write_hymenoptera

    root = Path(os.environ["CNNVIZ_DATA"])
    root.mkdir(parents=True, exist_ok=True)
    write_hymenoptera(root, n=4, size=40)
    write_cifar10_pickles(root, per_class=2, test_per_class=1)
    write_cifar100_pickles(root, per_class=2, test_per_class=1)
    return root


def _shrunk(config: TrainConfig) -> TrainConfig:
    """The same run (arch, options, mode, probe point, init, tracking) on a few pictures for one epoch."""
    from cnnviz.models import get_spec

    size = max(get_spec(config.arch).min_size, 16)
    return config.replace(epochs=1, batch_size=8, subset=1, val_subset=1, image_size=size, scheduler="none")


@pytest.mark.parametrize("key", KEYS)
def test_quick_preset_trains_end_to_end(key, tiny_data):
    from cnnviz.training import train

    exp = ex.get_experiment(key)
    assert ex.dataset_problem(exp.dataset) is None, "the tiny files count as present"
    inits = {arch: "none" for arch in exp.pretrained_archs}  # no ImageNet weights offline
    for plan in exp.plan(ex.Choices(size="quick", inits=inits)):
        result = train(_shrunk(plan.config))
        assert result.status == "finished", f"{plan.key}: {result.message}"
        assert result.epochs and result.epochs[0]["val_acc"] is not None
        if plan.config.track_grad_norms:
            norms = result.epochs[0]["grad_norms"]
            assert len(norms) >= 3 and all(v >= 0 for v in norms.values())


def test_missing_dataset_is_reported_without_downloading(tmp_path):
    problem = ex.dataset_problem("cifar100", root=tmp_path)
    assert "CIFAR-100" in problem and "cifar-100-python.tar.gz" in problem and str(tmp_path) in problem
    assert not any(tmp_path.iterdir()), "nothing was downloaded or created"
    assert ex.dataset_problem("shapes", root=tmp_path) is None


def test_earlier_run_stands_in_for_imagenet_weights(tiny_data):
    from cnnviz.runs import RunStore
    from cnnviz.training import train

    store = RunStore()
    first = TrainConfig(arch="resnet18", dataset="cifar10", epochs=1, batch_size=8, subset=2, image_size=32)
    run_id = store.create(first, status="running")
    store.record_end(run_id, train(first))
    exp = ex.get_experiment("exp1")
    (run,) = [r for r in store.list() if r.id == run_id]
    offered = ex.init_choices("resnet18", store.list(), imagenet_available=False)
    assert offered[0][0] == f"run:{run_id}"
    plans = exp.plan(ex.Choices(inits={"resnet18": f"run:{run_id}", "alexnet": "none"},
                                init_options={"resnet18": run.config.options}))
    freeze = next(p for p in plans if p.key == "resnet18-freeze")
    result = train(_shrunk(freeze.config))
    assert result.status == "finished", result.message


def test_runs_stuck_at_the_majority_class_are_flagged():
    stuck = outcome("alexnet-freeze", 0.542)
    stuck.classes, stuck.confusion = ["ants", "bees"], [[0, 70], [0, 83]]
    fine = outcome("resnet18-freeze", 0.80)
    fine.classes, fine.confusion = ["ants", "bees"], [[60, 10], [20, 63]]
    lines = ex.conclude(ex.get_experiment("exp1"), [stuck, fine])
    assert "No better than always answering 'bees' (0.542 of the validation images): AlexNet, freeze all but the last layer (0.542)" in lines[-1]
    assert "ResNet-18" not in lines[-1]


def test_plan_estimates_are_learned_per_model_from_this_servers_epochs(tmp_path):
    from types import SimpleNamespace as NS

    from cnnviz.jobs.estimates import FROM_BENCHMARK
    from cnnviz.runs import RunStore

    store = RunStore(tmp_path / "home")
    plans = ex.get_experiment("exp3").plan(ex.Choices(size="quick"))  # probes of one network at every layer
    measured, other = plans[1].config, plans[2].config
    assert (measured.arch, measured.mode) == (other.arch, other.mode) and measured.probe_layer != other.probe_layer
    run_id = store.create(measured)
    store.record_start(run_id, params=1, flops=1, classes=["a"], image_size=measured.image_size)
    rows = [{"epoch": e, "val_acc": 0.5, "seconds": 7.0} for e in range(1, measured.epochs + 1)]
    store.record_end(run_id, NS(status="finished", message=None, epochs=rows, best_val_acc=0.5, best_epoch=1,
                                train_seconds=7.0 * measured.epochs, params=1, flops=1, classes=["a"], confusion=None,
                                per_class_acc=None, checkpoint=None, val_predictions=None))

    estimates = ex.estimate_plans(plans, store, fallback=lambda config: 60.0)

    assert len(estimates) == len(plans)
    assert estimates[1].source == f"measured from {measured.epochs} epochs on this server"
    assert estimates[1].seconds == pytest.approx(7.0 * measured.epochs)
    # A probe at another layer costs something else: the benchmark, with its band, until it has run here.
    assert (estimates[2].seconds, estimates[2].source) == (60.0, FROM_BENCHMARK)
    assert estimates[2].low < estimates[2].seconds < estimates[2].high


def test_stand_in_runs_are_not_set_beside_the_published_figures():
    exp = ex.get_experiment("exp4")
    fine = outcome("alexnet-fine", 0.29, exp="exp4", dataset="cifar10")
    assert ex.results_table(exp, [fine]).loc[0, "published"] == ""
    assert not any("Sharma" in line for line in ex.conclude(exp, [fine, outcome("resnet-fine", 0.30, exp="exp4", dataset="cifar10")]))
    own = outcome("alexnet-fine", 0.29, exp="exp4")
    assert ex.results_table(exp, [own]).loc[0, "published"] == "0.360"
    shapes = outcome("resnet18-freeze", 0.9, dataset="shapes")
    assert not any("published" in line for line in ex.conclude(ex.get_experiment("exp1"), [shapes]))


def test_val_subset_limits_the_validation_split():
    from cnnviz.data import load_splits

    train, val = load_splits(TrainConfig(dataset="shapes", subset=3, val_subset=2), image_size=16)
    assert len(train) == 30 and len(val) == 20
    assert set(val.class_counts().values()) == {2}


def test_published_test_figures_are_compared_with_test_accuracy():
    exp = ex.get_experiment("exp2")
    tuned = outcome("resnet18-finetune", 0.96, exp="exp2")
    tuned.test_acc = 0.93
    row = ex.results_table(exp, [tuned]).loc[0]
    assert row["published split"] == "test" and row["compared on"] == "test" and row["test acc"] == 0.93
    assert row["difference (points)"] == "-2.0"  # 0.930 - 0.950, not the validation figure
    line = next(line for line in ex.conclude(exp, [tuned]) if line.startswith("Against the published"))
    assert "test 0.930 vs test 0.950" in line
    # without a test set the validation figure stands in, and the table and sentence say so
    tuned.test_acc = None
    row = ex.results_table(exp, [tuned]).loc[0]
    assert row["compared on"] == "val" and row["difference (points)"] == "+1.0"
    assert "no test set" in next(line for line in ex.conclude(exp, [tuned]) if line.startswith("Against"))
    # the hymenoptera report chose and reported on val: validation against validation
    freeze = outcome("resnet18-freeze", 0.9)
    freeze.test_acc = 0.5
    assert ex.results_table(ex.get_experiment("exp1"), [freeze]).loc[0, "compared on"] == "val"


def test_quick_plans_test_as_many_images_per_class_as_they_validate():
    for key in ex.list_experiments():
        for plan in ex.get_experiment(key).plan(ex.Choices(size="quick")):
            assert plan.config.test_subset == plan.config.val_subset


def test_random_init_stand_ins_pass_the_honest_modes_check():
    """A card's "random init" stand-in is labelled as such, so its freeze/probe runs are allowed explicitly."""
    from cnnviz.training.checks import config_problems

    for key in ex.list_experiments():
        exp = ex.get_experiment(key)
        plans = exp.plan(ex.Choices(size="quick", inits={arch: "none" for arch in exp.pretrained_archs}))
        for plan in plans:
            assert not [p for p in config_problems(plan.config) if "randomly initialised" in p], (key, plan.key)


@pytest.mark.parametrize("test_acc,subset,caveat", [
    (0.812, None, None),  # full data, matched the report: no excuse offered
    (0.790, None, "runs of 8 epochs"),  # full data, fell short with fewer epochs than the report
    (0.300, 100, "quick runs see far fewer images"),
])
def test_published_caveat_only_for_runs_that_fell_short(test_acc, subset, caveat):
    exp = ex.get_experiment("exp5")
    plan = {p.key: p for p in exp.plan(ex.Choices(size="full"))}["alexresnet"]
    run = ex.Outcome(key="alexresnet", label=plan.label, config=plan.config.replace(epochs=8, subset=subset),
                     best_val_acc=test_acc, test_acc=test_acc)
    line = next(line for line in ex.conclude(exp, [run]) if line.startswith("Against the published"))
    assert f"AlexResNet test {test_acc:.3f} vs test 0.808" in line
    assert ("expect to fall short" in line) == (caveat is not None)
    if caveat:
        assert caveat in line
