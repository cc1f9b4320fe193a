"""CIFAR-10 from scratch in a time budget (default 10 minutes) on the shared JPEG set.

Architecture: cnnviz's registered "airbench" (Keller Jordan, "94% on CIFAR-10 in 3.29 seconds on a
single GPU", arXiv:2404.00498; github.com/KellerJordan/cifar10-airbench): a whitened 2x2 stem and
three conv groups, at airbench93's layout scaled by ``--width`` (groups of width, 2 x width, 2 x width).
The run goes through cnnviz's own ``train`` like any other.

Recipe (airbench's hyperparameters for a mean loss: peak lr 1.5 per 1024 images, weight decay
1.3e-3, momentum 0.85; the batch-norm shifts' 64x learning rate is built into the network): SGD,
one-cycle, label smoothing 0.2, CIFAR augmentation (pad 4 + random crop + flip), flip test-time
augmentation, a moving average of the weights (decay 0.98 per batch), fp32 channels-last. Each trick
can be switched off (``--no-whiten``, ``--label-smoothing 0``, ``--no-tta``, ``--ema-decay 0``) to see
what it is worth. The number of epochs is chosen to fit the budget from a short throughput
measurement (override with ``--epochs``).

The plain loop (torchvision ImageFolder over the extracted JPEGs, DataLoader, per-image
RandomCrop/flip/ToTensor/Normalize) trains the same network for ``--plain-batches`` batches
to compare training throughput.

    python benchmarks/bench_cifar.py                       # the 10-minute run
    python benchmarks/bench_cifar.py --epochs 1 --plain-batches 10    # quick
"""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def build(width: int, whiten: bool = True):
    """The registered airbench network at ``width`` (10 classes)."""
    from cnnviz.models import get_model

    return get_model("airbench", num_classes=10, options={"width": width, "whiten": whiten})


