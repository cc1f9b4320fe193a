"""The command line: ``python -m cnnviz summary|train|recipes|lr-find|submit|worker|predict|runs|prefetch|reproduce|report``.

With ``--json`` a command prints exactly one JSON document on stdout; progress and
errors go to stderr. A user error (unknown architecture, bad option, too small input,
missing dataset or run) exits with code 2 and one line on stderr, never a traceback.
Heavy imports (torch) happen inside the commands, so ``runs list`` stays quick.

Each command is a module with ``add_parser(subparsers)``, which registers its parser
and handler; a new command is one module and one entry in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from cnnviz.cli import (lr_find, predict, prefetch, recipes, report, reproduce, runs, submit, summary, train,
                        worker)
from cnnviz.cli.common import PROG, Parser, user_errors
from cnnviz.training.messages import one_line

COMMANDS = (summary, train, recipes, lr_find, submit, worker, predict, runs, prefetch, reproduce,
            report)  # in the order --help lists them


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of every command."""
    parser = Parser(prog=PROG, description="Compare CNN architectures: inspect, train, predict, manage runs.")
    sub = parser.add_subparsers(dest="command", parser_class=Parser, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except BrokenPipeError:  # `... | head -1` stopped reading: not an error of ours
        _silence_stdout()
        return 141  # what a shell reports for a process ended by SIGPIPE
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if isinstance(exc, user_errors()):
            print(f"{PROG} {args.command}: error: {one_line(exc)}", file=sys.stderr)
            return 2
        raise


def _silence_stdout() -> None:
    """Point stdout at /dev/null so Python's final flush does not raise again (Python docs, "SIGPIPE")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a file descriptor (captured in a test)
        pass
