"""How long a run will take on this server, learned from the epochs its runs have already trained.

One speed measurement per server process is wrong by 10-40x when taken while another run trains
(and stays wrong until a restart); the epochs in the store are measured under the server's real
load, so they set the estimate as soon as there are any: seconds per image for one model (architecture,
its options, input size, mode and probe layer), its median over the last epochs of matching runs, and
the spread of those epochs as the band. Before any matching run the caller's FLOPs benchmark is the
only guess. This is the one place that learns speed from the store: the Train, Experiments and Teacher
pages all ask it.

Torch is imported to fill in an architecture's option defaults (the pages that estimate have it loaded).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Callable

from cnnviz.runs.store import Run, RunStore

SAMPLES = 20  # the most recent matching epochs that set an estimate
SCAN_RUNS = 200  # newest runs looked at: enough history, and the Train page stays quick
BENCHMARK_BAND = 2.0  # a one-off FLOPs benchmark is good to a factor of about 2 on an idle machine
FROM_BENCHMARK = "from a FLOPs benchmark"


@dataclass(frozen=True)
class Estimate:
    """Seconds with a band (``low`` to ``high``) and where the numbers come from."""

    seconds: float
    low: float
    high: float
    source: str  # "measured from N epochs on this server" or "from a FLOPs benchmark"
    epochs_measured: int = 0


def split_sizes(config) -> tuple[int, int]:
    """(training images, validation images) a ``TrainConfig`` will use, from the dataset registry's split sizes."""
    from cnnviz.data import get_dataset_spec  # lazy: the data registry imports torch

    spec = get_dataset_spec(config.dataset)
    sizes = spec.split_images
    train, val = sizes.get("train", 1_000), sizes.get("val", 250)
    carved = config.val_split == "random" or "val" not in sizes  # validation carved from the training images
    if carved:
        val = max(1, round(train * spec.val_fraction))
        train -= val
    classes = spec.classes_for(config.labels) or 10
    if config.val_subset:
        kept = min(val, config.val_subset * classes)
        if carved and config.val_carve == "capped":
            train += val - kept  # only the validated pictures are held out
        val = kept
    if config.subset:
        train = min(train, config.subset * classes)
    return train, val


def input_size(config) -> int:
    """The side a config trains at (the architecture's choice when ``config.image_size`` is None)."""
    if config.image_size:
        return int(config.image_size)
    from cnnviz.training.modes import resolve_image_size  # torch: only for an automatic size

    return int(resolve_image_size(config))


@dataclass(frozen=True)
class Speed:
    """Seconds per image (training plus validation, per epoch) measured on this server, and setup seconds."""

    per_image: list[float]  # one per epoch, newest first
    setup: list[float]  # per finished run: its time outside the epochs (decoding data, frozen features)


def _matches(run: Run, *, arch: str, image_size: int, mode: str, options: dict, probe_layer: str | None) -> bool:
    # Options (depth, SE blocks) and the probed layer change the work per image as much as the architecture does.
    # ``options`` comes resolved; a stored run's are resolved only once everything cheaper matched.
    cfg = run.config
    size = run.image_size or cfg.image_size
    same_probe = mode != "probe" or cfg.probe_layer == probe_layer
    return (cfg.arch == arch and cfg.mode == mode and size == image_size and same_probe
            and _resolved(arch, cfg.options) == options)


def _resolved(arch: str, options: dict | None) -> dict:
    """``options`` with the architecture's defaults filled in: ``{}`` from the CLI equals the page's full set."""
    from cnnviz.models import resolve_options  # torch; the pages that estimate have it loaded already

    try:
        return resolve_options(arch, options)
    except ValueError:  # an architecture no longer registered, or an option it dropped: compare as stored
        return dict(options or {})


def measured_speed(store: RunStore, *, arch: str, image_size: int, mode: str, options: dict | None = None,
                   probe_layer: str | None = None, last: int = SAMPLES) -> Speed:
    """The last ``last`` epochs of runs of ``arch`` (with ``options``) at ``image_size`` px in ``mode`` on this server."""
    per_image: list[float] = []
    setup: list[float] = []
    wanted = _resolved(arch, options)
    for run in store.list()[:SCAN_RUNS]:
        if len(per_image) >= last:
            break
        if not _matches(run, arch=arch, image_size=image_size, mode=mode, options=wanted, probe_layer=probe_layer):
            continue
        rows = [r for r in store.epochs(run.id) if r.get("seconds")]
        if not rows:
            continue
        train, val = split_sizes(run.config)
        per_image += [r["seconds"] / max(train + val, 1) for r in reversed(rows)][: last - len(per_image)]
        if run.status == "finished" and run.train_seconds:
            setup.append(max(run.train_seconds - sum(r["seconds"] for r in rows), 0.0))
    return Speed(per_image=per_image, setup=setup)


