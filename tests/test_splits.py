"""Three splits: train, validation (chooses the best epoch) and test (evaluated once, at the end).

Validation and test never overlap, the test set never reaches model selection, a split is the
same for the same seed and changes with another, and every class keeps its share.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cnnviz import data
from cnnviz.data import load_dataset, load_splits, load_test, loading, split_warnings, stratified_parts
from cnnviz.training import TrainConfig, train
from cnnviz.training import trainer as trainer_module
from tests.data_helpers import write_class_folders, write_hymenoptera


def _positions(name: str, *, path: Path | None = None, root: Path | None = None, val_split: str = "official",
               seed: int = 0) -> dict:
    """Which index split and positions each of train/val/test is (None: no test set)."""
    index = loading._index(name, root or Path("."), path, "fine")
    return loading._plan(index, name, val_split, seed)


def _rows(plan_entry) -> set[tuple[str, int]]:
    split, positions, _ = plan_entry
    if positions is None:
        return {(split, -1)}  # a whole split of its own
    return {(split, int(p)) for p in positions}


def test_stratified_parts_are_disjoint_cover_everything_and_keep_each_class():
    labels = torch.arange(4).repeat_interleave(torch.tensor([100, 60, 50, 200]))
    rest, val, test = stratified_parts(labels, (0.1, 0.2), seed=7)
    together = torch.cat([rest, val, test])
    assert len(set(together.tolist())) == len(labels) == len(together)  # disjoint, and nothing lost
    assert torch.bincount(labels[val]).tolist() == [10, 6, 5, 20]  # 10% of every class
    assert torch.bincount(labels[test]).tolist() == [20, 12, 10, 40]  # 20% of every class


def test_split_is_reproducible_from_the_seed_and_changes_with_another():
    labels = torch.arange(5).repeat(40)
    first = stratified_parts(labels, (0.1, 0.2), seed=3)
    again = stratified_parts(labels, (0.1, 0.2), seed=3)
    other = stratified_parts(labels, (0.1, 0.2), seed=4)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[1], other[1]) and not torch.equal(first[2], other[2])


def test_cifar_validation_is_carved_from_train_and_test_is_the_test_batch(tmp_path):
    from tests.data_helpers import write_cifar10_pickles

    root = write_cifar10_pickles(tmp_path / "root")
    plan = _positions("cifar10", root=root)
    assert plan["val"][0] == "train" and plan["test"] == ("test", None, "the dataset's own test split")
    assert not set(plan["val"][1].tolist()) & set(plan["train"][1].tolist())
    config = TrainConfig(dataset="cifar10", data_root=str(root))
    train_data, val = load_splits(config, image_size=16)
    test = load_test(config, image_size=16)
    assert len(train_data) + len(val) == 150 and len(test) == len(load_dataset("cifar10", root=root, split="test"))
    assert "carved" in val.origin and "test split" in test.origin
    # the same seed carves the same validation images, another seed others
    again = load_splits(config, image_size=16)[1]
    other = load_splits(config.replace(seed=1), image_size=16)[1]
    assert torch.equal(val.images, again.images) and not torch.equal(val.images, other.images)
    # stratified: about a tenth of every class (rounding per class)
    train_counts, val_counts = train_data.class_counts(), val.class_counts()
    for c in train_data.classes:
        total = train_counts[c] + val_counts[c]
        assert val_counts[c] == max(1, round(total * data.get_dataset_spec("cifar10").val_fraction))


def test_a_cap_bounds_a_part_and_what_it_leaves_stays_in_the_rest():
    labels = torch.arange(3).repeat_interleave(torch.tensor([100, 40, 200]))
    rest, val = stratified_parts(labels, (0.1,), seed=7, caps=(6,))
    assert torch.bincount(labels[val]).tolist() == [6, 4, 6]  # at most 6 each; 10% of 40 is fewer
    assert torch.bincount(labels[rest]).tolist() == [94, 36, 194]
    uncapped = stratified_parts(labels, (0.1,), seed=7)[1]
    assert set(val.tolist()) <= set(uncapped.tolist())  # the same shuffle, cut shorter


def test_carved_validation_holds_out_only_the_pictures_it_validates_on(tmp_path):
    from tests.data_helpers import write_cifar10_pickles

    root = write_cifar10_pickles(tmp_path / "root")
    config = TrainConfig(dataset="cifar10", data_root=str(root), val_subset=1)
    train_data, val = load_splits(config, image_size=16)
    assert set(val.class_counts().values()) == {1}
    assert len(train_data) + len(val) == 150  # the carved pictures not validated on train
    assert val.origin.startswith("at most 1 picture of each class") and "less at most 1 picture for validation" \
        in train_data.origin
    full_train, full_val = load_splits(config.replace(val_subset=None), image_size=16)
    assert len(train_data) > len(full_train)
    train_rows = {bytes(x.numpy()) for x in train_data.images}
    assert not any(bytes(x.numpy()) in train_rows for x in val.images)  # still disjoint
    from cnnviz.data import load_validation
    assert torch.equal(load_validation(config, image_size=16).images, val.images)  # what the Compare page shows


def test_a_run_stored_before_capped_carving_gets_back_the_pictures_it_validated_on(tmp_path):
    from tests.data_helpers import write_cifar10_pickles

    from cnnviz.data import load_validation

    root = write_cifar10_pickles(tmp_path / "root", per_class=8)  # 40 per class over the 5 batch files
    stored = TrainConfig(dataset="cifar10", data_root=str(root), val_subset=2).to_dict()
    del stored["val_carve"]  # a run card written before the setting existed
    old = TrainConfig.from_dict(stored)
    assert old.val_carve == "share" and TrainConfig.from_dict({**stored, "val_carve": "capped"}).val_carve == "capped"
    # the old rule: the whole 10% share held out, val_subset of it validated
    share = load_dataset("cifar10", root=root, split="val", subset=2)
    assert torch.equal(load_validation(old, image_size=32).images, share.images)
    train_old, _ = load_splits(old, image_size=32)
    assert len(train_old) == 400 - 40  # 4 per class held out, 2 of them validated
    capped = old.replace(val_carve="capped")
    assert len(load_splits(capped, image_size=32)[0]) == 400 - 20  # only the 2 validated held out
    from cnnviz.compare import validation_key
    assert validation_key(old) != validation_key(capped)  # Compare will not pair their predictions


def test_a_capped_folder_keeps_validation_training_and_test_apart(tmp_path):
    path = write_class_folders(tmp_path, ["a", "b"], 60, size=12, zip=True, name="big")
    config = TrainConfig(dataset="folder", data_path=str(path), val_subset=3)
    train_data, val = load_splits(config, image_size=12)
    test = load_test(config, image_size=12)
    assert set(val.class_counts().values()) == {3} and set(test.class_counts().values()) == {12}
    assert len(train_data) + len(val) + len(test) == 120  # the cap's leftovers train
    rows = lambda d: {bytes(x.numpy()) for x in d.images}  # noqa: E731
    assert not rows(train_data) & rows(val) and not rows(train_data) & rows(test) and not rows(val) & rows(test)


def test_a_coarse_cap_is_spread_over_each_superclass_fine_classes(tmp_path):
    from tests.data_helpers import write_cifar100_pickles

    root = write_cifar100_pickles(tmp_path / "root", per_class=20)  # 100 fine classes in 20 superclasses of 5
    fine = TrainConfig(dataset="cifar100", data_root=str(root), val_subset=1)
    coarse = fine.replace(labels="coarse", val_subset=5)
    fine_train, fine_val = load_splits(fine, image_size=32)
    coarse_train, coarse_val = load_splits(coarse, image_size=32)
    assert len(fine_val) == 100 and len(coarse_val) == 100 and set(coarse_val.class_counts().values()) == {5}
    assert torch.equal(fine_train.images, coarse_train.images)  # the same pictures held out either way


def test_hymenoptera_keeps_its_val_folder_and_has_no_test_set(tmp_path):
    root = write_hymenoptera(tmp_path / "root", n=10)
    config = TrainConfig(dataset="hymenoptera", data_root=str(root.parent))
    _, val = load_splits(config, image_size=16)
    assert val.class_counts() == {"ants": 5, "bees": 5} and val.origin == "the dataset's own val split"
    assert load_test(config, image_size=16) is None
    with pytest.raises(data.NoTestSet, match="no test set"):
        load_dataset("hymenoptera", root=root.parent, split="test")
    # random: validation carved from train, and the val folder becomes the test set
    carved = config.replace(val_split="random")
    _, val = load_splits(carved, image_size=16)
    test = load_test(carved, image_size=16)
    assert val.class_counts() == {"ants": 2, "bees": 2} and test.class_counts() == {"ants": 5, "bees": 5}


def test_shapes_has_three_generated_splits_that_differ():
    config = TrainConfig(dataset="shapes", subset=5, val_subset=5, test_subset=5)
    train_data, val = load_splits(config, image_size=16)
    test = load_test(config, image_size=16)
    assert len(test) == 50 and test.class_counts() == val.class_counts()
    flat = lambda d: {bytes(img.flatten().tolist()) for img in d.images}  # noqa: E731
    assert not flat(val) & flat(test) and not flat(train_data) & flat(test)


def test_a_large_folder_gets_disjoint_validation_and_test_parts(tmp_path):
    path = write_class_folders(tmp_path, ["a", "b"], 50, size=12, zip=True, name="big")
    plan = _positions("folder", path=path)
    assert plan["test"] is not None
    train_rows, val_rows, test_rows = _rows(plan["train"]), _rows(plan["val"]), _rows(plan["test"])
    assert not val_rows & test_rows and not train_rows & test_rows and not train_rows & val_rows
    assert len(train_rows) + len(val_rows) + len(test_rows) == 100
    test = load_dataset("folder", path=path, split="test", image_size=12)
    assert test.class_counts() == {"a": 10, "b": 10}
    # a small folder gets validation only, and a warning that it is too small to rank runs
    small = write_class_folders(tmp_path, ["a", "b"], 12, size=12, zip=True, name="small")
    assert _positions("folder", path=small)["test"] is None
    val = load_dataset("folder", path=small, split="val", image_size=12)
    assert split_warnings(val) and "fewer than 10" in split_warnings(val)[0]
    assert not split_warnings(test)


def _tiny(**changes) -> TrainConfig:
    base = dict(arch="cifar_resnet", dataset="shapes", subset=8, val_subset=4, test_subset=4, epochs=3,
                batch_size=16, image_size=16, lr=0.05, device="cpu")
    return TrainConfig(**{**base, **changes})


def test_the_test_set_is_evaluated_once_after_model_selection(monkeypatch):
    """A spy on the test loader: it is called once, after every epoch and the best-epoch choice are final."""
    events: list[str] = []
    real = trainer_module.load_test

    def spy(config, **kwargs):
        events.append("load_test")
        return real(config, **kwargs)

    class Listener(trainer_module.Callback):
        def after_epoch(self, state):
            events.append(f"epoch {state.epoch}, best {state.best_epoch}")

    monkeypatch.setattr(trainer_module, "load_test", spy)
    result = train(_tiny(), callbacks=[Listener()])
    assert result.status == "finished"
    assert events[-1] == "load_test" and events.count("load_test") == 1 and len(events) == 4
    assert result.test_acc is not None and result.test_loss is not None
    assert sum(map(sum, result.test_confusion)) == 40 and len(result.test_per_class_acc) == 10
    assert result.splits["test"]["images"] == 40 and "test split" in result.splits["test"]["from"]
    assert "test acc" in result.message


def test_poisoned_test_labels_change_nothing_but_the_test_figures(monkeypatch):
    clean = train(_tiny())
    real = trainer_module.load_test

    def poisoned(config, **kwargs):
        test = real(config, **kwargs)
        test.labels = (test.labels + 1) % len(test.classes)  # every label wrong
        return test

    monkeypatch.setattr(trainer_module, "load_test", poisoned)
    dirty = train(_tiny())
    assert (dirty.best_epoch, dirty.best_val_acc) == (clean.best_epoch, clean.best_val_acc)
    assert [r["val_acc"] for r in dirty.epochs] == [r["val_acc"] for r in clean.epochs]
    assert dirty.confusion == clean.confusion and dirty.val_predictions == clean.val_predictions
    assert dirty.test_confusion != clean.test_confusion


def test_test_figures_reach_the_store_and_the_run_card(tmp_path):
    from cnnviz.jobs import run_training
    from cnnviz.runs import RunStore

    store = RunStore(tmp_path / "home")
    config = _tiny(epochs=1)
    run_id = store.create(config)
    result = run_training(config, store=store, run_id=run_id)
    run = store.get(run_id)
    assert run.test_acc == pytest.approx(result.test_acc) and run.test_loss == pytest.approx(result.test_loss)
    assert run.test_confusion == result.test_confusion and run.splits["val"]["images"] == 40
    card = store.run_card(run_id)["results"]
    assert card["test_acc"] == run.test_acc and card["test_confusion"] == run.test_confusion
    assert store.get(run_id).summary()["test_acc"] == run.test_acc
