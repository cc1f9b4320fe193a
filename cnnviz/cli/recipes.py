"""``recipes``: the named full configurations that ``train --recipe NAME`` and the Train page's Recipe box run."""

from __future__ import annotations

from cnnviz.cli.common import print_json


def add_parser(sub) -> None:
    """Register ``recipes``."""
    p = sub.add_parser("recipes", help="list the named recipes (full configurations) that train --recipe runs")
    p.add_argument("--json", action="store_true", help="print one JSON document: each recipe with its full config")
    p.set_defaults(func=run)


def run(args) -> int:
    """Print every named recipe: its name, title, reasons and (with --json) its full config."""
    from cnnviz.recipes import NAMED_RECIPES

    if args.json:
        print_json([{"name": r.name, "title": r.title, "why": r.why, "values": r.values,
                     "config": r.config().to_dict()} for r in NAMED_RECIPES])
        return 0
    width = max(len(r.name) for r in NAMED_RECIPES)
    for r in NAMED_RECIPES:
        print(f"{r.name:<{width}}  {r.title}")
        print(f"{'':<{width}}  {r.config().describe()}")
    print("\nrun one with: python -m cnnviz train --recipe NAME [flags that override it]")
    return 0
