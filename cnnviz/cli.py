"""The command line: ``python -m cnnviz summary|train|predict|runs|prefetch``.

With ``--json`` a command prints exactly one JSON document on stdout; progress and
errors go to stderr. A user error (unknown architecture, bad option, too small input,
missing dataset or run) exits with code 2 and one line on stderr, never a traceback.
Heavy imports (torch) happen inside the commands, so ``runs list`` stays quick.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from cnnviz.training.config import AUGMENTS, LOSSES, MODES, OPTIMIZERS, PRECISIONS, SCHEDULERS

PROG = "python -m cnnviz"


class UsageError(ValueError):
    """A mistake in the command line itself."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of argparse's usage block
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions whose message is written for the user (bad input, missing files), not bugs."""
    from cnnviz.runs import RunNotFound

    errors: list[type[BaseException]] = [ValueError, RunNotFound, FileNotFoundError]
    for module, name in (("cnnviz.data", "DatasetUnavailable"), ("cnnviz.models", "WeightsUnavailable")):
        if module in sys.modules:  # only if the command got as far as importing it
            errors.append(getattr(sys.modules[module], name))
    return tuple(errors)


def _one_line(exc: BaseException) -> str:
    text = " ".join(part.strip() for part in str(exc).strip().splitlines() if part.strip())
    return text or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if isinstance(exc, _user_errors()):
            print(f"{PROG} {args.command}: error: {_one_line(exc)}", file=sys.stderr)
            return 2
        raise


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of every command."""
    parser = _Parser(prog=PROG, description="Compare CNN architectures: inspect, train, predict, manage runs.")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")

    p = sub.add_parser("summary", help="layer table, parameters and FLOPs of an architecture")
    _model_args(p)
    p.add_argument("--num-classes", type=int, default=1000, help="classes of the head (default 1000)")
    p.add_argument("--image-size", type=int, default=None, help="input side in pixels (default: the architecture's)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("train", help="train a model; the run goes into the run store like app runs")
    _train_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("predict", help="top-k classes of images with a trained run (or ImageNet weights)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", type=int, help="run id whose best checkpoint predicts")
    source.add_argument("--pretrained", metavar="ARCH", help="an architecture with ImageNet weights in the cache")
    p.add_argument("--topk", type=int, default=5, help="how many classes per image (default 5)")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("runs", help="list, show, export, rename or delete runs")
    runs = p.add_subparsers(dest="action", parser_class=_Parser, metavar="ACTION", required=True)
    q = runs.add_parser("list", help="all runs, newest first")
    q.add_argument("--status", action="append", help="only runs with this status (repeatable)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_runs_list)
    q = runs.add_parser("show", help="one run: config, results, epochs")
    q.add_argument("run_id", type=int, metavar="ID")
    q.add_argument("--json", action="store_true", help="the JSON run card")
    q.set_defaults(func=cmd_runs_show)
    q = runs.add_parser("export", help="a run's epochs as CSV (or its JSON run card with --json)")
    q.add_argument("run_id", type=int, metavar="ID")
    q.add_argument("--json", action="store_true", help="the JSON run card instead of CSV")
    q.add_argument("--output", "-o", type=Path, help="write to this file instead of stdout")
    q.set_defaults(func=cmd_runs_export)
    q = runs.add_parser("rename", help="give a run a name")
    q.add_argument("run_id", type=int, metavar="ID")
    q.add_argument("name")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_runs_rename)
    q = runs.add_parser("delete", help="delete a run and its checkpoint")
    q.add_argument("run_id", type=int, metavar="ID")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_runs_delete)

    p = sub.add_parser("prefetch", help="download ImageNet weights and datasets before an offline class")
    p.add_argument("--weights", nargs="*", metavar="ARCH", help="architectures (default: all with weights)")
    p.add_argument("--datasets", nargs="*", metavar="NAME", help="datasets (default: all downloadable ones)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_prefetch)
    return parser


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", required=True, help="architecture name (see the Architectures page)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="an architecture option, e.g. residual_1=false or shortcut=A (repeatable)")


