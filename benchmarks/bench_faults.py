"""Faults: kill -9 a worker mid-run, then kill the whole app mid-queue; nothing queued is lost.

Against a real ``streamlit run app.py`` (127.0.0.1, its own temp ``CNNVIZ_HOME``,
``CNNVIZ_WORKERS=2``), in this one invocation:

(a) a worker is killed with SIGKILL (its pid from the store's ``worker`` column) while its run
    trains: the other runs all finish, the interrupted run keeps its best checkpoint,
    ``python -m cnnviz runs resume ID`` continues it to its last epoch, and the web server
    answers 200 on ``/_stcore/health`` throughout;
(b) the app and its workers are killed with SIGKILL mid-queue and started again on the same
    home: every queued run is still queued and gets trained, each running one is marked
    ``interrupted`` with its checkpoint and resumes to the end.

Prints a table of checks and exits non-zero when one fails.

    python benchmarks/bench_faults.py                  # 4 runs of 3 epochs per scenario
    python benchmarks/bench_faults.py --runs 3 --epochs 2
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import child_pids, healthy, open_app, start_app, stop_app  # noqa: E402

CHECKS: list[tuple[str, bool, str]] = []
NOTES: list[str] = []  # what was seen, not checked


def check(name: str, ok: bool, detail: str = "") -> bool:
    """Record one check (and print it at once, so a long run shows progress)."""
    CHECKS.append((name, bool(ok), detail))
    print(f"  {'passed' if ok else 'FAILED'}  {name}  {detail}", flush=True)
    return bool(ok)


class HealthWatch:
    """Polls ``/_stcore/health`` every ``every`` seconds in a thread; counts answers that were not 200."""

    def __init__(self, url: str, every: float = 0.5):
        self.url, self.every = url, every
        self.polls = self.failures = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> "HealthWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()

    def _poll(self) -> None:
        while not self._done.wait(self.every):
            self.polls += 1
            self.failures += not healthy(self.url, timeout=5)


def wait_for(predicate, timeout: float, every: float = 0.5):
    """Poll ``predicate`` until it returns something truthy; that value, or None after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    return None


