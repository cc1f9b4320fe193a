"""Jobs: the run store is the queue; worker processes claim runs and train them through an executor.

``submit`` / ``stop`` / ``resume`` write to the store; ``Worker`` (``python -m cnnviz worker``)
claims the fair next run and trains it with ``LocalExecutor`` (this process) or a Ray executor;
``pool.ensure_workers`` starts local workers for the app. Importing this package does not import
torch; a run imports it when it starts.
"""

from cnnviz.jobs.local import LocalExecutor, run_training
from cnnviz.jobs.submit import JobStatus, StoreJobs, get_manager, resume, status, stop, submit
from cnnviz.jobs.worker import Executor, Worker

__all__ = ["Executor", "JobStatus", "LocalExecutor", "StoreJobs", "Worker", "get_manager", "resume", "run_training",
           "status", "stop", "submit"]
