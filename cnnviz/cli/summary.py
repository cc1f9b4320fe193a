"""``summary``: the layer table, parameters and FLOPs of an architecture."""

from __future__ import annotations

from cnnviz.cli.common import UsageError, add_option_flag, parse_options, print_json


def add_parser(sub) -> None:
    """Register ``summary``."""
    p = sub.add_parser("summary", help="layer table, parameters and FLOPs of an architecture")
    p.add_argument("--arch", required=True, help="architecture name (see the Architectures page)")
    add_option_flag(p)
    p.add_argument("--num-classes", type=int, default=1000, help="classes of the head (default 1000)")
    p.add_argument("--image-size", type=int, default=None, help="input side in pixels (default: the architecture's)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run)


def run(args) -> int:
    """Print the summary of ``--arch``."""
    from cnnviz.inspect import summarize
    from cnnviz.models import resolve_options

    options = resolve_options(args.arch, parse_options(args.option))
    if args.num_classes < 1:
        raise UsageError(f"--num-classes must be at least 1, got {args.num_classes}")
    if args.image_size is not None and args.image_size < 1:
        raise UsageError(f"--image-size must be a positive number of pixels, got {args.image_size}")
    summary = summarize(args.arch, options=options, num_classes=args.num_classes, image_size=args.image_size)
    if args.json:
        print_json(summary.to_dict())
    else:
        print(f"{args.arch} ({', '.join(f'{k}={v}' for k, v in options.items()) or 'no options'}), "
              f"{args.num_classes} classes, {summary.image_size}x{summary.image_size} input")
        print(summary.table())
    return 0
