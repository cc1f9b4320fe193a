"""Run-time estimates learned from the store's finished epochs, with a band, and the benchmark fallback."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from cnnviz.jobs.estimates import (FROM_BENCHMARK, epoch_estimate, estimate_run, queue_schedule, remaining_seconds,
                                   split_sizes)
from cnnviz.runs import RunStore
from cnnviz.training.config import TrainConfig

CONFIG = TrainConfig(arch="resnet18", dataset="shapes", mode="scratch", image_size=32, subset=10, val_subset=5,
                     epochs=3)


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "home")


def finished_run(store: RunStore, config: TrainConfig, epoch_seconds: list[float], *, setup: float = 2.0) -> int:
    """A finished run whose epochs took ``epoch_seconds`` and whose setup took ``setup`` seconds."""
    run_id = store.create(config)
    store.record_start(run_id, params=1, flops=1, classes=["a", "b"], image_size=config.image_size)
    rows = [{"epoch": i, "val_acc": 0.5, "seconds": s} for i, s in enumerate(epoch_seconds, start=1)]
    store.record_end(run_id, SimpleNamespace(
        status="finished", message=None, epochs=rows, best_val_acc=0.5, best_epoch=1,
        train_seconds=sum(epoch_seconds) + setup, params=1, flops=1, classes=["a", "b"], confusion=None,
        per_class_acc=None, checkpoint=None, val_predictions=None))
    return run_id


def test_split_sizes_count_the_carved_pictures_a_run_does_not_validate_on_as_training():
    capped = TrainConfig(dataset="cifar10", val_subset=100)
    assert split_sizes(capped) == (49_000, 1_000)
    assert split_sizes(capped.replace(val_carve="share")) == (45_000, 1_000)
    assert split_sizes(capped.replace(val_subset=None)) == (45_000, 5_000)


def test_test_time_augmentation_multiplies_the_validation_work():
    from cnnviz.recipes import estimate_epoch_seconds
    from cnnviz.training.config import evaluation_views

    assert [evaluation_views(f, s) for f in (False, True) for s in (False, True)] == [1, 3, 2, 6]
    assert evaluation_views(True, True, mode="freeze") == evaluation_views(True, True, mode="probe") == 1
    one = estimate_epoch_seconds(flops_per_image=10, train_images=0, val_images=100, flops_per_second=1.0)
    assert estimate_epoch_seconds(flops_per_image=10, train_images=0, val_images=100, flops_per_second=1.0,
                                  views=6) == 6 * one


def test_before_any_run_the_benchmark_is_the_guess(store):
    assert estimate_run(CONFIG, store) is None
    guess = estimate_run(CONFIG, store, fallback=lambda config: 60.0)
    assert (guess.seconds, guess.low, guess.high, guess.source) == (60.0, 30.0, 120.0, FROM_BENCHMARK)


def test_measured_epochs_replace_the_benchmark(store):
    train, val = split_sizes(CONFIG)
    images = train + val
    # Two earlier runs of the same architecture, size and mode: epochs at 1, 2, 3 and 4 ms per image.
    finished_run(store, CONFIG, [0.001 * images, 0.002 * images])
    finished_run(store, CONFIG, [0.003 * images, 0.004 * images])
    finished_run(store, CONFIG.replace(arch="alexnet_cifar"), [100.0, 100.0])  # another architecture: ignored
    finished_run(store, CONFIG.replace(image_size=64), [100.0, 100.0])  # another size: ignored

    estimate = estimate_run(CONFIG, store, fallback=lambda config: pytest.fail("the benchmark is not needed"))

    assert estimate.source == "measured from 4 epochs on this server"
    per_epoch = 0.0025 * images  # the median of 1-4 ms per image
    assert estimate.seconds == pytest.approx(3 * per_epoch + 2.0)  # three epochs plus the median setup time
    assert estimate.low < estimate.seconds < estimate.high
    assert estimate.low == pytest.approx(3 * 0.00175 * images + 2.0)  # the interquartile band
    assert estimate.high == pytest.approx(3 * 0.00325 * images + 2.0)


def test_more_images_take_proportionally_longer(store):
    finished_run(store, CONFIG, [5.0, 5.0, 5.0])
    small = estimate_run(CONFIG, store)
    big = estimate_run(CONFIG.replace(subset=20, val_subset=10), store)
    assert big.seconds - 2.0 == pytest.approx(2 * (small.seconds - 2.0))
    assert small.low == small.high == small.seconds  # identical epochs: no spread


def test_epoch_estimate_and_remaining_time(store):
    run_id = finished_run(store, CONFIG, [4.0, 6.0])
    train, val = split_sizes(CONFIG)
    epoch = epoch_estimate(store, arch="resnet18", image_size=32, mode="scratch", images=train + val)
    assert epoch.seconds == pytest.approx(5.0) and (epoch.low, epoch.high) == pytest.approx((4.0, 6.0))
    assert epoch_estimate(store, arch="resnet18", image_size=32, mode="freeze", images=100) is None
    estimate = estimate_run(CONFIG, store)
    assert remaining_seconds(store.get(run_id), store, estimate) == pytest.approx(estimate.seconds / 3)


def test_queue_schedule_gives_each_queued_run_the_first_free_worker(store):
    finished_run(store, CONFIG, [10.0, 10.0, 10.0], setup=0.0)  # a CONFIG run takes 30 s here
    running = store.create(CONFIG, student="ann")
    store.record_start(running, params=1, flops=1, classes=["a", "b"], image_size=32)
    store.record_epoch(running, {"epoch": 1, "seconds": 10.0})  # one of three epochs done: 20 s left
    first, second, third = (store.create(CONFIG, student=s) for s in ("bob", "cat", "dan"))
    unknown = store.create(CONFIG.replace(arch="vgg11"), student="eve")  # no history, no benchmark

    slots = queue_schedule(store, workers=2, now=1000.0)

    assert [(s.run.id, s.position) for s in slots] == [(first, 1), (second, 2), (third, 3), (unknown, 4)]
    assert (slots[0].start, slots[0].end) == pytest.approx((1000.0, 1030.0))  # the idle worker
    assert (slots[1].start, slots[1].end) == pytest.approx((1020.0, 1050.0))  # after the running run
    assert (slots[2].start, slots[2].end) == pytest.approx((1030.0, 1060.0))
    assert slots[3].start == pytest.approx(1050.0) and slots[3].end is None
    with_benchmark = queue_schedule(store, workers=2, now=1000.0, fallback=lambda config: 100.0)
    assert with_benchmark[3].end == pytest.approx(1150.0)


def test_another_model_of_the_same_architecture_is_not_a_measurement(store):
    deep = CONFIG.replace(arch="cifar_resnet", options={"depth": 56})
    finished_run(store, deep.replace(options={"depth": 20}), [1.0, 1.0])  # a shallower network: less work
    probe = CONFIG.replace(mode="probe", probe_layer="layer4")
    finished_run(store, probe.replace(probe_layer="input"), [1.0, 1.0])  # pixels only: no backbone
    assert estimate_run(deep, store) is None and estimate_run(probe, store) is None
    finished_run(store, deep, [9.0, 9.0])
    assert estimate_run(deep, store).source == "measured from 2 epochs on this server"


def test_options_left_to_their_defaults_match_the_same_options_written_out(store):
    """A command-line run stores ``{}``; the page stores every option: the same network, so a measurement."""
    from cnnviz.models import resolve_options

    spelled = CONFIG.replace(arch="cifar_resnet", options=resolve_options("cifar_resnet", {}))
    finished_run(store, spelled.replace(options={}), [4.0, 4.0])
    found = estimate_run(spelled, store)
    assert found is not None and found.source == "measured from 2 epochs on this server"
