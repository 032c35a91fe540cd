"""Time from navigation to the first query answered in Python: the demo app, cold and warm.

    python -m bench.startup [--runs 5] [--out docs/benchmarks-startup.md]

Issue 5's benchmark. Each run takes a fresh Chromium profile (persistent, in
a temporary folder, so OPFS and the service worker's cache are on disk as a
person's would be) and serve.py on a free 127.0.0.1 port:

* **cold**: the first visit to ``/``: every file over HTTP, no service worker
  yet, an empty OPFS; the app fetches its schema from the primary and opens
  the database. Python starts the slow way: there is no snapshot yet.
* **warm, no snapshot**: once the service worker is activated, the page
  reloaded: every file now comes from its cache (checked: the navigation's
  response says so). No Python snapshot exists yet: this visit makes one
  (web/snapshot.js), and the run waits until it is stored.
* **warm**: the page reloaded again: Python is restored from the snapshot
  (checked: ``edgesqlStart.how``). Issue 18's "warm (service worker,
  returning visit)".
* **restart**: the browser closed and opened again on the same profile, then
  ``/`` navigated to: the start a returning person sees, from the snapshot
  (process start included in nothing: the timer is the page's own navigation clock).

The figures are the app's own performance marks (``web/app/main.py``),
read from ``performance.getEntriesByName`` relative to navigation start:
``app:python`` (PyScript has started the interpreter and runs main.py),
``app:db`` (``edgesql.connect`` has answered: the first query answered in
Python), ``app:ready`` (the first views are drawn from live queries); and
web/snapshot.js's ``python:*`` marks, for where the time goes. The
baseline, measured in the same page, is ``app:python``: what Pyodide and
PyScript cost before edgesql does anything; ``first query ÷ python`` is
what edgesql adds on top as a ratio. The precache size comes from
``/precache-manifest.json``. Targets (issue 18): warm ≤ 1.2 s, cold ≤ 3 s;
(issue 5) precache ≤ 20 MB.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.conftest import WAIT_ACTIVATED, OutsideRequests, launch_options, start_server  # noqa: E402

from .environment import chromium_version, collect, load_average  # noqa: E402
from .model import fmt_times  # noqa: E402
from .stats import ratio  # noqa: E402

__all__ = ["StartupReport", "main", "run"]

MARKS = ("app:python", "app:db", "app:ready")
#: web/snapshot.js's marks, in order: where Python's own start goes.
STEPS = ("python:start", "python:snapshot-read", "python:interpreter", "python:edgesql")
KINDS = ("cold", "warm-no-snapshot", "warm", "restart")
LABELS = {
    "cold": "cold (first visit, no snapshot)",
    "warm-no-snapshot": "warm, no snapshot yet",
    "warm": "warm, from the snapshot",
    "restart": "restart, from the snapshot",
}
#: How each start must have begun Python (web/snapshot.js's edgesqlStart.how).
HOW = {"cold": "no-snapshot", "warm-no-snapshot": "no-snapshot", "warm": "snapshot", "restart": "snapshot"}
TARGETS_S = {"cold": 3.0, "warm": 1.2}
SNAPSHOT_MS = 180_000
PRECACHE_BUDGET_MB = 20.0
READY_MS = 120_000
DEFAULT_OUT = ROOT / "docs" / "benchmarks-startup.md"

READ_MARKS = """(names) => Object.fromEntries(names.map((n) => {
    const e = performance.getEntriesByName(n, 'mark')[0];
    return [n, e ? e.startTime : null];
}).concat([['how', globalThis.edgesqlStart ? globalThis.edgesqlStart.how : null]]))"""


@dataclass
class StartupReport:
    """Every run's marks (ms since navigation) by kind, and what the run was on."""

    runs: int
    marks: dict[str, list[dict[str, float]]] = field(default_factory=lambda: {k: [] for k in KINDS})
    precache_mb: float = 0.0
    precache_files: int = 0
    chromium: str = ""
    load: list[float] = field(default_factory=list)

    def median_s(self, kind: str, mark: str) -> float:
        return statistics.median(m[mark] for m in self.marks[kind]) / 1000

    def max_s(self, kind: str, mark: str) -> float:
        return max(m[mark] for m in self.marks[kind]) / 1000


