"""Page response under load: real browser sessions use the app while a class's runs train in it.

Starts ``streamlit run app.py`` on 127.0.0.1 (its own temp ``CNNVIZ_HOME``, ``CNNVIZ_WORKERS=2``) and
opens ``--sessions`` headless Chromium contexts (one browser). Each tab moves through the pages
(Home, Train, Compare, Architectures) as a student does: it opens the first by its URL (a full page
load: Streamlit's JavaScript, a new session, the script) and reaches the others by clicking the
sidebar (the same session: the page's script and the redraw), reading each page for ``--think``
seconds (default 2, jittered; 0 for tabs clicking back to back). Each step is timed until the page
has rendered: its own element visible and Streamlit's running indicator gone. First with no
training (the idle figures), then while ``--students`` tiny runs submitted to the app's store train
through its workers, in this one invocation. Last, with the class's trained runs in the store: a
new 12-megapixel photo uploaded on Predict against ``--predict-models`` of them, timed until every
model's Grad-CAM and top-k chart is drawn (the issue's goal: 1.5 s warm).

Prints p50/p95 per page and kind (target: click p95 <= 2 s under load; the full URL loads are
printed beside it), the class's makespan, each student's wait for a first result, and the Predict
figure. The app is stopped by pid at the end.

    python benchmarks/bench_pages.py                                 # 20 students, 1 epoch, 20 per class
    python benchmarks/bench_pages.py --students 10 --sessions 3      # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (CHROMIUM, CHROMIUM_ARGS, percentile, start_app, stop_app,  # noqa: E402
                               table)

# path under the app's URL, the sidebar label, and the element that says the page has drawn its content
PAGES = {
    "Home": ("", "Home", "h1:has-text('compare CNN architectures')"),
    "Train": ("train", "Train", ".st-key-train_launch button"),
    "Compare": ("compare", "Compare", "h1:has-text('Compare runs')"),
    "Architectures": ("architectures", "Architectures", "[data-testid='stMetric']:has-text('Parameters')"),
}
RUNNING = "[data-testid='stStatusWidget']"
KINDS = ("open", "click")  # a full load by URL; a click in the sidebar of an open session


async def settle(tab, selector: str, began: float, timeout: float) -> float | None:
    """Seconds since ``began`` when ``selector`` is visible and no script runs; None on a timeout."""
    try:
        await tab.locator(selector).first.wait_for(state="visible", timeout=timeout * 1000)
        while await tab.locator(RUNNING).count():
            if time.perf_counter() - began > timeout:
                return None
            await asyncio.sleep(0.05)
    except Exception:  # noqa: BLE001 - a Playwright timeout: counted, not fatal
        return None
    return time.perf_counter() - began


async def time_page(tab, url: str, page: str, timeout: float, *, kind: str = "open") -> float | None:
    """Seconds from navigation (by URL, or a sidebar click) to the page drawn; None on a timeout."""
    path, label, selector = PAGES[page]
    began = time.perf_counter()
    try:
        if kind == "open":
            await tab.goto(f"{url}/{path}", wait_until="commit", timeout=timeout * 1000)
        else:
            await tab.locator(f"[data-testid='stSidebarNavLink']:has(span[label='{label}'])").click(
                timeout=timeout * 1000)
    except Exception:  # noqa: BLE001
        return None
    return await settle(tab, selector, began, timeout)


async def session(tab, url: str, index: int, *, until, timeout: float, samples: dict, think: float) -> None:
    """One student's tab: open a page by URL, then click through the others, until ``until(steps)``.

    Each round opens the next page by URL (so every page is opened as well as clicked to), and
    the tab waits ``think`` seconds between pages (jittered +-50%), as a reader does.
    """
    names = list(PAGES)
    rng = random.Random(index)
    step = 0
    while not until(step):
        kind = "open" if step % len(names) == 0 else "click"
        page = names[(index + step + step // len(names)) % len(names)]
        samples.setdefault((kind, page), []).append(await time_page(tab, url, page, timeout, kind=kind))
        step += 1
        if think:
            await asyncio.sleep(think * rng.uniform(0.5, 1.5))


def progress(text: str) -> None:
    """A phase line on stderr with the time, so a long benchmark shows where it is."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


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

        progress("warm-up done; idle phase")
        idle: dict = {}
        rounds = args.rounds * len(PAGES)
        began = time.time()
        await asyncio.gather(*(session(t, url, i, until=lambda n: n >= rounds, timeout=args.timeout, samples=idle,
                                       think=args.think)
                               for i, t in enumerate(tabs)))
        out["idle_seconds"] = time.time() - began

        progress("idle phase done; the class submits")
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
                                       timeout=args.timeout, samples=loaded, think=args.think)
                               for i, t in enumerate(tabs)))
        await watcher
        progress("class done")
        if args.predict_models:
            out["predict"] = await time_predict(tabs[0], url, args.predict_models, args.predict_repeats,
                                                args.timeout)
        await browser.close()
    statuses = [store.get(i).status for i in ids]
    out.update(idle=idle, loaded=loaded, first=sorted(first.values()),
               finished=sum(s == "finished" for s in statuses), submitted=len(ids))
    return out


