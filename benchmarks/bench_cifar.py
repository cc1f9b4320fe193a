"""CIFAR-10 from scratch in a time budget (default 10 minutes) on the shared JPEG set.

Architecture: cnnviz's registered "airbench" (Keller Jordan, "94% on CIFAR-10 in 3.29 seconds on a
single GPU", arXiv:2404.00498; github.com/KellerJordan/cifar10-airbench): a whitened 2x2 stem and
three conv groups (groups of width, 2 x width, 2 x width).
The run goes through cnnviz's own ``train`` like any other.

It runs the ``cifar10-10min`` recipe (``python -m cnnviz recipes``), the one a student starts from the
Train page: groups of 48, 192 and 192 channels, SGD with Nesterov momentum 0.85 at
airbench's peak lr (1.5 per 1024 images, for a mean loss) on its linear triangle schedule, weight
decay 1.3e-3, label smoothing 0.2, 2 px reflected shifts with flips alternating per picture,
lookahead, a moving average of the weights (decay 0.98 per batch), mirror and one-pixel-shift
test-time augmentation, channels-last, and ``precision="auto"`` (bf16 autocast on a CPU with AMX,
fp32 without), 10 epochs. Every flag overrides one of the recipe's values, so each trick can be
switched off to see what it is worth (``--no-whiten``, ``--label-smoothing 0``, ``--no-tta``,
``--no-tta-shift``, ``--no-alternate-flip``, ``--no-lookahead``, ``--ema-decay 0``,
``--no-nesterov``, ``--augment cifar``, ``--scheduler onecycle``).
``--fit-budget`` chooses the epochs that fit ``--budget`` from a short throughput measurement.

The plain loop (torchvision ImageFolder over the extracted JPEGs, DataLoader, per-image
RandomCrop/flip/ToTensor/Normalize) trains the same network for ``--plain-batches`` batches
to compare training throughput.

    python benchmarks/bench_cifar.py                       # the recipe, timed against 10 minutes
    python benchmarks/bench_cifar.py --epochs 1 --plain-batches 10    # quick
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

RECIPE = "cifar10-10min"
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def build(width: int, width_factor: int = 2, whiten: bool = True):
    """The registered airbench network at ``width`` x ``width_factor`` (10 classes)."""
    from cnnviz.models import get_model

    return get_model("airbench", num_classes=10, options={"width": width, "width_factor": width_factor,
                                                          "whiten": whiten})


def measure_throughput(width: int, width_factor: int, batch_size: int, precision: str, steps: int = 10) -> float:
    """Training images per second of the network on random data at ``precision`` (the epoch-count calibration).

    The median step time: on a shared machine single steps stall now and then.
    """
    import torch

    from cnnviz.training.parts import autocast_for

    autocast, _ = autocast_for(precision, torch.device("cpu"))
    model = build(width, width_factor).to(memory_format=torch.channels_last).train()
    x = torch.randn(batch_size, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch_size,))
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)

    def step():
        with autocast():
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(3):  # oneDNN picks and caches its kernels in the first steps
        step()
    times = []
    for _ in range(steps):
        began = time.perf_counter()
        step()
        times.append(time.perf_counter() - began)
    return batch_size / sorted(times)[len(times) // 2]


def plain_throughput(folder: Path, *, width: int, width_factor: int, whiten: bool, batch_size: int, batches: int,
                     workers: int) -> float:
    """Training images per second of a plain ImageFolder + DataLoader + PIL-transform loop on the same network
    (fp32, NCHW: the loop a tutorial writes)."""
    import torch
    import torchvision
    from torchvision import transforms as T

    tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                    T.Normalize(CIFAR_MEAN, CIFAR_STD)])
    data = torchvision.datasets.ImageFolder(str(folder / "train"), tf)
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True, num_workers=workers)
    model = build(width, width_factor, whiten).train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
    seen, began = 0, time.perf_counter()
    for i, (x, y) in enumerate(loader):
        if i == batches:
            break
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        seen += len(y)
    return seen / (time.perf_counter() - began)


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=600, help="seconds the whole run should fit (decoding included)")
    p.add_argument("--epochs", type=int, default=None, help="epochs instead of the recipe's")
    p.add_argument("--fit-budget", action="store_true",
                   help="choose the epochs that fit --budget from a short throughput measurement (not with --epochs)")
    p.add_argument("--width", type=int, default=None, help="channels of the first group (recipe: 64)")
    p.add_argument("--width-factor", type=int, default=None, help="groups 2 and 3 have width x this (airbench94: 4)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default 1.5 per 1024 images)")
    p.add_argument("--momentum", type=float, default=None)
    p.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None, help="Nesterov momentum")
    p.add_argument("--scheduler", default=None, choices=("onecycle", "linear", "cosine"),
                   help="linear: airbench's triangle; onecycle: PyTorch's cosine one-cycle")
    p.add_argument("--augment", default=None, choices=("cifar", "translate"),
                   help="translate: reflect-pad 2 px, crop, flip (airbench); cifar: zero-pad 4 px, crop, flip")
    p.add_argument("--weight-decay", type=float, default=None)
    p.add_argument("--label-smoothing", type=float, default=None)
    p.add_argument("--ema-decay", type=float, default=None, help="weight average decay per batch (0: off)")
    p.add_argument("--alternate-flip", action=argparse.BooleanOptionalAction, default=None,
                   help="mirror each picture every other epoch (airbench)")
    p.add_argument("--lookahead", action=argparse.BooleanOptionalAction, default=None,
                   help="airbench's lookahead: every 5 batches back to slow weights")
    p.add_argument("--no-tta", action="store_true", help="evaluate without flip test-time augmentation")
    p.add_argument("--tta-shift", action=argparse.BooleanOptionalAction, default=None,
                   help="also evaluate one-pixel shifts of each picture (airbench's level 2)")
    p.add_argument("--no-whiten", action="store_true", help="train the stem instead of whitening it")
    p.add_argument("--precision", default=None, choices=("auto", "fp32", "bf16"),
                   help="auto: bf16 autocast where the CPU has AMX, else fp32")
    p.add_argument("--subset", type=int, default=None, help="training images per class (default all; quick checks)")
    p.add_argument("--val-subset", type=int, default=None,
                   help="validation images per class (carved from the training set), evaluated every epoch")
    p.add_argument("--plain-batches", type=int, default=20)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    if args.fit_budget and args.epochs is not None:
        p.error("--fit-budget chooses the epochs itself: give it or --epochs, not both")
    common.setup(args)

    import torch

    from cnnviz.data import load_splits
    from cnnviz.recipes import named_recipe
    from cnnviz.training import Callback, train
    from cnnviz.training.config import evaluation_views
    from cnnviz.training.parts import resolve_precision

    recipe = named_recipe(RECIPE).config(data_root=args.data_root, seed=args.seed, device="cpu")
    options = {**recipe.options, **{k: v for k, v in (("width", args.width), ("width_factor", args.width_factor))
                                    if v is not None}}
    if args.no_whiten:
        options["whiten"] = False
    flags = dict(batch_size=args.batch_size, momentum=args.momentum, nesterov=args.nesterov,
                 scheduler=args.scheduler, augment=args.augment, weight_decay=args.weight_decay,
                 label_smoothing=args.label_smoothing, ema_decay=args.ema_decay, precision=args.precision,
                 tta_shift=args.tta_shift, lookahead=args.lookahead, alternate_flip=args.alternate_flip,
                 subset=args.subset, val_subset=args.val_subset, epochs=args.epochs)
    config = recipe.replace(options=options, **{k: v for k, v in flags.items() if v is not None})
    lr = args.lr if args.lr is not None else 1.5 * config.batch_size / 1024
    config = config.replace(lr=lr, tta_flip=config.tta_flip and not args.no_tta)
    width, factor = config.options["width"], config.options["width_factor"]
    began, cpu_began = time.perf_counter(), _cpu_seconds()
    if args.fit_budget:
        splits = load_splits(config, image_size=32)  # decode inside the budget (a no-op when --home has the cache)
        train_images, val_images = len(splits[0].labels), len(splits[1].labels)
        rate = measure_throughput(width, factor, config.batch_size, config.precision)
        views = evaluation_views(config.tta_flip, config.tta_shift)  # ~1/3 of training per image and view
        per_epoch = train_images / rate + views * val_images / (3 * rate) + 2
        left = args.budget - (time.perf_counter() - began) - views * 10_000 / (3 * rate)  # the test set, once
        config = config.replace(epochs=max(1, int(left / per_epoch)))
        print(f"# calibration: {rate:.0f} train img/s -> {config.epochs} epochs in the {left:.0f} s left", flush=True)

    class Progress(Callback):
        def after_epoch(self, state):
            row = state.history[-1]
            print(f"epoch {row['epoch']}/{state.epochs}: train loss {row['train_loss']:.3f} acc {row['train_acc']:.3f}"
                  f"  val acc {row['val_acc']:.4f}  {row['images_per_sec']:.0f} img/s  {row['seconds']:.0f} s"
                  f"  load {os.getloadavg()[0]:.1f}", flush=True)

    result = train(config, callbacks=[Progress()])
    total, cpu = time.perf_counter() - began, _cpu_seconds() - cpu_began
    print(f"cnnviz: {result.status}, {result.message}", flush=True)
    cnnviz_rate = sum(r["images_per_sec"] for r in result.epochs) / max(len(result.epochs), 1)
    precision = resolve_precision(config.precision, torch.device("cpu"))
    print(f"\nCIFAR-10 from scratch, recipe {RECIPE}: airbench width {width} x{factor}, {config.epochs} epochs, batch "
          f"{config.batch_size}, {config.scheduler} schedule, peak lr {lr:g}, {config.augment} augmentation, "
          f"nesterov {config.nesterov}, alternate flip {config.alternate_flip}, lookahead {config.lookahead}, "
          f"EMA {config.ema_decay:g}, TTA flip {config.tta_flip} shift {config.tta_shift}, "
          f"{(result.splits.get('train') or {}).get('images', 0):,} training images, {precision}, "
          f"{torch.get_num_threads()} threads")
    test = f"{result.test_acc:.4f}" if result.test_acc is not None else "none"
    fits = "within" if total <= args.budget else "over"
    print(f"test accuracy {test} on the best-validation weights (epoch {result.best_epoch}, val acc "
          f"{result.best_val_acc:.4f}) in {total:.0f} s, {fits} the {args.budget:.0f} s budget (decoding included), "
          f"{cpu:.0f} CPU seconds, load average {os.getloadavg()[0]:.1f}", flush=True)
    if args.plain_batches <= 0:
        return
    folder = common.extract(Path(args.data_root) / "cifar10.zip", "cifar10")
    plain_rate = plain_throughput(folder, width=width, width_factor=factor, whiten=config.options["whiten"],
                                  batch_size=config.batch_size, batches=args.plain_batches, workers=args.workers)
    rows = [{"loop": "plain (ImageFolder + PIL transforms, fp32 NCHW)", "train img/s": plain_rate, "speed-up": 1.0},
            {"loop": f"cnnviz (decoded tensors, batched augmentation, {precision} channels-last)",
             "train img/s": cnnviz_rate,
             "speed-up": cnnviz_rate / plain_rate}]
    print(common.table(rows, ["loop", "train img/s", "speed-up"]))


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
