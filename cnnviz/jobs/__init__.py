"""Jobs: submitting training runs and running them in the background (``local``: threads, one per device).

Importing this package does not import torch; a run imports it when it starts.
"""

from cnnviz.jobs.local import JobManager, JobStatus, device_key, get_manager, run_training

__all__ = ["JobManager", "JobStatus", "device_key", "get_manager", "run_training"]