def measure_throughput(width: int, batch_size: int, steps: int = 10) -> float:
    """Training images per second of the network on random data (the epoch-count calibration).

    The median step time: on a shared machine single steps stall now and then.
    """
    import torch

    model = build(width).to(memory_format=torch.channels_last).train()
    x = torch.randn(batch_size, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch_size,))
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)

    def step():
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()
    times = []
    for _ in range(steps):
        began = time.perf_counter()
        step()
        times.append(time.perf_counter() - began)
    return batch_size / sorted(times)[len(times) // 2]


def plain_throughput(folder: Path, *, width: int, batch_size: int, batches: int, workers: int) -> float:
    """Training images per second of a plain ImageFolder + DataLoader + PIL-transform loop on the same network."""
    import torch
    import torchvision
    from torchvision import transforms as T

    tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                    T.Normalize(CIFAR_MEAN, CIFAR_STD)])
    data = torchvision.datasets.ImageFolder(str(folder / "train"), tf)
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True, num_workers=workers)
    model = build(width).train()
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
    p.add_argument("--budget", type=float, default=600, help="seconds for the whole cnnviz run (decoding included)")
    p.add_argument("--epochs", type=int, default=None, help="fixed epochs instead of fitting the budget")
    p.add_argument("--width", type=int, default=48, help="channels of the first group (airbench93: 64)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=None, help="one-cycle peak learning rate (default 1.5 per 1024 images)")
    p.add_argument("--momentum", type=float, default=0.85)
    p.add_argument("--weight-decay", type=float, default=1.3e-3)
    p.add_argument("--label-smoothing", type=float, default=0.2)
    p.add_argument("--ema-decay", type=float, default=0.98, help="weight average decay per batch (0: off)")
    p.add_argument("--no-tta", action="store_true", help="evaluate without flip test-time augmentation")
    p.add_argument("--no-whiten", action="store_true", help="train the stem instead of whitening it")
    p.add_argument("--subset", type=int, default=None, help="training images per class (default all; quick checks)")
    p.add_argument("--val-subset", type=int, default=100,
                   help="validation images per class (carved from the training set), evaluated every epoch")
    p.add_argument("--plain-batches", type=int, default=20)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    home = common.setup(args)

    import torch

    from cnnviz.data import load_splits
    from cnnviz.training import Callback, TrainConfig, train

    lr = args.lr if args.lr is not None else 1.5 * args.batch_size / 1024
    config = TrainConfig(arch="airbench", options={"width": args.width, "whiten": not args.no_whiten},
                         dataset="cifar10", data_root=args.data_root, mode="scratch", batch_size=args.batch_size,
                         lr=lr, optimizer="sgd", momentum=args.momentum, weight_decay=args.weight_decay,
                         scheduler="onecycle", label_smoothing=args.label_smoothing, augment="cifar",
                         tta_flip=not args.no_tta, ema_decay=args.ema_decay, subset=args.subset,
                         val_subset=args.val_subset, image_size=32, seed=args.seed, device="cpu", precision="fp32",
                         epochs=1)
    began, cpu_began = time.perf_counter(), _cpu_seconds()
    epochs = args.epochs
    if epochs is None:
        splits = load_splits(config, image_size=32)  # decode inside the budget (a no-op when --home has the cache)
        train_images, val_images = len(splits[0].labels), len(splits[1].labels)
        rate = measure_throughput(args.width, args.batch_size)
        views = 1 if args.no_tta else 2  # evaluation costs ~1/3 of training per image and view
        per_epoch = train_images / rate + views * val_images / (3 * rate) + 2
        left = args.budget - (time.perf_counter() - began) - views * 10_000 / (3 * rate)  # the test set, once
        epochs = max(1, int(left / per_epoch))
        print(f"# calibration: {rate:.0f} train img/s -> {epochs} epochs in the {left:.0f} s left", flush=True)

    class Progress(Callback):
        def after_epoch(self, state):
            row = state.history[-1]
            print(f"epoch {row['epoch']}/{state.epochs}: train loss {row['train_loss']:.3f} acc {row['train_acc']:.3f}"
                  f"  val acc {row['val_acc']:.4f}  {row['images_per_sec']:.0f} img/s  {row['seconds']:.0f} s"
                  f"  load {os.getloadavg()[0]:.1f}", flush=True)

    result = train(config.replace(epochs=epochs), callbacks=[Progress()])
    total, cpu = time.perf_counter() - began, _cpu_seconds() - cpu_began
    print(f"cnnviz: {result.status}, {result.message}", flush=True)
    cnnviz_rate = sum(r["images_per_sec"] for r in result.epochs) / max(len(result.epochs), 1)
    print(f"\nCIFAR-10 from scratch, airbench width {args.width}, {epochs} epochs, batch {args.batch_size}, "
          f"one-cycle peak lr {lr:g}, {torch.get_num_threads()} threads")
    test = f"{result.test_acc:.4f}" if result.test_acc is not None else "none"
    print(f"test accuracy {test} on the best-validation weights (epoch {result.best_epoch}, val acc "
          f"{result.best_val_acc:.4f}) in {total:.0f} s "
          f"(budget {args.budget:.0f} s; decoding and calibration included), {cpu:.0f} CPU seconds, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    if args.plain_batches <= 0:
        return
    folder = common.extract(Path(args.data_root) / "cifar10.zip", "cifar10")
    plain_rate = plain_throughput(folder, width=args.width, batch_size=args.batch_size, batches=args.plain_batches,
                                  workers=args.workers)
    rows = [{"loop": "plain (ImageFolder + PIL transforms)", "train img/s": plain_rate, "speed-up": 1.0},
            {"loop": "cnnviz (decoded tensors, batched augmentation)", "train img/s": cnnviz_rate,
             "speed-up": cnnviz_rate / plain_rate}]
    print(common.table(rows, ["loop", "train img/s", "speed-up"]))


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
