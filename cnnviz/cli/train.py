"""``train``: train a model; the run goes into the run store like the app's runs.

Its flags are generated from ``TrainConfig``'s field metadata; a flag not given takes
the value of ``cnnviz.recipes.default_config`` for the chosen architecture, dataset and
mode, the same defaults the Train page starts from. ``--recipe NAME`` starts from a named
recipe instead (``python -m cnnviz recipes`` lists them); the flags given still override it.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path

from cnnviz.cli.common import (
    PROG,
    UsageError,
    add_option_flag,
    add_student_flag,
    decode_progress,
    epoch_line,
    fmt,
    imagenet_weights_name,
    parse_options,
    print_json,
)
from cnnviz.training.config import knobs, value_type


def add_parser(sub) -> None:
    """Register ``train`` with one flag per ``TrainConfig`` field."""
    p = sub.add_parser("train", help="train a model; the run goes into the run store like app runs",
                       description="Flags not given take the defaults of the recipe for the architecture, "
                                   "dataset and mode (the Train page's defaults), or of --recipe.")
    add_run_flags(p)
    add_student_flag(p)
    p.add_argument("--json", action="store_true", help="print one JSON document (progress stays on stderr)")
    p.set_defaults(func=run)


def add_run_flags(p: argparse.ArgumentParser) -> None:
    """The flags that say which run: ``--recipe``, one per ``TrainConfig`` field, ``--option``.

    ``train``, ``submit`` and ``lr-find`` all take them, so a run is asked for the same way in each.
    """
    add_recipe_flag(p)
    add_config_flags(p)
    add_option_flag(p)


def add_config_flags(p: argparse.ArgumentParser) -> None:
    """One flag per ``TrainConfig`` field that has one, from the field's metadata; unset flags stay None."""
    for f in knobs():
        meta = f.metadata
        if meta["flag"] == "":
            continue
        flag = meta["flag"] or "--" + f.name.replace("_", "-")
        base, optional = value_type(f)
        help = meta["help"] + (" (0: none)" if optional and base is int and "0:" not in meta["help"] else "")
        if base is bool:
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help)
        else:
            p.add_argument(flag, dest=f.name, type=base, choices=meta["choices"], default=None, help=help)


def add_recipe_flag(p: argparse.ArgumentParser) -> None:
    """``--recipe NAME``: start from a named recipe (its names come from ``cnnviz.recipes``)."""
    from cnnviz.recipes import NAMED_BY_NAME

    p.add_argument("--recipe", choices=list(NAMED_BY_NAME), default=None, metavar="NAME",
                   help="start from a named recipe (see `python -m cnnviz recipes`); other flags override it")


def config_from_args(args):
    """The TrainConfig the train flags describe: the recipe's defaults with the given flags applied.

    Only flags given on the command line count (unset ones are None), so ``--recipe`` keeps every
    value the user did not name.
    """
    from cnnviz.recipes import default_config, named_recipe

    given = {}
    for f in knobs():
        value = getattr(args, f.name, None)
        if value is None:
            continue
        base, optional = value_type(f)
        given[f.name] = None if optional and base is int and value == 0 else value  # 0 images per class: all
    options = parse_options(getattr(args, "option", []))
    if getattr(args, "recipe", None):
        return named_recipe(args.recipe).config(**given, **({"options": options} if options else {}))
    return default_config(**given, options=options)


def check_config(config, *, command: str = "train") -> None:
    """Refuse a config the registries reject (ConfigError: exit 2); say on stderr what it will do that its
    mode's name does not (fine-tuning random weights trains from scratch)."""
    from cnnviz.training.checks import config_notes, validate_config

    validate_config(config)
    for note in config_notes(config):
        print(f"{PROG} {command}: note: {note}", file=sys.stderr)


def prepare(config, *, command: str = "train") -> None:
    """Everything that can be wrong with the user's request, checked before a run is stored.

    The trainer reports a failure as a failed run (with a traceback); on the command line a
    missing dataset or weights file is a usage error: one line, exit code 2. Loading the data
    here also shows decoding progress, and the trainer then finds it in the cache.
    """
    from cnnviz.data import load_splits
    from cnnviz.device import pick_device
    from cnnviz.training.modes import resolve_image_size

    check_config(config, command=command)
    pick_device(config.device)
    check_init(config)
    size = resolve_image_size(config)
    load_splits(config, image_size=size, progress=decode_progress())


def check_init(config) -> None:
    """The weights ``--init`` names exist and load into the chosen network: a usage error otherwise, not a failed run.

    ``train`` and ``submit`` both ask it before anything is stored.
    """
    from cnnviz.training.checks import init_problem

    _check_init_exists(config)
    problem = init_problem(config)
    if problem:
        raise UsageError(f"--init {config.init}: {problem}")


def _check_init_exists(config) -> None:
    """The weights ``--init`` names exist (ImageNet weights are fetched into the cache here if needed)."""
    init = config.init
    if init == "none":
        return
    if init == "imagenet":
        from cnnviz.models import hub_checkpoints_dir, weights_file_name
        from cnnviz.models.weights import imagenet_state_dict

        name = imagenet_weights_name(config.arch, config.options, hint="; use --init none")
        if not (hub_checkpoints_dir() / weights_file_name(name)).is_file():
            imagenet_state_dict(name, progress=True)  # downloads into the cache, or WeightsUnavailable offline
    elif init.startswith("run:"):
        from cnnviz.runs import checkpoint_path

        checkpoint_path(init[4:])
    elif not Path(init).expanduser().is_file():
        raise UsageError(f"--init {init}: no such weights file (use none, imagenet, run:ID or a path)")