def _train_args(p: argparse.ArgumentParser) -> None:
    from cnnviz.training.config import TrainConfig

    d = TrainConfig()
    _model_args(p)
    p.add_argument("--dataset", default=d.dataset, help=f"dataset name (default {d.dataset})")
    p.add_argument("--data-root", help="folder with the real datasets (default: CNNVIZ_DATA or <home>/data)")
    p.add_argument("--data-path", help="the folder or .zip of class folders for --dataset folder")
    p.add_argument("--labels", default=d.labels, choices=("fine", "coarse"), help="cifar100 label set")
    p.add_argument("--mode", default=d.mode, choices=MODES)
    p.add_argument("--probe-layer", help="probe mode: a probe point of the architecture, or 'input'")
    p.add_argument("--init", default=d.init, help="none | imagenet | run:ID | a weights file (default none)")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--optimizer", default=d.optimizer, choices=OPTIMIZERS)
    p.add_argument("--momentum", type=float, default=d.momentum)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--scheduler", default=d.scheduler, choices=SCHEDULERS)
    p.add_argument("--step-size", type=int, default=d.step_size, help="step scheduler: epochs between lr/10")
    p.add_argument("--loss", default=d.loss, choices=LOSSES)
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    p.add_argument("--augment", default=d.augment, choices=AUGMENTS)
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--subset", type=int, default=None, help="training images per class")
    p.add_argument("--val-subset", type=int, default=None, help="validation images per class")
    p.add_argument("--val-split", default=d.val_split, choices=("official", "random"))
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=d.device, help="auto | cpu | cuda | mps (default auto)")
    p.add_argument("--precision", default=d.precision, choices=PRECISIONS,
                   help="auto: mixed precision where it is faster (default)")
    p.add_argument("--track-grad-norms", action="store_true", help="record per-layer gradient norms each epoch")
    p.add_argument("--name", default="", help="a name for the run")
    p.add_argument("--json", action="store_true", help="print one JSON document (progress stays on stderr)")


