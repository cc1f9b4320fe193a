"""A class watching its runs: what the open Train pages cost the server while a run trains.

Every Train page that shows a queued or running run redraws its live panel once a second (a
Streamlit fragment), and Streamlit ends every script run, fragments included, with a full garbage
collection. With thirty students watching, that per-refresh cost is paid thirty times a second.

For each ``--checkout`` (default: this one; another commit's ``git worktree`` for a baseline, all in
this one invocation) starts that checkout's ``streamlit run app.py`` on 127.0.0.1 (its own temp
``CNNVIZ_HOME``, one worker x 1 thread), submits one long run and measures ``--seconds`` twice: first
with no watchers, then with ``--watchers`` headless Chromium contexts open on ``/train?run=ID`` (each
its own student and session):

- the server process's CPU seconds per wall second (``/proc``: the web server alone, not its workers),
  and per script run, counted as the ``script_finished`` messages the tabs receive (a watcher's panel
  refresh, the probe's click);
- the run's training speed (batches the worker wrote to the store per second);
- the sidebar clicks of one more tab (Home and Compare in turn), p50 and p95.

The table gives the CPU per script run and the probe's p95 as ratios to the first checkout's. Each
app is stopped by pid after its measurement.

    python benchmarks/bench_watchers.py --watchers 5
    git worktree add /tmp/prev HEAD~1
    python benchmarks/bench_watchers.py --checkout . --checkout /tmp/prev    # and the other order
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_pages import PAGES, progress, settle, time_page  # noqa: E402
from benchmarks.common import CHROMIUM, CHROMIUM_ARGS, ROOT, percentile, start_app, stop_app, table  # noqa: E402

from streamlit.proto.ForwardMsg_pb2 import ForwardMsg  # noqa: E402

LIVE_PANEL = "[data-testid='stProgress']"  # the live panel's progress bar: the watched run is drawn
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of process ``pid`` (its own threads, not its children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def long_run():
    """The default run, long enough to outlast the measurement (it is stopped at the end)."""
    from cnnviz.recipes import default_config

    return default_config(epochs=50, device="cpu")


async def measure(url: str, pid: int, home: Path, *, watchers: int, seconds: float, timeout: float) -> list[dict]:
    """Rows for 0 and ``watchers`` watching tabs against one app: server CPU, training speed, clicks."""
    from playwright.async_api import async_playwright

    from cnnviz.jobs import submit
    from cnnviz.runs import RunStore

    store = RunStore(home)
    rows = []
    sent = {"messages": 0}

    def finished(payload) -> None:
        if isinstance(payload, bytes) and ForwardMsg.FromString(payload).WhichOneof("type") == "script_finished":
            sent["messages"] += 1

    def listen(ws) -> None:
        ws.on("framereceived", finished)

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        probe = await (await browser.new_context(viewport={"width": 1400, "height": 1000})).new_page()
        probe.on("websocket", listen)
        await time_page(probe, url, "Home", timeout)  # starts the workers
        for page in PAGES:  # every page drawn once: the server has imported what each needs
            await time_page(probe, url, page, timeout)
        run_id = submit(long_run(), student="teacher", store=store)
        deadline = time.monotonic() + timeout
        while not store.batches(run_id):
            if time.monotonic() > deadline or not store.get(run_id).active:
                raise RuntimeError(f"run {run_id} did not start training: {store.get(run_id).message}")
            await asyncio.sleep(0.5)
        tabs = []
        try:
            for count in (0, watchers):
                while len(tabs) < count:
                    tab = await (await browser.new_context(viewport={"width": 1400, "height": 1000})).new_page()
                    tab.on("websocket", listen)
                    began = time.perf_counter()
                    await tab.goto(f"{url}/train?run={run_id}&student=watcher-{len(tabs):02d}", timeout=timeout * 1000)
                    await settle(tab, LIVE_PANEL, began, timeout)
                    tabs.append(tab)
                await asyncio.sleep(3)  # the new sessions' first draws are over
                rows.append(await window(probe, url, pid, store, run_id, watchers=count, seconds=seconds,
                                         timeout=timeout, sent=sent))
                progress(f"{count} watching: server {rows[-1]['server_cpu']:.2f} CPU s/s")
        finally:
            store.request_stop(run_id)
            await browser.close()
    return rows


async def window(probe, url: str, pid: int, store, run_id: int, *, watchers: int, seconds: float,
                 timeout: float, sent: dict) -> dict:
    """One measurement: ``seconds`` of the probe tab clicking while the watchers' panels refresh."""
    clicks: list[float | None] = []
    messages0, batches0 = sent["messages"], len(store.batches(run_id))
    cpu0, began = cpu_seconds(pid), time.perf_counter()
    while time.perf_counter() - began < seconds:
        clicks.append(await time_page(probe, url, ("Home", "Compare")[len(clicks) % 2], timeout, kind="click"))
        await asyncio.sleep(0.5)
    wall, cpu = time.perf_counter() - began, cpu_seconds(pid) - cpu0
    done, messages = [c for c in clicks if c is not None], sent["messages"] - messages0
    return {"watchers": watchers, "server_cpu": cpu / wall, "script_runs": messages,
            "cpu_per_run": cpu / messages if messages else float("nan"),
            "batches_per_s": (len(store.batches(run_id)) - batches0) / wall,
            "click_p50": statistics.median(done) if done else float("nan"),
            "click_p95": percentile(done, 95), "clicks": len(done), "timeouts": len(clicks) - len(done)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--watchers", type=int, default=5, help="browser tabs watching the running run")
    p.add_argument("--seconds", type=float, default=30.0, help="length of each measurement")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds before a page load counts as failed")
    p.add_argument("--checkout", action="append", default=[], type=Path,
                   help="a checkout whose app to measure (repeatable; default this one); ratios are to the first")
    args = p.parse_args()
    if args.watchers < 1:
        p.error("--watchers must be at least 1 (the no-watcher row is always measured)")
    checkouts = [c.resolve() for c in args.checkout] or [ROOT]
    print(f"# load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs, {args.watchers} watchers, "
          f"{args.seconds:.0f} s per measurement", flush=True)
    rows = []
    for root in checkouts:
        home = Path(tempfile.mkdtemp(prefix="cnnviz-watchers-"))
        (home / "data").mkdir()
        try:
            proc, url = start_app(home, workers=1, root=root)
            try:
                progress(f"{root}: app at {url}")
                for row in asyncio.run(measure(url, proc.pid, home, watchers=args.watchers, seconds=args.seconds,
                                               timeout=args.timeout)):
                    rows.append({"checkout": str(root), **row})
            finally:
                stop_app(proc)
        except Exception as exc:  # noqa: BLE001 - one checkout failing still prints the others
            print(f"{root}: not measured: {exc}", file=sys.stderr)
        finally:
            shutil.rmtree(home, ignore_errors=True)
    base = {r["watchers"]: r for r in rows if r["checkout"] == str(checkouts[0])}
    for r in rows:
        first = base.get(r["watchers"], {})
        r["cpu_ratio"] = r["cpu_per_run"] / first["cpu_per_run"] if first.get("cpu_per_run") else float("nan")
        r["p95_ratio"] = r["click_p95"] / first["click_p95"] if first.get("click_p95") else float("nan")
    print(table(rows, ["checkout", "watchers", "server_cpu", "script_runs", "cpu_per_run", "batches_per_s",
                       "click_p50", "click_p95", "clicks", "timeouts", "cpu_ratio", "p95_ratio"]))
    print("cpu_ratio: server CPU per script run against the first checkout's; p95_ratio: the probe's clicks. "
          "With the browsers on the same cores, the watchers' refresh rate is the browsers' as much as the server's.")


if __name__ == "__main__":
    main()