CACHED_NOTE = "(head only, on cached features)"


def cli_epoch_line(row: dict, *, cached: bool = False) -> str:
    """``epoch_line``, saying when the epoch's time counts only the head trained on cached frozen features."""
    return epoch_line(row) + (f" {CACHED_NOTE}" if cached else "")


class ProgressBar:
    """Training progress on stderr: a redrawn bar on a terminal, one line per epoch otherwise.

    A training listener like the run store's recorder (it hears before_fit, after_batch, after_epoch, after_fit).
    """

    def __init__(self, stream=None, width: int = 28):
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_draw = 0.0
        self._epoch_start = time.monotonic()
        self.cached = False  # whether epochs train the head on cached frozen features (known at before_fit)

    def before_fit(self, state) -> None:
        from cnnviz.recipes import features_cached

        params = getattr(state, "params", None)
        self._write(f"{state.config.describe()} on {getattr(state, 'device', '?')}: "
                    f"{len(getattr(state, 'classes', []) or [])} classes, "
                    f"{params:,} parameters\n" if params else f"{state.config.describe()}\n")
        self.cached = features_cached(mode=state.config.mode, augment=state.config.augment)
        if getattr(state, "phase", None) == "features":  # the trainer computed them in its setup, before this event
            started = getattr(state, "started_at", None)
            took = f" ({time.time() - started:.1f} s of setup before epoch 1)" if started else ""
            self._write(f"frozen features computed once{took}; "
                        + ("the epochs train only the head, on them\n" if self.cached else
                           "validation reads them; training augments, so it runs the frozen body each batch\n"))
        elif self.cached and getattr(state, "phase", None) == "data":  # found on disk: nothing was computed
            self._write("frozen features loaded from the cache; the epochs train only the head, on them\n")
        self._epoch_start = time.monotonic()

    def after_batch(self, state) -> None:
        now = time.monotonic()
        if not self.tty or now - self._last_draw < 0.1:
            return
        self._last_draw = now
        batch, batches = int(getattr(state, "batch", 0) or 0), int(getattr(state, "batches", 0) or 0)
        done = batch / batches if batches else 0.0
        filled = int(round(self.width * done))
        elapsed = now - self._epoch_start
        eta = elapsed / done - elapsed if done > 0 else 0.0
        loss = getattr(state, "loss", None)
        self._write(f"\repoch {state.epoch}/{state.epochs} [{'#' * filled}{'.' * (self.width - filled)}] "
                    f"{batch}/{batches} loss {loss if loss is None else f'{float(loss):.4f}'} eta {eta:4.0f}s ")

    def after_epoch(self, state) -> None:
        row = state.history[-1] if getattr(state, "history", None) else {}
        self._write(("\r" if self.tty else "") + cli_epoch_line(row, cached=self.cached) + " " * 8 + "\n")
        self._epoch_start = time.monotonic()

    def after_fit(self, state) -> None:
        message = getattr(state, "message", None)
        self._write(f"{getattr(state, 'status', 'done')}{': ' + message if message else ''}\n")

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


def _stop_on_ctrl_c(stop: threading.Event):
    """First Ctrl-C stops training after the current batch (run kept as ``stopped``); a second aborts."""
    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print(f"\n{PROG} train: stopping after this batch (Ctrl-C again to abort)", file=sys.stderr)

    try:
        return signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread (called from a test): no handler
        return None


def _on_one_terminal(bar: ProgressBar) -> bool:
    """Whether stdout and the progress stream show on the same terminal (so one copy of each line is enough)."""
    return bar.tty and sys.stdout.isatty()


def run(args) -> int:
    """Train the configured run; exit 1 when it diverged or failed."""
    from cnnviz.jobs import run_training
    from cnnviz.recipes import features_cached
    from cnnviz.runs import RunStore

    config = config_from_args(args)
    prepare(config)
    store = RunStore()
    run_id = store.create(config, status="running", student=args.student)  # trained here, owned by this process
    stop = threading.Event()
    previous = _stop_on_ctrl_c(stop)
    bar = ProgressBar()
    shared = _on_one_terminal(bar) and not args.json
    if shared:  # the summary line on stdout says how the run ended; the bar need not say it first
        bar.after_fit = lambda state: None
    try:
        result = run_training(config, store=store, run_id=run_id, stop=stop, callbacks=(bar,))
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    run = store.get(run_id)
    report = {
        "run_id": run_id, "name": run.label, "status": run.status, "message": run.message,
        "best_val_acc": run.best_val_acc, "best_epoch": run.best_epoch, "epochs": store.epochs(run_id),
        "train_seconds": run.train_seconds, "params": run.params, "flops": run.flops, "classes": run.classes,
        "checkpoint": run.checkpoint, "config": config.to_dict(),
    }
    if args.json:
        print_json(report)
    else:
        if not shared:  # on one terminal the bar has already shown each epoch
            cached = features_cached(mode=config.mode, augment=config.augment)
            for row in report["epochs"]:
                print(cli_epoch_line(row, cached=cached))
        best = (f"best val acc {fmt(run.best_val_acc)} at epoch {run.best_epoch}" if run.best_epoch
                else "no epoch finished")
        print(f"run {run_id} {run.status}: {best}, {fmt(run.train_seconds, '.1f')} s"
              + (f"; checkpoint {run.checkpoint}" if run.checkpoint else "")
              + (f" ({run.message})" if run.message else ""))
    return 1 if result.status in ("diverged", "failed") else 0
