"""Freeze mode: ResNet-18 on hymenoptera, only the head trains, 15 epochs.

cnnviz computes the frozen backbone's features once and trains the head on them; the plain
loop (the PyTorch transfer-learning tutorial's "ConvNet as fixed feature extractor", with
ImageFolder, a DataLoader and per-image PIL transforms) runs the backbone on every picture
every epoch. Both start from the same weights: there are no pretrained weights offline, so a
seeded random ResNet-18 whose batch-norm statistics are re-estimated on the training pictures
(so its features are on a sane scale) is saved once and loaded by both; both heads start from
the same random weights too. Same optimiser (SGD lr 0.001, momentum 0.9, step lr /10 every 7
epochs, as in the tutorial), batch size, no augmentation, backbone in eval mode in both.

    python benchmarks/bench_freeze.py                 # 15 epochs
    python benchmarks/bench_freeze.py --epochs 3      # quick
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def saved_backbone(path: Path, *, seed: int, train_images, size: int) -> Path:
    """A seeded random ResNet-18 with batch-norm statistics estimated on the training pictures, as a file."""
    import torch
    import torchvision

    torch.manual_seed(seed)
    model = torchvision.models.resnet18()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a plain average over the calibration batches
    model.train()
    from cnnviz.data import normalize

    with torch.no_grad():
        for chunk in train_images.split(32):
            model(normalize(chunk, MEAN, STD))
    torch.save(model.state_dict(), path)
    return path


def image_folder(folder: Path, transform):
    """torchvision's ImageFolder, also taking the one .gif of hymenoptera's train/ants (cnnviz reads it too),
    so both loops hold the same 245 training pictures in the same order."""
    import torchvision

    return torchvision.datasets.ImageFolder(str(folder), transform,
                                            is_valid_file=lambda p: p.lower().endswith((".jpg", ".jpeg", ".png", ".gif")))


def plain_loop(folder: Path, weights: Path, head: dict, *, epochs: int, batch_size: int, size: int, workers: int,
               seed: int) -> dict:
    """The tutorial's loop with a frozen backbone: the backbone runs on every picture, every epoch."""
    import torch
    import torchvision
    from torch import nn
    from torchvision import transforms as T

    torch.manual_seed(seed)
    tf = T.Compose([T.Resize(size), T.CenterCrop(size), T.ToTensor(), T.Normalize(MEAN, STD)])
    sets = {s: image_folder(folder / s, tf) for s in ("train", "val")}
    # The same shuffling generator as cnnviz's (seeded randperm per epoch): both visit the pictures in one order.
    order = torch.Generator().manual_seed(seed)
    loaders = {s: torch.utils.data.DataLoader(sets[s], batch_size=batch_size, shuffle=(s == "train"),
                                              generator=order if s == "train" else None, num_workers=workers)
               for s in sets}
    model = torchvision.models.resnet18()
    model.load_state_dict(torch.load(weights, weights_only=True))
    for p in model.parameters():
        p.requires_grad = False
    model.fc = nn.Linear(512, 2)
    model.fc.load_state_dict(head)
    optimizer = torch.optim.SGD(model.fc.parameters(), lr=0.001, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=7, gamma=0.1)
    best = 0.0
    for _ in range(epochs):
        model.eval()  # frozen: batch-norm statistics stay as loaded (cnnviz does the same)
        for x, y in loaders["train"]:
            loss = nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        scheduler.step()
        correct = 0
        with torch.no_grad():
            for x, y in loaders["val"]:
                correct += (model(x).argmax(1) == y).sum().item()
        best = max(best, correct / len(sets["val"]))
    return {"best_val_acc": best}


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers of the plain loop")
    args = p.parse_args()
    home = common.setup(args)

    import torch

    from cnnviz.data import load_splits
    from cnnviz.training import Callback, TrainConfig, train

    config = TrainConfig(arch="resnet18", dataset="hymenoptera", data_root=args.data_root, mode="freeze",
                         epochs=args.epochs, batch_size=args.batch_size, lr=0.001, momentum=0.9, weight_decay=0.0,
                         scheduler="step", step_size=7, augment="none", image_size=args.image_size,
                         seed=args.seed, device="cpu")
    # Set-up, untimed: the shared weights file (its calibration decodes the pictures; that cache is then
    # dropped so cnnviz's first run below decodes from the zip like a first run does) and the plain loop's folder.
    train_data, _ = load_splits(config, image_size=args.image_size)
    weights = saved_backbone(home / "resnet18_random_bn.pth", seed=args.seed, train_images=train_data.images,
                             size=args.image_size)
    del train_data
    _forget_decoded(home)
    folder = common.extract(Path(args.data_root) / "hymenoptera_data.zip", "hymenoptera_data")
    config = config.replace(init=str(weights))

    class FirstHead(Callback):
        head = None

        def before_fit(self, state):
            self.head = {k: v.detach().clone() for k, v in state.model.fc.state_dict().items()}

    times, first = {}, FirstHead()
    with common.timed(times, "cold"):
        cold = train(config, callbacks=[first])
    print(f"cnnviz (cold): {cold.status}, {cold.message}", flush=True)
    with common.timed(times, "plain"):
        plain = plain_loop(folder, weights, first.head, epochs=args.epochs, batch_size=args.batch_size,
                           size=args.image_size, workers=args.workers, seed=args.seed)
    import shutil

    shutil.rmtree(home / "cache" / "features", ignore_errors=True)
    with common.timed(times, "decoded"):
        decoded = train(config)
    print(f"cnnviz (pictures decoded before): {decoded.status}, {decoded.message}", flush=True)
    with common.timed(times, "warm"):
        warm = train(config)
    print(f"cnnviz (warm): {warm.status}, {warm.message}", flush=True)
    rows = [
        {"loop": "plain (backbone every epoch)", "seconds": times["plain"], "best_val_acc": plain["best_val_acc"],
         "speed-up": 1.0},
        {"loop": "cnnviz cold (decode + features once)", "seconds": times["cold"], "best_val_acc": cold.best_val_acc,
         "speed-up": times["plain"] / times["cold"]},
        {"loop": "cnnviz, pictures decoded by an earlier run", "seconds": times["decoded"],
         "best_val_acc": decoded.best_val_acc, "speed-up": times["plain"] / times["decoded"]},
        {"loop": "cnnviz warm (cached pictures + features)", "seconds": times["warm"],
         "best_val_acc": warm.best_val_acc, "speed-up": times["plain"] / times["warm"]},
    ]
    print(f"\nResNet-18 freeze on hymenoptera, {args.epochs} epochs, batch {args.batch_size}, "
          f"{args.image_size} px, {torch.get_num_threads()} threads")
    print(common.table(rows, ["loop", "seconds", "best_val_acc", "speed-up"]))
    gap = abs(cold.best_val_acc - plain["best_val_acc"]) * 100
    print(f"accuracy gap cnnviz vs plain: {gap:.1f} points")


def _forget_decoded(home: Path) -> None:
    """Drop the decoded-picture caches (memory and disk) so the next load decodes the zip again."""
    import shutil

    from cnnviz.data import cache

    for name in ("clear", "clear_memory"):
        if hasattr(cache, name):
            getattr(cache, name)()
    shutil.rmtree(home / "cache", ignore_errors=True)


if __name__ == "__main__":
    main()
