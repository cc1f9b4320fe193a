"""A run's checkpoint file: where it is, and its model rebuilt. The format is ``cnnviz.checkpoint``'s.

Importing this module does not import torch (listing runs must stay cheap); the functions
that load a file import ``cnnviz.checkpoint`` when called.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnnviz.runs.store import RunNotFound, RunStore



def checkpoint_path(run_id: int | str, *, store: RunStore | None = None) -> Path:
    """The best checkpoint file of run ``run_id`` (CheckpointError when the run saved none)."""
    from cnnviz.checkpoint import CheckpointError

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


def load_model(path_or_run_id: Path | str | int, *, store: RunStore | None = None) -> tuple[Any, dict[str, Any]]:
    """Rebuild a checkpoint's model through the registry: ``(model.eval(), payload)``.

    ``path_or_run_id``: a run id (``3``, ``"3"``, ``"run:3"``) or a checkpoint file's path.
    """
    from cnnviz.checkpoint import build_model, load_checkpoint

    if isinstance(path_or_run_id, int) or (isinstance(path_or_run_id, str) and path_or_run_id.isdigit()):
        path = checkpoint_path(int(path_or_run_id), store=store)
    elif isinstance(path_or_run_id, str) and path_or_run_id.startswith("run:"):
        path = checkpoint_path(path_or_run_id[4:], store=store)
    else:
        path = Path(path_or_run_id)
    ckpt = load_checkpoint(path)
    return build_model(ckpt), ckpt.to_payload()
