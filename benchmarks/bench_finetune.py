"""Fine-tune: ResNet-18 on hymenoptera, everything trains, one full epoch (train + validation).

cnnviz decodes the pictures once (uint8 tensors, cached) and augments whole batches on tensors;
the plain loop is the PyTorch transfer-learning tutorial's: ImageFolder, a DataLoader with worker
processes, per-image PIL transforms (RandomResizedCrop + flip for training, Resize 256 +
CenterCrop 224 for validation). Same starting weights (a seeded random ResNet-18 saved once:
no pretrained weights offline), same optimiser (SGD lr 0.001, momentum 0.9), batch size and
threads. "cold" times cnnviz's first run on the zip (decoding included); "warm" a second run
(pictures decoded by an earlier run, as in the freeze phase that follows a fine-tune).

    python benchmarks/bench_finetune.py               # one epoch
    python benchmarks/bench_finetune.py --epochs 2
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from bench_freeze import MEAN, STD, image_folder  # noqa: E402


def plain_loop(folder: Path, weights: Path, *, epochs: int, batch_size: int, workers: int, seed: int) -> dict:
    """The tutorial's fine-tuning loop (new head, everything trains), timed per part."""
    import time

    import torch
    import torchvision
    from torch import nn
    from torchvision import transforms as T

    torch.manual_seed(seed)
    tfs = {"train": T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)]),
           "val": T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(MEAN, STD)])}
    sets = {s: image_folder(folder / s, tfs[s]) for s in tfs}
    loaders = {s: torch.utils.data.DataLoader(sets[s], batch_size=batch_size, shuffle=(s == "train"),
                                              num_workers=workers) for s in sets}
    model = torchvision.models.resnet18()
    model.load_state_dict(torch.load(weights, weights_only=True))
    model.fc = nn.Linear(512, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    best, began = 0.0, time.perf_counter()
    for _ in range(epochs):
        model.train()
        for x, y in loaders["train"]:
            loss = nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in loaders["val"]:
                correct += (model(x).argmax(1) == y).sum().item()
        best = max(best, correct / len(sets["val"]))
    seconds = time.perf_counter() - began
    return {"best_val_acc": best, "images_per_sec": epochs * len(sets["train"]) / seconds}


def data_only(folder: Path, config, *, batch_size: int, workers: int) -> dict:
    """Seconds for one pass over the training pictures with no model: the plain DataLoader (decode + PIL
    transforms per image) vs cnnviz's batches (index the decoded tensor, augment and normalise per batch)."""
    import time

    import torch
    from torchvision import transforms as T

    from cnnviz.data import load_splits
    from cnnviz.training.features import ImageBatches

    tf = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])
    loader = torch.utils.data.DataLoader(image_folder(folder / "train", tf), batch_size=batch_size, shuffle=True,
                                         num_workers=workers)
    began = time.perf_counter()
    for _ in loader:
        pass
    plain = time.perf_counter() - began
    train_data, _ = load_splits(config, image_size=224)  # decoded by the runs before: a cache hit
    batches = ImageBatches(train_data.images, train_data.labels, device=torch.device("cpu"), mean=MEAN, std=STD,
                           image_size=224, augment="standard", generator=torch.Generator().manual_seed(0),
                           channels_last=True)
    began = time.perf_counter()
    for index in torch.randperm(len(batches)).split(batch_size):
        batches.get(index, train=True)
    return {"plain": plain, "cnnviz": time.perf_counter() - began}


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers of the plain loop (the tutorial uses 4)")
    args = p.parse_args()
    home = common.setup(args)

    import torch
    import torchvision

    from cnnviz.training import TrainConfig, train

    torch.manual_seed(args.seed)
    weights = home / "resnet18_random.pth"
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    folder = common.extract(Path(args.data_root) / "hymenoptera_data.zip", "hymenoptera_data")
    config = TrainConfig(arch="resnet18", dataset="hymenoptera", data_root=args.data_root, mode="finetune",
                         init=str(weights), epochs=args.epochs, batch_size=args.batch_size, lr=0.001, momentum=0.9,
                         weight_decay=0.0, augment="standard", image_size=224, seed=args.seed, device="cpu")
    times = {}
    with common.timed(times, "cold"):
        cold = train(config)
    print(f"cnnviz (cold): {cold.status}, {cold.message}", flush=True)
    with common.timed(times, "plain"):
        plain = plain_loop(folder, weights, epochs=args.epochs, batch_size=args.batch_size, workers=args.workers,
                           seed=args.seed)
    with common.timed(times, "warm"):
        warm = train(config)
    print(f"cnnviz (warm): {warm.status}, {warm.message}", flush=True)
    rows = [
        {"loop": "plain (ImageFolder + PIL transforms)", "seconds": times["plain"],
         "train img/s": plain["images_per_sec"], "best_val_acc": plain["best_val_acc"], "speed-up": 1.0},
        {"loop": "cnnviz cold (decodes the zip)", "seconds": times["cold"],
         "train img/s": cold.epochs[-1]["images_per_sec"], "best_val_acc": cold.best_val_acc,
         "speed-up": times["plain"] / times["cold"]},
        {"loop": "cnnviz warm (pictures decoded before)", "seconds": times["warm"],
         "train img/s": warm.epochs[-1]["images_per_sec"], "best_val_acc": warm.best_val_acc,
         "speed-up": times["plain"] / times["warm"]},
    ]
    print(f"\nResNet-18 fine-tune on hymenoptera, {args.epochs} epoch(s), batch {args.batch_size}, 224 px, "
          f"{torch.get_num_threads()} threads")
    print(common.table(rows, ["loop", "seconds", "train img/s", "best_val_acc", "speed-up"]))
    data = data_only(folder, config, batch_size=args.batch_size, workers=args.workers)
    print(f"\ndata pipeline alone, one pass over the training pictures: plain {data['plain']:.1f} s, "
          f"cnnviz {data['cnnviz']:.2f} s ({data['plain'] / data['cnnviz']:.0f}x); the rest of an epoch is "
          f"ResNet-18's forward and backward passes, the same work in both loops")


if __name__ == "__main__":
    main()