def photo_jpeg(seed: int) -> bytes:
    """A 12-megapixel photo-like JPEG (``bench_predict.photo``)."""
    import io

    from benchmarks.bench_predict import photo

    out = io.BytesIO()
    photo(seed=seed).save(out, format="JPEG", quality=90)
    return out.getvalue()


async def time_predict(tab, url: str, models: int, repeats: int, timeout: float) -> dict:
    """Seconds from uploading a new 12 MP photo on Predict to every model's answer drawn (median of ``repeats``)."""
    await tab.goto(f"{url}/predict", timeout=timeout * 1000)
    chooser = tab.locator(".st-key-predict_models")
    await chooser.wait_for(timeout=timeout * 1000)
    await settle(tab, ".st-key-predict_models", time.perf_counter(), timeout)
    chosen = await chooser.locator("[data-tag-index]").count()  # the page's default choice
    for _ in range(models - chosen):  # each pick adds the first model not chosen yet
        await chooser.locator("[role='combobox']").click()
        await tab.locator("[role='option']").first.click()
        await settle(tab, ".st-key-predict_models", time.perf_counter(), timeout)
        chosen += 1
    await tab.keyboard.press("Escape")
    upload = tab.locator(".st-key-predict_upload input[type='file']")
    answers = "[data-testid='stVegaLiteChart']"
    times = []
    folder = Path(tempfile.mkdtemp(prefix="cnnviz-photos-"))
    for seed in range(repeats + 1):  # the first upload also loads the models: untimed
        # A file on disk, as a student's photo is: a Playwright buffer would travel through the
        # driver's pipe in base64 first (about 1.5 s for 6 MB here), which no browser user pays.
        path = folder / f"photo{seed}.jpg"
        path.write_bytes(photo_jpeg(seed + 1))
        began = time.perf_counter()
        await upload.set_input_files(str(path))
        while await tab.locator(answers).count() < chosen:
            if time.perf_counter() - began > timeout:
                break
            await asyncio.sleep(0.02)
        took = await settle(tab, answers, began, timeout)
        if seed:
            times.append(took)
        await tab.locator(".st-key-predict_upload [data-testid='stFileChipDeleteBtn'] button").first.click()
        await settle(tab, ".st-key-predict_models", time.perf_counter(), timeout)
    done = [t for t in times if t is not None]
    return {"models": chosen, "times": times, "median": statistics.median(done) if done else float("nan")}


def report(out: dict, target: float) -> bool:
    """Print the tables; True when the click p95 under load meets ``target`` with no timeouts."""
    rows = []
    ok = True
    for kind in KINDS:
        for page in [*PAGES, "all pages"]:
            def times(phase):
                found = out[phase]
                got = found.get((kind, page)) if page != "all pages" else [
                    t for (k, _), v in found.items() if k == kind for t in v]
                return [t for t in (got or []) if t is not None], sum(t is None for t in (got or []))
            idle, idle_failed = times("idle")
            loaded, loaded_failed = times("loaded")
            p95 = percentile(loaded, 95)
            if kind == "click" and page == "all pages":
                ok = p95 <= target and not loaded_failed
            rows.append({"kind": kind, "page": page, "idle n": len(idle), "idle p50 s": percentile(idle, 50),
                         "idle p95 s": percentile(idle, 95), "load n": len(loaded),
                         "load p50 s": percentile(loaded, 50), "load p95 s": p95,
                         "timeouts": idle_failed + loaded_failed})
    print(table(rows, list(rows[0])))
    first = out["first"]
    print(f"class: {out['finished']}/{out['submitted']} runs finished, makespan {out['makespan']:.1f} s, "
          f"first result median {statistics.median(first) if first else float('nan'):.1f} s, "
          f"max {first[-1] if first else float('nan'):.1f} s")
    if "predict" in out:
        pred = out["predict"]
        shown = ", ".join("timeout" if t is None else f"{t:.2f}" for t in pred["times"])
        print(f"predict: new 12 MP photo x {pred['models']} trained models, drawn in {pred['median']:.2f} s "
              f"(median; each: {shown}); goal <= 1.5 s: {'met' if pred['median'] <= 1.5 else 'NOT met'}")
    print(f"page p95 under load (sidebar clicks) <= {target:.1f} s: {'met' if ok else 'NOT met'}")
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
    p.add_argument("--think", type=float, default=2.0,
                   help="seconds a tab waits between pages (jittered +-50%%; 0: back to back)")
    p.add_argument("--predict-models", type=int, default=5, help="trained runs chosen on Predict (0: skip)")
    p.add_argument("--predict-repeats", type=int, default=3, help="timed photo uploads on Predict")
    args = p.parse_args()
    home = Path(tempfile.mkdtemp(prefix="cnnviz-pages-"))
    print(f"# load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs, home {home}, {args.sessions} "
          f"sessions ({args.think:g} s between pages), {args.students} students, {args.workers} workers x 1 thread", flush=True)
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
