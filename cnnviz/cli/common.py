"""What every command shares: the one-line parser, user errors (exit 2), JSON printing, small formats."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Sequence

PROG = "python -m cnnviz"


class UsageError(ValueError):
    """A mistake in the command line itself."""


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line instead of argparse's usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions whose message is written for the user (bad input, missing files), not bugs."""
    from cnnviz.runs import RunNotFound

    errors: list[type[BaseException]] = [ValueError, RunNotFound, FileNotFoundError]
    for module, name in (("cnnviz.data", "DatasetUnavailable"), ("cnnviz.models", "WeightsUnavailable")):
        if module in sys.modules:  # only if the command got as far as importing it
            errors.append(getattr(sys.modules[module], name))
    return tuple(errors)


def print_json(data: Any) -> None:
    """Print ``data`` as the command's one JSON document on stdout."""
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def add_option_flag(p: argparse.ArgumentParser) -> None:
    """``--option KEY=VALUE`` (repeatable): an architecture option."""
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="an architecture option, e.g. residual_1=false or shortcut=A (repeatable)")


def add_student_flag(p: argparse.ArgumentParser) -> None:
    """``--student NAME``: whose run it is (default: the OS user)."""
    import getpass

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name in this environment (some containers)
        user = "cli"
    p.add_argument("--student", default=user, help=f"whose run it is, for fair share (default: {user})")


def parse_options(pairs: Sequence[str]) -> dict[str, str]:
    """``["residual_1=false", "shortcut=A"]`` -> a dict of raw strings (the registry parses the values)."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--option expects KEY=VALUE, got {pair!r}")
        options[key.strip()] = value.strip()
    return options


def fmt(value, spec: str = ".4f") -> str:
    """A number in ``spec``, or ``-`` when unknown."""
    return "-" if value is None else format(value, spec)


def epoch_line(row: dict) -> str:
    """One epoch's losses, accuracies and time on one line."""
    return (f"epoch {row.get('epoch', '?'):>3}  "
            f"train loss {fmt(row.get('train_loss'))} acc {fmt(row.get('train_acc'))}  "
            f"val loss {fmt(row.get('val_loss'))} acc {fmt(row.get('val_acc'))}  {fmt(row.get('seconds'), '.1f')} s")


def decode_progress():
    """A ``progress(done, total)`` for dataset decoding, drawn on stderr."""
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - last[0] > 0.5:
            last[0] = now
            sys.stderr.write(f"\rdecoding images {done}/{total}" + ("\n" if done >= total else ""))
            sys.stderr.flush()

    return progress


def imagenet_weights_name(arch: str, options: dict | None = None, *, hint: str = "") -> str:
    """The torchvision weights name that fits ``arch`` with ``options``; UsageError when it has none."""
    from cnnviz.models import get_spec, resolve_options

    name, _ = get_spec(arch).weights_for(resolve_options(arch, options))
    if not name:
        raise UsageError(f"{arch} has no ImageNet weights{hint}")
    return name
