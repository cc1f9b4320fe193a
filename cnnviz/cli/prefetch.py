"""``prefetch``: download ImageNet weights and datasets before an offline class."""

from __future__ import annotations

import sys

from cnnviz.cli.common import decode_progress, imagenet_weights_name, print_json
from cnnviz.training.messages import one_line


def add_parser(sub) -> None:
    """Register ``prefetch``."""
    p = sub.add_parser("prefetch", help="download ImageNet weights and datasets before an offline class")
    p.add_argument("--weights", nargs="*", metavar="ARCH", help="architectures (default: all with weights)")
    p.add_argument("--datasets", nargs="*", metavar="NAME", help="datasets (default: all downloadable ones)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
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
            name = imagenet_weights_name(arch)
            imagenet_state_dict(name, progress=not args.json)
            report["weights"][arch] = f"ok ({weights_file_name(name)})"
        except Exception as exc:
            report["weights"][arch] = f"error: {one_line(exc)}"
    for name in datasets:
        try:
            report["datasets"][name] = f"ok ({_prefetch_dataset(name)})"
        except Exception as exc:
            report["datasets"][name] = f"error: {one_line(exc)}"
    failed = [f"{kind} {k}" for kind, items in report.items() for k, v in items.items() if v.startswith("error")]
    if args.json:
        print_json({**report, "ok": not failed})
    else:
        for kind, items in report.items():
            for key, value in items.items():
                print(f"{kind[:-1]} {key}: {value}", file=sys.stderr if value.startswith("error") else sys.stdout)
    return 1 if failed else 0


def _downloadable_datasets() -> list[str]:
    from cnnviz.data import get_dataset_spec, list_datasets

    return [n for n in list_datasets() if not (get_dataset_spec(n).generated or get_dataset_spec(n).needs_path)]


def _prefetch_dataset(name: str) -> str:
    """Make ``name``'s files present in the data root (downloaded where the network allows) and decode them
    once at their native size, so the first class run starts from the cache."""
    from cnnviz.data import load_dataset
    from cnnviz.paths import data_root

    counts = {split: len(load_dataset(name, split=split, progress=decode_progress())) for split in ("train", "val")}
    return f"{counts['train']} train + {counts['val']} val images, in {data_root()}"