def _wait_ready(page: Any, kind: str) -> dict[str, float]:
    page.wait_for_function("document.documentElement.dataset.ready", timeout=READY_MS)
    state = page.evaluate("document.documentElement.dataset.ready")
    if state != "true":
        raise RuntimeError(f"the app failed to start: {page.inner_text('body')[:500]}")
    marks = page.evaluate(READ_MARKS, list(MARKS + STEPS))
    missing = [n for n, v in marks.items() if v is None]
    if missing:
        raise RuntimeError(f"the app set no performance mark {missing}")
    how = marks.pop("how")
    if how != HOW[kind]:
        raise RuntimeError(f"the {kind} start began Python with {how!r}, not {HOW[kind]!r}")
    return marks


def _one_run(playwright: Any, url: str, report: StartupReport) -> None:
    outside = OutsideRequests()
    with tempfile.TemporaryDirectory(prefix="edgesql-startup-") as profile:
        ctx = playwright.chromium.launch_persistent_context(profile, **launch_options())
        try:
            outside.watch(ctx)
            page = ctx.pages[0] if ctx.pages else ctx.new_page()
            page.goto(url + "/")
            report.marks["cold"].append(_wait_ready(page, "cold"))
            page.evaluate(WAIT_ACTIVATED)
            # Let the service worker finish precaching before it is asked to serve.
            page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=READY_MS)
            for kind in ("warm-no-snapshot", "warm"):
                response = page.reload()
                report.marks[kind].append(_wait_ready(page, kind))
                if response is None or not response.from_service_worker:
                    raise RuntimeError("the reload was not served by the service worker")
                if kind == "warm-no-snapshot":
                    made = page.evaluate(
                        "(ms) => Promise.race([globalThis.edgesqlStart.snapshot, "
                        "new Promise((r) => setTimeout(() => r(null), ms))])",
                        SNAPSHOT_MS,
                    )
                    if not made:
                        raise RuntimeError(
                            "the returning visit made no Python snapshot (see the page's console)"
                        )
        finally:
            ctx.close()
        ctx = playwright.chromium.launch_persistent_context(profile, **launch_options())
        try:
            outside.watch(ctx)
            page = ctx.pages[0] if ctx.pages else ctx.new_page()
            response = page.goto(url + "/")
            report.marks["restart"].append(_wait_ready(page, "restart"))
            if response is None or not response.from_service_worker:
                raise RuntimeError("the start after a restart was not served by the service worker")
        finally:
            ctx.close()
    outside.check()


def run(runs: int = 5, log: Any = print) -> StartupReport:
    """``runs`` fresh profiles, each measured cold, warm (reload) and after a restart; nothing is written."""
    from playwright.sync_api import sync_playwright

    report = StartupReport(runs=runs, load=[load_average()[0]])
    with tempfile.TemporaryDirectory(prefix="edgesql-startup-data-") as data:
        server = start_server(Path(data))
        try:
            with urllib.request.urlopen(server.url + "/precache-manifest.json") as r:
                manifest = json.load(r)
            report.precache_mb = manifest["size_bytes"] / 1e6
            report.precache_files = len(manifest["entries"])
            with sync_playwright() as p:
                for i in range(runs):
                    log(f"[startup] run {i + 1}/{runs}")
                    _one_run(p, server.url, report)
                    report.load.append(load_average()[0])
                browser = p.chromium.launch(**launch_options())
                report.chromium = chromium_version(browser.version)
                browser.close()
        finally:
            server.stop()
    return report


def _fmt(seconds: float) -> str:
    return f"{seconds:.2f} s"


