"""One checkpoint format: a plain dict of tensors and strings that ``weights_only`` can load.

A checkpoint names its architecture and options, so ``load_model`` rebuilds the
network through the model registry alone; no pickled classes are ever loaded.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

FORMAT = "cnnviz-checkpoint/1"
REQUIRED_KEYS = ("format", "arch", "num_classes", "state_dict")


class CheckpointError(ValueError):
    """A file that is not a loadable cnnviz checkpoint (missing, foreign, corrupt or unsafe)."""


def save_checkpoint(payload: dict[str, Any], path: Path | str) -> Path:
    """Write ``payload`` to ``path`` atomically (temp file in the same folder, then replace)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, **payload}
    if isinstance(payload.get("config"), dict):
        payload["config"] = json.dumps(payload["config"], sort_keys=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)  # readers see the old file or the new one, never half of one
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: Path | str) -> dict[str, Any]:
    """Load a cnnviz checkpoint with ``torch.load(weights_only=True)``; anything else is a CheckpointError."""
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if found:
            # weights_only refused a class or function reference: the file holds pickled objects.
            raise CheckpointError(
                f"{path.name} is refused: it contains pickled Python objects ({found.group(1)}), not only tensors "
                "and plain values; only cnnviz checkpoints and plain state_dicts are loaded") from None
        raise CheckpointError(f"{path.name} is not a readable checkpoint (not a torch file, or damaged)") from None
    except Exception as exc:  # truncated zip, not a torch file at all, ...
        raise CheckpointError(f"{path.name} is not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    return validate_checkpoint(payload, name=path.name)


def validate_checkpoint(payload: Any, *, name: str = "checkpoint") -> dict[str, Any]:
    """Check that ``payload`` is a cnnviz checkpoint dict and return it."""
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{name} is not a cnnviz checkpoint (format {found!r}, expected {FORMAT!r})")
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise CheckpointError(f"{name} is missing {', '.join(missing)}")
    return payload


def is_checkpoint(payload: Any) -> bool:
    """Whether an already loaded object is a cnnviz checkpoint payload (vs a plain state_dict)."""
    return isinstance(payload, dict) and payload.get("format") == FORMAT


def checkpoint_path(run_id: int | str, *, store=None) -> Path:
    """The best checkpoint file of run ``run_id`` (CheckpointError when the run saved none)."""
    from cnnviz.runs.store import RunNotFound, RunStore

    store = store or RunStore()
    try:
        run = store.get(int(run_id))
    except RunNotFound:
        raise CheckpointError(f"there is no run {run_id} in {store.path}") from None
    except ValueError:
        raise CheckpointError(f"{run_id!r} is not a run id") from None
    path = Path(run.checkpoint) if run.checkpoint else store.checkpoint_path(run.id)
    if not path.is_file():
        raise CheckpointError(f"run {run_id} ({run.status}) has no saved checkpoint")
    return path


def load_model(path_or_run_id: Path | str | int, *, store=None):
    """Rebuild a checkpoint's model through the registry: returns ``(model.eval(), payload)``."""
    if isinstance(path_or_run_id, int) or (isinstance(path_or_run_id, str) and path_or_run_id.isdigit()):
        path = checkpoint_path(int(path_or_run_id), store=store)
    elif isinstance(path_or_run_id, str) and path_or_run_id.startswith("run:"):
        path = checkpoint_path(path_or_run_id[4:], store=store)
    else:
        path = Path(path_or_run_id)
    payload = load_checkpoint(path)
    return build_model(payload), payload


def build_model(payload: dict[str, Any]):
    """The eval-mode model a checkpoint payload describes, with its weights loaded.

    Probe-mode checkpoints hold a linear probe on a frozen network's features; the trainer's
    ``probe_model_from_payload`` rebuilds those (the backbone still comes from the registry).
    """
    from cnnviz.models import get_model

    try:
        if payload.get("mode") == "probe":
            from cnnviz.training.modes import probe_model_from_payload

            return probe_model_from_payload(payload).eval()
        model = get_model(payload["arch"], num_classes=int(payload["num_classes"]),
                          options=payload.get("options") or {})
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"the weights in this checkpoint do not fit {payload['arch']} with options {payload.get('options')} "
            f"({first})") from None
    return model.eval()
