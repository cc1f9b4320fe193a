"""``predict``: the top-k classes of images with a trained run (or ImageNet weights)."""

from __future__ import annotations

import sys

from cnnviz.cli.common import PROG, UsageError, print_json


def add_parser(sub) -> None:
    """Register ``predict``."""
    p = sub.add_parser("predict", help="top-k classes of images with a trained run (or ImageNet weights)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", type=int, help="run id whose best checkpoint predicts")
    source.add_argument("--pretrained", metavar="ARCH", help="an architecture with ImageNet weights in the cache")
    p.add_argument("--topk", type=int, default=5, help="how many classes per image (default 5)")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run)


def run(args) -> int:
    """Predict each image; exit 1 when one could not be read (the others are still predicted)."""
    from cnnviz.data.images import ImageLoadError, load_image
    from cnnviz.predict import load_pretrained, predict
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
        print_json({"run_id": args.run, "arch": payload["arch"], "pretrained": args.pretrained,
                    "classes": payload.get("classes"), "results": results})
    return 1 if failed else 0