def _band(values: list[float]) -> tuple[float, float, float]:
    """(median, low, high): the interquartile range from four samples on, else min to max."""
    middle = statistics.median(values)
    if len(values) >= 4:
        low, _, high = statistics.quantiles(values, n=4, method="inclusive")
        return middle, low, high
    return middle, min(values), max(values)


def _measured(speed: Speed, images: int, epochs: int) -> Estimate:
    middle, low, high = _band(speed.per_image)
    setup = statistics.median(speed.setup) if speed.setup else 0.0
    n = len(speed.per_image)
    return Estimate(seconds=images * epochs * middle + setup, low=images * epochs * low + setup,
                    high=images * epochs * high + setup,
                    source=f"measured from {n} epoch{'s' if n != 1 else ''} on this server", epochs_measured=n)


def from_benchmark(seconds: float) -> Estimate:
    """An estimate from a FLOPs benchmark alone, with its factor-of-two band."""
    return Estimate(seconds=seconds, low=seconds / BENCHMARK_BAND, high=seconds * BENCHMARK_BAND,
                    source=FROM_BENCHMARK)


def epoch_estimate(store: RunStore, *, arch: str, image_size: int, mode: str, images: int,
                   options: dict | None = None, probe_layer: str | None = None) -> Estimate | None:
    """Seconds for one epoch over ``images`` (training plus validation), or None before any matching run."""
    speed = measured_speed(store, arch=arch, image_size=image_size, mode=mode, options=options,
                           probe_layer=probe_layer)
    return _measured(Speed(speed.per_image, []), images, 1) if speed.per_image else None


def estimate_run(config, store: RunStore, *, fallback: Callable[[object], float] | None = None) -> Estimate | None:
    """Seconds to train ``config`` here: from this server's epochs, else ``fallback(config)`` (a FLOPs benchmark).

    None when neither is available.
    """
    speed = measured_speed(store, arch=config.arch, image_size=input_size(config), mode=config.mode,
                           options=config.options, probe_layer=config.probe_layer)
    if speed.per_image:
        train, val = split_sizes(config)
        return _measured(speed, train + val, config.epochs)
    return from_benchmark(float(fallback(config))) if fallback is not None else None


def remaining_seconds(run: Run, store: RunStore, estimate: Estimate | None) -> float | None:
    """Seconds left for a running run: its estimate scaled by the epochs still to train."""
    if estimate is None:
        return None
    done = len(store.epochs(run.id))
    epochs = max(run.config.epochs, 1)
    return estimate.seconds * max(epochs - done, 0) / epochs


@dataclass(frozen=True)
class Slot:
    """A queued run's place: its position (1 = next) and estimated start and end (Unix seconds; None: unknown)."""

    run: Run
    position: int
    start: float | None
    end: float | None


def queue_schedule(store: RunStore, *, workers: int, now: float, fallback: Callable[[object], float] | None = None,
                   running: list[Run] | None = None, queued: list[Run] | None = None) -> list[Slot]:
    """When each queued run should start and end, with ``workers`` runs training at a time.

    Each queued run takes the first worker to come free, as the queue orders them; a worker's
    free time is unknown after a run whose length cannot be estimated.
    """
    running = running if running is not None else store.list("running")
    queued = queued if queued is not None else store.queue()
    free: list[float | None] = []
    for run in running:
        left = remaining_seconds(run, store, estimate_run(run.config, store, fallback=fallback))
        free.append(None if left is None else now + left)
    free += [now] * max(workers - len(free), 0)
    slots = []
    for position, run in enumerate(queued, start=1):
        known = [t for t in free if t is not None]
        if not known:
            slots.append(Slot(run, position, None, None))
            continue
        start = min(known)
        estimate = estimate_run(run.config, store, fallback=fallback)
        end = None if estimate is None else start + estimate.seconds
        free[free.index(start)] = end
        slots.append(Slot(run, position, start, end))
    return slots
