"""Page response under load: real browser sessions open pages while a class's runs train in the app.

Starts ``streamlit run app.py`` on 127.0.0.1 (its own temp ``CNNVIZ_HOME``, ``CNNVIZ_WORKERS=2``),
opens ``--sessions`` headless Chromium contexts (one browser), and times each page load (Home,
Train, Compare, Architectures) until it has rendered: the page's own element visible and
Streamlit's running indicator gone. First with no training (the idle figures), then while
``--students`` tiny runs submitted to the app's store train through its workers, in this one
invocation. Prints p50/p95 per page for both (target: p95 <= 2 s under load), the class's
makespan and each student's wait for a first result. The app is stopped by pid at the end.

    python benchmarks/bench_pages.py                                 # 20 students, 1 epoch, 20 per class
    python benchmarks/bench_pages.py --students 10 --sessions 3      # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (CHROMIUM, CHROMIUM_ARGS, percentile, start_app, stop_app,  # noqa: E402
                               table)

# path under the app's URL, and the element that says the page has drawn its content
PAGES = {
    "Home": ("", "h1:has-text('compare CNN architectures')"),
    "Train": ("train", ".st-key-train_launch button"),
    "Compare": ("compare", "h1:has-text('Compare runs')"),
    "Architectures": ("architectures", "[data-testid='stMetric']:has-text('Parameters')"),
}
RUNNING = "[data-testid='stStatusWidget']"


async def time_page(tab, url: str, page: str, timeout: float) -> float | None:
    """Seconds from navigation to the page's element visible with no script running; None on a timeout."""
    path, selector = PAGES[page]
    began = time.perf_counter()
    try:
        await tab.goto(f"{url}/{path}", wait_until="commit", timeout=timeout * 1000)
        await tab.locator(selector).first.wait_for(state="visible", timeout=timeout * 1000)
        while await tab.locator(RUNNING).count():
            if time.perf_counter() - began > timeout:
                return None
            await asyncio.sleep(0.05)
    except Exception:  # noqa: BLE001 - a Playwright timeout: counted, not fatal
        return None
    return time.perf_counter() - began


async def session(tab, url: str, index: int, *, until, timeout: float, samples: dict) -> None:
    """One student's tab: open the pages in turn (each tab starting at another page) until ``until()``."""
    names = list(PAGES)
    step = index
    while not until(step - index):
        page = names[step % len(names)]
        samples.setdefault(page, []).append(await time_page(tab, url, page, timeout))
        step += 1


def class_config(args):
    from cnnviz.recipes import default_config

    return default_config(epochs=args.epochs, subset=args.subset, val_subset=10, device="cpu")


def wait_done(store, ids: list[int], first: dict, submitted: float) -> bool:
    """Note each run's first finished epoch; True when none of ``ids`` is queued or running."""
    runs = {r.id: r for r in store.list() if r.id in ids}
    for run_id in ids:
        if run_id not in first and store.epochs(run_id):
            first[run_id] = time.time() - submitted
    return not any(r.active for r in runs.values())


async def measure(args, url: str, home: Path) -> dict:
    from playwright.async_api import async_playwright

    from cnnviz.jobs import submit
    from cnnviz.runs import RunStore

    store = RunStore(home)
    config = class_config(args)
    out: dict = {"config": config.describe()}
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        contexts = [await browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(args.sessions)]
        tabs = [await c.new_page() for c in contexts]
        # Warm-up, untimed: the first visit starts the workers; one run decodes the data and loads torch
        # in a worker; every page is drawn once so the server has imported what each needs.
        await time_page(tabs[0], url, "Home", 120)
        warm = submit(config, student="warm-up", store=store)
        while not wait_done(store, [warm], {}, time.time()):
            await asyncio.sleep(0.5)
        for page in PAGES:
            await asyncio.gather(*(time_page(t, url, page, 120) for t in tabs))

        idle: dict = {}
        rounds = args.rounds * len(PAGES)
        began = time.time()
        await asyncio.gather(*(session(t, url, i, until=lambda n: n >= rounds, timeout=args.timeout, samples=idle)
                               for i, t in enumerate(tabs)))
        out["idle_seconds"] = time.time() - began

        loaded: dict = {}
        submitted = time.time()
        ids = [submit(config, student=f"student-{i:02d}", store=store) for i in range(args.students)]
        first: dict[int, float] = {}
        state = {"done": False}

        async def watch():
            while not wait_done(store, ids, first, submitted):
                await asyncio.sleep(1.0)
            state["done"] = True
            out["makespan"] = time.time() - submitted

        watcher = asyncio.create_task(watch())
        # Under load: the tabs keep opening pages while any of the class's runs is queued or running.
        await asyncio.gather(*(session(t, url, i, until=lambda n: state["done"] and n >= len(PAGES),
                                       timeout=args.timeout, samples=loaded) for i, t in enumerate(tabs)))
        await watcher
        await browser.close()
    statuses = [store.get(i).status for i in ids]
    out.update(idle=idle, loaded=loaded, first=sorted(first.values()),
               finished=sum(s == "finished" for s in statuses), submitted=len(ids))
    return out


def report(out: dict, target: float) -> bool:
    rows = []
    ok = True
    for page in [*PAGES, "all pages"]:
        def times(kind):
            got = out[kind].get(page) if page != "all pages" else [t for v in out[kind].values() for t in v]
            return [t for t in (got or []) if t is not None], sum(t is None for t in (got or []))
        idle, idle_failed = times("idle")
        loaded, loaded_failed = times("loaded")
        p95 = percentile(loaded, 95)
        ok = ok and p95 <= target and not loaded_failed
        rows.append({"page": page, "idle n": len(idle), "idle p50 s": percentile(idle, 50),
                     "idle p95 s": percentile(idle, 95), "load n": len(loaded),
                     "load p50 s": percentile(loaded, 50), "load p95 s": p95,
                     "timeouts": idle_failed + loaded_failed})
    print(table(rows, list(rows[0])))
    first = out["first"]
    print(f"class: {out['finished']}/{out['submitted']} runs finished, makespan {out['makespan']:.1f} s, "
          f"first result median {statistics.median(first) if first else float('nan'):.1f} s, "
          f"max {first[-1] if first else float('nan'):.1f} s")
    print(f"page p95 under load <= {target:.1f} s: {'met' if ok else 'NOT met'}")
    return ok


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--students", type=int, default=20)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--subset", type=int, default=20, help="training images per class")
    p.add_argument("--sessions", type=int, default=5, help="browser contexts opening pages side by side")
    p.add_argument("--rounds", type=int, default=2, help="idle phase: times each tab opens every page")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds before a page load counts as failed")
    p.add_argument("--target", type=float, default=2.0, help="p95 target under load, seconds")
    args = p.parse_args()
    home = Path(tempfile.mkdtemp(prefix="cnnviz-pages-"))
    print(f"# load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs, home {home}, {args.sessions} "
          f"sessions, {args.students} students, {args.workers} workers x 1 thread", flush=True)
    began = time.time()
    proc, url = start_app(home, workers=args.workers, threads=1)
    try:
        out = asyncio.run(measure(args, url, home))
    finally:
        stop_app(proc)
    print(f"run: {out['config']}; idle phase {out['idle_seconds']:.0f} s; whole script {time.time() - began:.0f} s; "
          f"load average now {os.getloadavg()[0]:.1f}")
    sys.exit(0 if report(out, args.target) else 1)


if __name__ == "__main__":
    main()