def parse_options(pairs: Sequence[str]) -> dict[str, str]:
    """``["residual_1=false", "shortcut=A"]`` -> a dict of raw strings (the registry parses the values)."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--option expects KEY=VALUE, got {pair!r}")
        options[key.strip()] = value.strip()
    return options


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


# -- summary ---------------------------------------------------------------------------------------


def cmd_summary(args) -> int:
    from cnnviz.inspect import summarize
    from cnnviz.models import resolve_options

    options = resolve_options(args.arch, parse_options(args.option))
    if args.num_classes < 1:
        raise UsageError(f"--num-classes must be at least 1, got {args.num_classes}")
    if args.image_size is not None and args.image_size < 1:
        raise UsageError(f"--image-size must be a positive number of pixels, got {args.image_size}")
    summary = summarize(args.arch, options=options, num_classes=args.num_classes, image_size=args.image_size)
    if args.json:
        _print_json(summary.to_dict())
    else:
        print(f"{args.arch} ({', '.join(f'{k}={v}' for k, v in options.items()) or 'no options'}), "
              f"{args.num_classes} classes, {summary.image_size}x{summary.image_size} input")
        print(summary.table())
    return 0


# -- train -----------------------------------------------------------------------------------------


def config_from_args(args):
    """The TrainConfig the train flags describe (ValueError on a bad value)."""
    from cnnviz.models import resolve_options
    from cnnviz.training.config import TrainConfig

    options = parse_options(args.option)
    resolve_options(args.arch, options)  # unknown arch/option: fail before anything is stored
    return TrainConfig(
        arch=args.arch, options=options, dataset=args.dataset, data_root=args.data_root, data_path=args.data_path,
        labels=args.labels, mode=args.mode, probe_layer=args.probe_layer, init=args.init, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer, momentum=args.momentum,
        weight_decay=args.weight_decay, scheduler=args.scheduler, step_size=args.step_size, loss=args.loss,
        label_smoothing=args.label_smoothing, augment=args.augment, image_size=args.image_size, subset=args.subset,
        val_subset=args.val_subset, val_split=args.val_split, seed=args.seed, device=args.device,
        track_grad_norms=args.track_grad_norms, precision=args.precision, name=args.name)


def _prepare(config) -> None:
    """Everything that can be wrong with the user's request, checked before a run is stored.

    The trainer reports a failure as a failed run (with a traceback); on the command line a
    missing dataset or weights file is a usage error: one line, exit code 2. Loading the data
    here also shows decoding progress, and the trainer then finds it in the cache.
    """
    from cnnviz.data import load_splits
    from cnnviz.device import pick_device
    from cnnviz.training.modes import resolve_image_size

    pick_device(config.device)
    if config.mode == "probe" and config.probe_layer != "input":
        from cnnviz.models import get_spec

        points = get_spec(config.arch).probe_points
        if config.probe_layer not in points:
            raise UsageError(f"{config.arch} has no probe point {config.probe_layer!r} "
                             f"(probe points: {', '.join(points) or 'none'}, or input)")
    _check_init(config)
    size = resolve_image_size(config)
    load_splits(config, image_size=size, progress=_decode_progress())


def _check_init(config) -> None:
    """The weights ``--init`` names exist (ImageNet weights are fetched into the cache here if needed)."""
    init = config.init
    if init == "none":
        return
    if init == "imagenet":
        from cnnviz.models import hub_checkpoints_dir, weights_file_name
        from cnnviz.models.weights import imagenet_state_dict

        name = _imagenet_weights_name(config.arch, config.options, hint="; use --init none")
        if not (hub_checkpoints_dir() / weights_file_name(name)).is_file():
            imagenet_state_dict(name, progress=True)  # downloads into the cache, or WeightsUnavailable offline
    elif init.startswith("run:"):
        from cnnviz.runs import checkpoint_path

        checkpoint_path(init[4:])
    elif not Path(init).expanduser().is_file():
        raise UsageError(f"--init {init}: no such weights file (use none, imagenet, run:ID or a path)")


def _imagenet_weights_name(arch: str, options: dict | None = None, *, hint: str = "") -> str:
    from cnnviz.models import get_spec, resolve_options

    name, _ = get_spec(arch).weights_for(resolve_options(arch, options))
    if not name:
        raise UsageError(f"{arch} has no ImageNet weights{hint}")
    return name


def _decode_progress():
    """A ``progress(done, total)`` for dataset decoding, drawn on stderr."""
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - last[0] > 0.5:
            last[0] = now
            sys.stderr.write(f"\rdecoding images {done}/{total}" + ("\n" if done >= total else ""))
            sys.stderr.flush()

    return progress


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

    def before_fit(self, state) -> None:
        params = getattr(state, "params", None)
        self._write(f"{state.config.describe()} on {getattr(state, 'device', '?')}: "
                    f"{len(getattr(state, 'classes', []) or [])} classes, "
                    f"{params:,} parameters\n" if params else f"{state.config.describe()}\n")
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
        self._write(("\r" if self.tty else "") + _epoch_line(row) + " " * 8 + "\n")
        self._epoch_start = time.monotonic()

    def after_fit(self, state) -> None:
        message = getattr(state, "message", None)
        self._write(f"{getattr(state, 'status', 'done')}{': ' + message if message else ''}\n")

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


def _fmt(value, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def _epoch_line(row: dict) -> str:
    return (f"epoch {row.get('epoch', '?'):>3}  "
            f"train loss {_fmt(row.get('train_loss'))} acc {_fmt(row.get('train_acc'))}  "
            f"val loss {_fmt(row.get('val_loss'))} acc {_fmt(row.get('val_acc'))}  {_fmt(row.get('seconds'), '.1f')} s")


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


def cmd_train(args) -> int:
    from cnnviz.runs import RunStore
    from cnnviz.jobs import run_training

    config = config_from_args(args)
    _prepare(config)
    store = RunStore()
    run_id = store.create(config, status="queued")
    stop = threading.Event()
    previous = _stop_on_ctrl_c(stop)
    try:
        result = run_training(config, store=store, run_id=run_id, stop=stop, callbacks=(ProgressBar(),))
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
        _print_json(report)
    else:
        for row in report["epochs"]:
            print(_epoch_line(row))
        best = (f"best val acc {_fmt(run.best_val_acc)} at epoch {run.best_epoch}" if run.best_epoch
                else "no epoch finished")
        print(f"run {run_id} {run.status}: {best}, {_fmt(run.train_seconds, '.1f')} s"
              + (f"; checkpoint {run.checkpoint}" if run.checkpoint else "")
              + (f" ({run.message})" if run.message else ""))
    return 1 if result.status in ("diverged", "failed") else 0


# -- predict ----------------------------------------------------------------------------------------


def cmd_predict(args) -> int:
    from cnnviz.predict import ImageLoadError, load_image, load_pretrained, predict
    from cnnviz.runs import load_model

    if args.topk < 1:
        raise UsageError(f"--topk must be at least 1, got {args.topk}")
    if args.run is not None:
        model, payload = load_model(args.run)
    else:
        model, payload = load_pretrained(args.pretrained)
    results, failed = [], 0
    for path in args.images:
        try:
            top = predict(model, payload, load_image(path, name=path), topk=args.topk)
        except ImageLoadError as exc:
            failed += 1
            print(f"{PROG} predict: error: {exc}", file=sys.stderr)
            results.append({"image": path, "error": str(exc)})
            continue
        results.append({"image": path, "top": [{"class": c, "prob": p} for c, p in top]})
        if not args.json:
            print(f"{path}: " + ", ".join(f"{c} {p:.3f}" for c, p in top))
    if args.json:
        _print_json({"run_id": args.run, "arch": payload["arch"], "pretrained": args.pretrained,
                     "classes": payload.get("classes"), "results": results})
    return 1 if failed else 0


# -- runs ---------------------------------------------------------------------------------------------


def _store():
    from cnnviz.runs import RunStore

    return RunStore()


def _when(timestamp: float | None) -> str:
    return "-" if timestamp is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def cmd_runs_list(args) -> int:
    store = _store()
    runs = store.list(tuple(args.status) if args.status else None)
    if args.json:
        _print_json([{**r.summary(), "epochs_done": len(store.epochs(r.id))} for r in runs])
        return 0
    if not runs:
        print(f"no runs yet in {store.path}")
        return 0
    print(f"{'id':>4}  {'name':<24} {'arch':<14} {'dataset':<12} {'mode':<9} {'status':<11} {'val acc':>7} "
          f"{'epochs':>6} {'time':>8}  created")
    for r in runs:
        done = len(store.epochs(r.id))
        print(f"{r.id:>4}  {r.label[:24]:<24} {r.config.arch[:14]:<14} {r.config.dataset[:12]:<12} "
              f"{r.config.mode:<9} {r.status:<11} {_fmt(r.best_val_acc, '.3f'):>7} {f'{done}/{r.config.epochs}':>6} "
              f"{_fmt(r.train_seconds, '.1f'):>7}s  {_when(r.created_at)}")
    return 0


def cmd_runs_show(args) -> int:
    store = _store()
    card = store.run_card(args.run_id)
    if args.json:
        _print_json(card)
        return 0
    run, res = store.get(args.run_id), card["results"]
    print(f"run {run.id}: {run.label}  [{run.status}]" + (f"  {run.message}" if run.message else ""))
    print(f"  {run.config.describe()}")
    print(f"  created {_when(run.created_at)}, started {_when(run.started_at)}, finished {_when(run.finished_at)}")
    if res["params"] is not None:
        print(f"  parameters {res['params']:,}, FLOPs {res['flops'] or 0:,}, classes {', '.join(res['classes'][:10])}"
              + (" ..." if len(res["classes"]) > 10 else ""))
    if run.best_epoch:
        print(f"  best val acc {_fmt(run.best_val_acc)} at epoch {run.best_epoch}, "
              f"training time {_fmt(run.train_seconds, '.1f')} s")
    if run.checkpoint:
        print(f"  checkpoint {run.checkpoint}")
    for row in card["epochs"]:
        print("  " + _epoch_line(row))
    return 0


def cmd_runs_export(args) -> int:
    store = _store()
    text = json.dumps(store.run_card(args.run_id), indent=2) + "\n" if args.json else store.export_csv(args.run_id)
    if args.output:
        args.output.write_text(text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_runs_rename(args) -> int:
    store = _store()
    store.rename(args.run_id, args.name)
    if args.json:
        _print_json({"run_id": args.run_id, "name": store.get(args.run_id).label})
    else:
        print(f"run {args.run_id} is now called {store.get(args.run_id).label!r}")
    return 0


def cmd_runs_delete(args) -> int:
    store = _store()
    store.delete(args.run_id)
    if args.json:
        _print_json({"deleted": args.run_id})
    else:
        print(f"deleted run {args.run_id}")
    return 0


# -- prefetch -----------------------------------------------------------------------------------------


def cmd_prefetch(args) -> int:
    """Download what an offline class needs; each failure is one line, the rest still downloads."""
    from cnnviz.models import get_spec, list_models, weights_file_name
    from cnnviz.models.weights import imagenet_state_dict

    # Flags with names fetch those; a bare flag fetches all of its kind; no flag at all fetches everything.
    everything = args.weights is None and args.datasets is None
    weights = args.weights or ([a for a in list_models() if get_spec(a).weights]
                               if everything or args.weights == [] else [])
    datasets = args.datasets or (_downloadable_datasets() if everything or args.datasets == [] else [])
    report: dict[str, dict[str, str]] = {"weights": {}, "datasets": {}}
    for arch in weights:
        try:
            name = _imagenet_weights_name(arch)
            imagenet_state_dict(name, progress=not args.json)
            report["weights"][arch] = f"ok ({weights_file_name(name)})"
        except Exception as exc:
            report["weights"][arch] = f"error: {_one_line(exc)}"
    for name in datasets:
        try:
            report["datasets"][name] = f"ok ({_prefetch_dataset(name)})"
        except Exception as exc:
            report["datasets"][name] = f"error: {_one_line(exc)}"
    failed = [f"{kind} {k}" for kind, items in report.items() for k, v in items.items() if v.startswith("error")]
    if args.json:
        _print_json({**report, "ok": not failed})
    else:
        for kind, items in report.items():
            for key, value in items.items():
                print(f"{kind[:-1]} {key}: {value}", file=sys.stderr if value.startswith("error") else sys.stdout)
    return 1 if failed else 0


def _downloadable_datasets() -> list[str]:
    from cnnviz.data import get_dataset_spec, list_datasets

    return [n for n in list_datasets() if n != "shapes" and not get_dataset_spec(n).needs_path]


def _prefetch_dataset(name: str) -> str:
    """Make ``name``'s files present in the data root (downloaded where the network allows) and decode them
    once at their native size, so the first class run starts from the cache."""
    from cnnviz.data import load_dataset
    from cnnviz.paths import data_root

    counts = {split: len(load_dataset(name, split=split, progress=_decode_progress())) for split in ("train", "val")}
    return f"{counts['train']} train + {counts['val']} val images, in {data_root()}"
