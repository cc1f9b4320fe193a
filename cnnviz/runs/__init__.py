"""Runs: the SQLite run store and each run's checkpoint file.

Importing this package does not import torch (listing runs must stay cheap); it registers the
``run`` prefix, so ``init="run:<id>"`` names run ``<id>``'s best checkpoint everywhere. The
checkpoint format itself is ``cnnviz.checkpoint``'s.
"""

from cnnviz.paths import register_init_resolver
from cnnviz.runs.checkpoints import checkpoint_path, load_model
from cnnviz.runs.store import ACTIVE, STATUSES, Run, RunNotFound, RunStore
from cnnviz.runs.cleanup import cleanup_checkpoints, disk_status, disk_use_by_student, parse_bytes

register_init_resolver("run", checkpoint_path)

__all__ = ["ACTIVE", "Run", "RunNotFound", "RunStore", "STATUSES", "checkpoint_path", "cleanup_checkpoints", "disk_status",
           "disk_use_by_student", "load_model", "parse_bytes"]
