"""How a failed run's error reads in the store and on the pages (torch-free: the job layer uses it too)."""

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
