"""Runs: the SQLite run store and the checkpoint files beside it.

Importing this package does not import torch; checkpoint functions import it
when they are called.
"""

from cnnviz.runs.checkpoints import (
    FORMAT as CHECKPOINT_FORMAT,
    CheckpointError,
    build_model,
    checkpoint_path,
    is_checkpoint,
    load_checkpoint,
    load_model,
    save_checkpoint,
    validate_checkpoint,
)
from cnnviz.runs.store import ACTIVE, STATUSES, Run, RunNotFound, RunStore

__all__ = [
    "ACTIVE", "CHECKPOINT_FORMAT", "CheckpointError", "Run", "RunNotFound", "RunStore", "STATUSES", "build_model",
    "checkpoint_path", "is_checkpoint", "load_checkpoint", "load_model", "save_checkpoint", "validate_checkpoint",
]
