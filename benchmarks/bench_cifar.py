"""CIFAR-10 from scratch in a time budget (default 10 minutes) on the shared JPEG set.

Architecture: "airbench", a small fast CIFAR network after Keller Jordan's airbench
(github.com/KellerJordan/cifar10-airbench): a 2x2 stem conv, then three groups of
[conv 3x3 -> max-pool 2 -> BN -> GELU -> conv 3x3 -> BN -> GELU] and a global max-pool,
at half airbench94's widths (32/128/128 by default) so an epoch fits 2 CPU cores.
It is registered with cnnviz's model registry at run time by this script (it is not one of
the course's architectures), so the run goes through cnnviz's own ``train`` like any other.

Recipe, all standard cnnviz options: SGD momentum 0.9, weight decay 5e-4, one-cycle lr
(peak ``--lr`` 0.1), label smoothing 0.2, CIFAR augmentation (pad 4 + random crop + flip), batch
128, fp32 channels-last (bf16 measured slower on this CPU). Batch 128 won a one-epoch sweep
(batch/peak lr -> test accuracy after one epoch: 512/0.2 0.51, 512/0.8 0.42, 256/0.2 0.59,
128/0.1 0.66, 64/0.05 0.68) and trains fastest per image on 2 cores (smaller activations stay
in cache). The number of epochs is chosen to fit the budget from a short throughput
measurement (override with ``--epochs``).

The plain loop (torchvision ImageFolder over the extracted JPEGs, DataLoader, per-image
RandomCrop/flip/ToTensor/Normalize) trains the same network for ``--plain-batches`` batches
to compare training throughput.

    python benchmarks/bench_cifar.py                       # the 10-minute run
    python benchmarks/bench_cifar.py --epochs 1 --plain-batches 10    # quick
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def build_airbench(*, num_classes: int, width: int = 32):
    """Stem conv 2x2 (24 channels), three conv groups (width, 4*width, 4*width), global max-pool, linear head."""
    from torch import nn

    def group(c_in: int, c_out: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(c_out), nn.GELU(),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.GELU())

    widths = (width, 4 * width, 4 * width)
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 24, 2, bias=True), nn.GELU()),
        group(24, widths[0]), group(widths[0], widths[1]), group(widths[1], widths[2]),
        nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(widths[2], num_classes, bias=False))


def register_airbench() -> None:
    from cnnviz.models import ModelSpec, Option, list_models, register

    if "airbench" in list_models():
        return
    register(ModelSpec(
        name="airbench", label="airbench (fast CIFAR net)", builder=build_airbench,
        options=(Option("width", "int", 32, "Width", "Channels of the first group (airbench94 uses 64).",
                        choices=(16, 32, 48, 64)),),
        default_size=32, min_size=16, head="6",
        probe_points={"group1": "1", "group2": "2", "group3": "3"},
        paper="Keller Jordan (2024). 94% on CIFAR-10 in 3.29 seconds on a single GPU. arXiv:2404.00498.",
        description="A small, fast CIFAR-10 network for the 10-minute benchmark."))


def measure_throughput(width: int, batch_size: int, steps: int = 10) -> float:
    """Training images per second of the network on random data (the epoch-count calibration).

    The median step time: on a shared machine single steps stall now and then.
    """
    import torch

    model = build_airbench(num_classes=10, width=width).to(memory_format=torch.channels_last).train()
    x = torch.randn(batch_size, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch_size,))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

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
    model = build_airbench(num_classes=10, width=width).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
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
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1, help="one-cycle peak learning rate")
    p.add_argument("--plain-batches", type=int, default=20)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    home = common.setup(args)

    import torch

    from cnnviz.data import load_splits
    from cnnviz.training import Callback, TrainConfig, train

    register_airbench()
    config = TrainConfig(arch="airbench", options={"width": args.width}, dataset="cifar10", data_root=args.data_root,
                         mode="scratch", batch_size=args.batch_size, lr=args.lr, optimizer="sgd", momentum=0.9,
                         weight_decay=5e-4, scheduler="onecycle", label_smoothing=0.2, augment="cifar",
                         image_size=32, seed=args.seed, device="cpu", epochs=1)
    began = time.perf_counter()
    epochs = args.epochs
    if epochs is None:
        load_splits(config, image_size=32)  # decode inside the budget (a no-op when --home has the cache)
        rate = measure_throughput(args.width, args.batch_size)
        per_epoch = 50_000 / rate + 10_000 / (3 * rate) + 2  # training + evaluation (~3x cheaper) + overhead
        left = args.budget - (time.perf_counter() - began)
        epochs = max(1, int(left / per_epoch))  # per_epoch is pessimistic already (measured ~10% over)
        print(f"# calibration: {rate:.0f} train img/s -> {epochs} epochs in the {left:.0f} s left", flush=True)

    class Progress(Callback):
        def after_epoch(self, state):
            row = state.history[-1]
            print(f"epoch {row['epoch']}/{state.epochs}: train loss {row['train_loss']:.3f} acc {row['train_acc']:.3f}"
                  f"  val acc {row['val_acc']:.4f}  {row['images_per_sec']:.0f} img/s  {row['seconds']:.0f} s",
                  flush=True)

    result = train(config.replace(epochs=epochs), callbacks=[Progress()])
    total = time.perf_counter() - began
    print(f"cnnviz: {result.status}, {result.message}", flush=True)
    cnnviz_rate = sum(r["images_per_sec"] for r in result.epochs) / max(len(result.epochs), 1)

    folder = common.extract(Path(args.data_root) / "cifar10.zip", "cifar10")
    plain_rate = plain_throughput(folder, width=args.width, batch_size=args.batch_size, batches=args.plain_batches,
                                  workers=args.workers)
    rows = [{"loop": "plain (ImageFolder + PIL transforms)", "train img/s": plain_rate, "speed-up": 1.0},
            {"loop": "cnnviz (decoded tensors, batched augmentation)", "train img/s": cnnviz_rate,
             "speed-up": cnnviz_rate / plain_rate}]
    print(f"\nCIFAR-10 from scratch, airbench width {args.width}, {epochs} epochs, batch {args.batch_size}, "
          f"one-cycle peak lr {args.lr}, {torch.get_num_threads()} threads")
    print(f"best test accuracy {result.best_val_acc:.4f} (epoch {result.best_epoch}) in {total:.0f} s "
          f"(budget {args.budget:.0f} s; decoding and calibration included)")
    print(common.table(rows, ["loop", "train img/s", "speed-up"]))


if __name__ == "__main__":
    main()