def render_markdown(report: StartupReport) -> str:
    env = collect()
    lines = [
        "# edgesql start-up benchmark",
        "",
        "<!-- Generated by `python -m bench.startup`. Do not edit by hand: rerun. -->",
        "",
        "Time from navigation to the first query answered in Python in the demo app (`/`), as the",
        "app's own performance marks report it. See `bench/startup.py` for the method.",
        "",
        "|  |  |",
        "| --- | --- |",
        f"| date | {datetime.now(UTC):%Y-%m-%d %H:%M} UTC |",
        f"| CPU | {env.cpu}, {env.cores} cores |",
        f"| Chromium | {report.chromium}, headless, a fresh persistent profile per run |",
        f"| runs | {report.runs} (each: cold, warm without and with the snapshot, restart) |",
        "| load average (1 min): before, after each run | "
        + ", ".join(f"{x:.2f}" for x in report.load)
        + " |",
        "",
        "| start | Python started (baseline) | first query answered | first view drawn | "
        "first query ÷ baseline | slowest first query | target | |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for kind in KINDS:
        py, db, ready = (report.median_s(kind, m) for m in MARKS)
        target = TARGETS_S.get(kind)
        verdict = ""
        if target is not None:
            verdict = "met" if db <= target else f"**missed** by {_fmt(db - target)}"
        lines.append(
            f"| {LABELS[kind]} | {_fmt(py)} | {_fmt(db)} | {_fmt(ready)} | {fmt_times(ratio(db, py))} | "
            f"{_fmt(report.max_s(kind, 'app:db'))} | {'' if target is None else '≤ ' + _fmt(target)} | "
            f"{verdict} |"
        )
    warm, plain = report.median_s("warm", "app:db"), report.median_s("warm-no-snapshot", "app:db")
    lines += [
        "",
        f"The snapshot: a warm start's first query comes {fmt_times(ratio(plain, warm))} sooner with it "
        f"({_fmt(warm)}) than without it ({_fmt(plain)}), same profile, same run.",
        "",
        "*Where the time goes* (medians, seconds since navigation; each step ends at its mark):",
        "",
        "| start | page and PyScript until Python's start | snapshot looked up | interpreter ready "
        "| edgesql on disk | main.py runs | first query answered |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for kind in KINDS:
        cells = [_fmt(report.median_s(kind, m)) for m in (*STEPS, "app:python", "app:db")]
        lines.append(f"| {LABELS[kind]} | " + " | ".join(cells) + " |")
    size_verdict = "met" if report.precache_mb <= PRECACHE_BUDGET_MB else "**missed**"
    lines += [
        "",
        f"Precache: {report.precache_files} files, {report.precache_mb:.1f} MB "
        f"(budget {PRECACHE_BUDGET_MB:.0f} MB: {size_verdict}); the snapshot is kept apart, in its own",
        "Cache Storage cache (about 31 MB).",
        "",
        "Medians over the runs. *cold*: first visit, everything over HTTP from serve.py on",
        "127.0.0.1, an empty OPFS (the schema is fetched from the primary), Python started the slow",
        "way. *warm, no snapshot yet*: the same page reloaded once the service worker is active, every",
        "file from its cache; this returning visit makes the Python snapshot in a worker once the page",
        "is ready, and the run waits for it to be stored. *warm, from the snapshot*: reloaded again,",
        "Python restored from the snapshot. *restart*: the browser closed and reopened on the same",
        "profile, then `/`: served by the service worker, from the snapshot, the database already in",
        "OPFS. The DB worker starts and opens `app.db` while Python starts (web/pyodide-start.mjs).",
        "Without a snapshot nearly all of the time before the baseline is Pyodide's own start (CPython",
        "starting and importing ~190 modules in freshly compiled WebAssembly); with one it is reading",
        "the snapshot, compiling `pyodide.asm.wasm` (from V8's code cache on a reload) and restoring.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh profiles to measure (default 5)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"markdown output ({DEFAULT_OUT})")
    args = parser.parse_args(argv)
    start = time.monotonic()
    report = run(args.runs, log=lambda m: print(m, file=sys.stderr, flush=True))
    md = render_markdown(report)
    print(md)
    args.out.write_text(md)
    print(f"wrote {args.out} in {time.monotonic() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