def run_cli(home: Path, *args: str) -> dict:
    """``python -m cnnviz ... --json`` against ``home``; its JSON answer."""
    env = dict(os.environ, CNNVIZ_HOME=str(home), PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "cnnviz", *args, "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    if done.returncode:
        raise RuntimeError(f"cnnviz {' '.join(args)} failed: {done.stderr[-1000:]}")
    return json.loads(done.stdout)


def worker_pid(run) -> int | None:
    """The pid in a run's ``worker`` column ("host:pid")."""
    return int(run.worker.rsplit(":", 1)[1]) if run.worker else None


def training_with_checkpoint(store, ids):
    """A running run among ``ids`` that has finished an epoch and saved its best checkpoint, else None."""
    for run in store.list("running"):
        if run.id in ids and store.epochs(run.id) and store.checkpoint_path(run.id).is_file():
            return run
    return None


def all_ended(store, ids) -> bool:
    return not any(store.get(i).active for i in ids)


def epoch_numbers(store, run_id: int) -> list[int]:
    return [int(r["epoch"]) for r in store.epochs(run_id)]


def resume_to_end(store, home: Path, run_id: int, epochs: int, timeout: float, label: str) -> None:
    """``runs resume`` the run, wait for it, check it kept its id and finished every epoch once."""
    answer = run_cli(home, "runs", "resume", str(run_id))
    check(f"{label}: `runs resume {run_id}` queues the same run", int(answer.get("run_id", run_id)) == run_id
          and store.get(run_id).status in ("queued", "running", "finished"), json.dumps(answer))
    wait_for(lambda: not store.get(run_id).active, timeout)
    run = store.get(run_id)
    numbers = epoch_numbers(store, run_id)
    check(f"{label}: resumed run {run_id} finishes all {epochs} epochs, numbered once each",
          run.status == "finished" and numbers == list(range(1, epochs + 1)), f"status {run.status}, epochs {numbers}")
    check(f"{label}: resumed run {run_id} has its best checkpoint", store.checkpoint_path(run_id).is_file()
          and not store.last_checkpoint_path(run_id).exists(), str(store.checkpoint_path(run_id).name))


def kill_worker(args, config) -> None:
    """(a) SIGKILL one worker mid-run."""
    from cnnviz.jobs import submit
    from cnnviz.runs import RunStore

    home = Path(tempfile.mkdtemp(prefix="cnnviz-faults-a-"))
    proc, url = start_app(home, workers=2)
    store = RunStore(home)
    try:
        with HealthWatch(url) as health:
            open_app(url)  # the first page load starts the app's workers
            ids = [submit(config, student=f"student-{i}", store=store) for i in range(args.runs)]
            victim = wait_for(lambda: training_with_checkpoint(store, ids), args.timeout)
            if not check("(a) a run trains, with an epoch and a best checkpoint", victim is not None):
                return
            pid = worker_pid(victim)
            epochs_before = epoch_numbers(store, victim.id)
            os.kill(pid, signal.SIGKILL)
            killed = time.monotonic()
            interrupted = wait_for(lambda: store.get(victim.id).status == "interrupted", 60)
            check(f"(a) run {victim.id} is marked interrupted after its worker {pid} was killed", interrupted,
                  f"{time.monotonic() - killed:.1f} s" if interrupted else store.get(victim.id).status)
            check(f"(a) run {victim.id} keeps its best checkpoint and finished epochs",
                  store.checkpoint_path(victim.id).is_file() and epoch_numbers(store, victim.id) == epochs_before,
                  f"epochs {epochs_before}, {store.checkpoint_path(victim.id).name}")
            check(f"(a) run {victim.id} keeps its last-epoch checkpoint to resume from",
                  store.last_checkpoint_path(victim.id).is_file(), store.last_checkpoint_path(victim.id).name)
            others = [i for i in ids if i != victim.id]
            wait_for(lambda: all_ended(store, others), args.timeout)
            statuses = [store.get(i).status for i in others]
            check("(a) every other run (queued or running) finishes", statuses == ["finished"] * len(others),
                  f"{statuses.count('finished')}/{len(others)} finished")
            replaced = [p for p in child_pids(proc.pid) if p != pid]
            check("(a) the pool runs two workers again", len(replaced) == 2 and pid not in child_pids(proc.pid),
                  f"workers now {replaced}")
            resume_to_end(store, home, victim.id, config.epochs, args.timeout, "(a)")
        check("(a) /_stcore/health answered 200 throughout", health.polls > 0 and health.failures == 0,
              f"{health.polls - health.failures}/{health.polls} polls")
    finally:
        stop_app(proc)


def kill_app(args, config) -> None:
    """(b) SIGKILL the app and its workers mid-queue, start it again on the same home."""
    from cnnviz.jobs import submit
    from cnnviz.runs import RunStore

    home = Path(tempfile.mkdtemp(prefix="cnnviz-faults-b-"))
    proc, url = start_app(home, workers=2)
    store = RunStore(home)
    try:
        open_app(url)
        ids = [submit(config, student=f"student-{i}", store=store) for i in range(args.runs)]
        ready = wait_for(lambda: training_with_checkpoint(store, ids) and store.list("queued"), args.timeout)
        if not check("(b) runs train (one with a checkpoint) while others wait", bool(ready)):
            return
        workers = set(child_pids(proc.pid)) | {worker_pid(r) for r in store.list("running")}
        for pid in [proc.pid, *workers]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()
        time.sleep(1.0)
        queued = sorted(r.id for r in store.list("queued"))
        running = sorted(r.id for r in store.list("running"))
        saved = {i: store.checkpoint_path(i).is_file() for i in running}
        epochs_at_kill = {i: epoch_numbers(store, i) for i in running}
        alive = [p for p in workers if Path(f"/proc/{p}").exists() and "zombie" not in
                 Path(f"/proc/{p}/status").read_text().lower()]
        check("(b) the app and its workers are gone", not alive and not healthy(url),
              f"killed app {proc.pid} and workers {sorted(workers - {None})}")
        check("(b) after the kill the queue is intact", len(queued) + len(running) + sum(
            store.get(i).status == "finished" for i in ids) == len(ids), f"queued {queued}, running {running}")
        proc, url = start_app(home, workers=2)
        with HealthWatch(url) as health:
            check("(b) the queued runs are still queued after the restart",
                  sorted(r.id for r in store.list("queued")) == queued, f"{queued}")
            time.sleep(args.unvisited)  # the app starts its workers on its first page load, not at launch
            NOTES.append(f"(b) runs claimed in the {args.unvisited:.0f} s after the restart before any page was "
                         f"opened: {sum(store.get(i).status != 'queued' for i in queued)} of {len(queued)}")
            open_app(url)
            marked = wait_for(lambda: all(store.get(i).status == "interrupted" or store.get(i).status == "finished"
                                          for i in running), 60)
            check("(b) each run that was training is marked interrupted", marked,
                  ", ".join(f"{i}: {store.get(i).status}" for i in running))
            check("(b) the interrupted runs keep their checkpoints",
                  all(store.checkpoint_path(i).is_file() == saved[i] and epoch_numbers(store, i) == epochs_at_kill[i]
                      for i in running) and any(saved.values()),
                  ", ".join(f"{i}: epochs {epochs_at_kill[i]}, best saved {saved[i]}" for i in running))
            wait_for(lambda: all_ended(store, queued), args.timeout)
            statuses = [store.get(i).status for i in queued]
            check("(b) every queued run is trained after the restart", statuses == ["finished"] * len(queued),
                  f"{statuses.count('finished')}/{len(queued)} finished")
            for run_id in running:
                if store.get(run_id).status == "interrupted":
                    resume_to_end(store, home, run_id, config.epochs, args.timeout, "(b)")
        check("(b) /_stcore/health answered 200 throughout after the restart",
              health.polls > 0 and health.failures == 0, f"{health.polls - health.failures}/{health.polls} polls")
    finally:
        stop_app(proc)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=4, help="runs queued per scenario (two train at once)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--subset", type=int, default=20, help="training images per class")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for any one step")
    p.add_argument("--unvisited", type=float, default=10.0,
                   help="(b) seconds the restarted app runs before a page is opened")
    args = p.parse_args()
    from cnnviz.recipes import default_config

    config = default_config(epochs=args.epochs, subset=args.subset, val_subset=10, device="cpu")
    print(f"# load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; run: {config.describe()}", flush=True)
    began = time.time()
    kill_worker(args, config)
    kill_app(args, config)
    failed = [c for c in CHECKS if not c[1]]
    print(f"\n{len(CHECKS) - len(failed)}/{len(CHECKS)} checks passed in {time.time() - began:.0f} s; "
          f"load average now {os.getloadavg()[0]:.1f}")
    for name, ok, detail in CHECKS:
        print(f"{'passed' if ok else 'FAILED':<7} {name}  ({detail})" if detail else f"{'passed' if ok else 'FAILED':<7} {name}")
    for note in NOTES:
        print(f"note: {note}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
