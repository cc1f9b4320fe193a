"""bf16 autocast and channels_last on this CPU: training and inference throughput per architecture.

The trainer's defaults come from this table: channels_last for conv nets, bf16 autocast on a CPU
only where it is faster (``TrainConfig.precision="auto"``). Each cell is the best of ``--repeats``
timed windows, variants interleaved, so a busy machine hurts them alike.

    python benchmarks/bench_precision.py
    python benchmarks/bench_precision.py --models resnet18:224:16 cifar_resnet:32:128
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

VARIANTS = [("fp32", False), ("fp32", True), ("bf16", False), ("bf16", True)]


def throughput(model, x, y, *, bf16: bool, train: bool, seconds: float) -> float:
    import torch

    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            if not train:
                with torch.inference_mode():
                    return model(x)
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    model.train(train)
    step()
    began, n = time.perf_counter(), 0
    while time.perf_counter() - began < seconds:
        step()
        n += len(x)
    return n / (time.perf_counter() - began)


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["cifar_resnet:32:128", "alexnet_cifar:32:128", "resnet18:224:16"],
                   help="arch:image_size:batch_size")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    common.setup(args)

    import torch

    from cnnviz.device import cpu_bf16_is_fast
    from cnnviz.models import get_model

    print(f"# cpu_bf16_is_fast() = {cpu_bf16_is_fast()}")
    rows = []
    for spec in args.models:
        arch, size, batch = spec.split(":")
        size, batch = int(size), int(batch)
        x0 = torch.randn(batch, 3, size, size)
        y = torch.randint(0, 10, (batch,))
        for train in (True, False):
            best = {}
            for _ in range(args.repeats):
                for precision, channels_last in VARIANTS:
                    torch.manual_seed(0)
                    model = get_model(arch, num_classes=10)
                    x = x0
                    if channels_last:
                        model, x = model.to(memory_format=torch.channels_last), x0.contiguous(memory_format=torch.channels_last)
                    rate = throughput(model, x, y, bf16=precision == "bf16", train=train, seconds=args.seconds)
                    key = (precision, channels_last)
                    best[key] = max(best.get(key, 0.0), rate)
            base = best[("fp32", False)]
            row = {"model": f"{arch}@{size} b{batch} {'train' if train else 'eval'}"}
            for precision, channels_last in VARIANTS:
                row[f"{precision}{' CL' if channels_last else ''}"] = f"{best[(precision, channels_last)]:.0f} ({best[(precision, channels_last)] / base:.2f}x)"
            rows.append(row)
            print(common.table(rows[-1:], list(rows[-1])), flush=True)
    print("\nimages/s (ratio to fp32 NCHW)")
    print(common.table(rows, list(rows[0])))


if __name__ == "__main__":
    main()
