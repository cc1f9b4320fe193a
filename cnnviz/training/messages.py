"""How errors read in one line: a failed run's in the store and on the pages, a refused input's in the
command line and the checks (torch-free: the job layer uses it too)."""

from __future__ import annotations


def error_text(exc: BaseException) -> str:
    """The user-facing line for ``exc``: its own message, or its type's name where it is a bug.

    ValueError/RuntimeError/OSError carry messages written for the user (DatasetUnavailable,
    WeightsUnavailable, a bad image size); anything else is a bug, so its type is named.
    """
    text = str(exc).strip()
    if isinstance(exc, (ValueError, RuntimeError, OSError)) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (its type's name when it has none)."""
    text = " ".join(part.strip() for part in str(exc).strip().splitlines() if part.strip())
    return text or type(exc).__name__
