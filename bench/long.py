"""Long statements and big results: how soon an interrupt lands, and a 3M-row result read page by page.

    python -m bench.long [--rows 3000000] [--trials 40] [--out docs/benchmarks-long.md]

Issue 18's benchmark. serve.py on a free 127.0.0.1 port and headless
Chromium on a fresh persistent profile (OPFS on disk), service workers
blocked as in ``python -m bench`` (so no page makes a Python snapshot
meanwhile). Pages are ``/console.html``; the measured code runs in their
Pyodide on connections of its own.

* **Interrupt**: a statement that would run for minutes is started from a
  task (``db.execute``), and after a random 20–80 ms ``db.interrupt()`` is
  called; the figure is the time from that call to the statement's
  ``OperationalError`` (SQLITE_INTERRUPT) in Python. Three ways: the page
  that owns the database (its SharedArrayBuffer), a second tab whose
  statement runs in the first tab's worker (the signal file), and a page
  served without COOP/COEP (no SharedArrayBuffer: its signal-writer worker
  and the file). Baseline, same page and run: a ``SELECT 1`` after the same
  pause, i.e. the round trip an interrupt's answer needs anyway.
* **3M rows**: a table of ``--rows`` rows, then ``async for row in
  db.iterate(...)`` over all of it from Python in the page, while page
  JavaScript records every animation frame (requestAnimationFrame) and long
  tasks. Memory: the renderer processes' resident size (``/proc``: the page,
  its Pyodide and its DB worker live there), sampled every 50 ms, and
  Pyodide's WebAssembly memory (it never shrinks, so it is its high-water
  mark). Baseline, same page and run: the same figures while the page is
  idle for as long, and ``execute`` of a tenth of the rows.
* **Console**: the devtools' Run on a ``SELECT`` of all the rows, until its
  first page is on screen (the console's own timer).

Targets (issue 18): interrupt p95 ≤ 10 ms; longest frame while iterating
≤ 50 ms; memory bounded (reported: its growth over the iteration).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.conftest import (  # noqa: E402
    OutsideRequests,
    launch_options,
    open_console,
    run_py,
    start_server,
    strip_isolation,
)

from .environment import chromium_version, collect, load_average  # noqa: E402
from .model import fmt_times  # noqa: E402
from .stats import percentile, ratio  # noqa: E402

__all__ = ["LongReport", "main", "run"]

#: The console's own database: its Run reads the big table too (the bench's profile is thrown away).
DB = "app.db"
DEFAULT_OUT = ROOT / "docs" / "benchmarks-long.md"
TARGET_INTERRUPT_P95_MS = 10.0
TARGET_FRAME_MS = 50.0

CONNECT = """
import edgesql, json
long_db = await edgesql.connect({db!r})
json.dumps([long_db.info.extra.get("owner"), long_db.info.extra.get("fast_path")])
"""

INTERRUPTS = """
import asyncio, json, random, time, edgesql
LONG = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000000) "
        "SELECT count(*) FROM c")
rng = random.Random({seed})
landed, base = [], []
for _ in range({trials}):
    pause = rng.uniform(0.02, 0.08)
    task = asyncio.ensure_future(long_db.execute(LONG))
    await asyncio.sleep(pause)
    t0 = time.perf_counter_ns()
    long_db.interrupt()
    try:
        await task
        raise RuntimeError("the long statement was not interrupted")
    except edgesql.OperationalError as e:
        if e.sqlite_errorcode != 9:
            raise
    landed.append((time.perf_counter_ns() - t0) / 1e6)
    await asyncio.sleep(pause)
    t0 = time.perf_counter_ns()
    await long_db.execute("SELECT 1")
    base.append((time.perf_counter_ns() - t0) / 1e6)
json.dumps({{"landed": landed, "base": base}})
"""

FILL = """
await long_db.execute("DROP TABLE IF EXISTS big")
await long_db.execute("CREATE TABLE big (id INTEGER PRIMARY KEY, label TEXT, value REAL)")
await long_db.execute(
    "INSERT INTO big SELECT x, 'label ' || x, x * 0.5 FROM "
    "(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {rows}) SELECT x FROM c)"
)
(await long_db.execute("SELECT count(*) FROM big")).scalar()
"""

#: Page JavaScript: record every frame's length and the long tasks until stopped.
FRAMES_START = """() => {
    const rec = { frames: [], longtasks: [], heapMax: 0, on: true };
    let last = performance.now();
    const tick = (t) => {
        rec.frames.push(t - last);
        last = t;
        rec.heapMax = Math.max(rec.heapMax, performance.memory ? performance.memory.usedJSHeapSize : 0);
        if (rec.on) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
    rec.observer = new PerformanceObserver((list) => {
        for (const e of list.getEntries()) rec.longtasks.push(e.duration);
    });
    rec.observer.observe({ type: 'longtask' });
    globalThis.__frames = rec;
}"""
FRAMES_STOP = """() => {
    const rec = globalThis.__frames;
    rec.on = false;
    rec.observer.disconnect();
    return { frames: rec.frames.slice(1), longtasks: rec.longtasks, heapMax: rec.heapMax };
}"""
MEMORY = """() => ({ wasm: pyodide._module.HEAP8.length, heap: performance.memory ? performance.memory.usedJSHeapSize : 0 })"""

ITERATE = """
import json, time
n = total = 0
t0 = time.perf_counter()
async for row in long_db.iterate("SELECT id, label, value FROM big"):
    n += 1
    total += row[0]
json.dumps({"rows": n, "sum": total, "s": time.perf_counter() - t0})
"""
IDLE = """
import asyncio, json
await asyncio.sleep({seconds})
json.dumps(1)
"""
EXECUTE = """
import json, time
t0 = time.perf_counter()
rs = await long_db.execute("SELECT id, label, value FROM big WHERE id <= {rows}")
n = len(rs.rows)
del rs
json.dumps({{"rows": n, "s": time.perf_counter() - t0}})
"""


@dataclass
class LongReport:
    """What one run measured."""

    rows: int
    trials: int
    interrupts: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    iterate: dict[str, Any] = field(default_factory=dict)
    idle: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, dict[str, Any]] = field(default_factory=dict)
    execute: dict[str, Any] = field(default_factory=dict)
    console_ms: float = 0.0
    chromium: str = ""
    load: list[float] = field(default_factory=list)


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _renderers(profile: str) -> list[int]:
    """The renderer processes of the Chromium running on ``profile`` (page, Pyodide and workers live there)."""
    procs: dict[int, tuple[int, str]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        procs[int(d.name)] = (ppid, cmd)
    browsers = {pid for pid, (_, cmd) in procs.items() if profile in cmd and "--type=" not in cmd}

    def under_browser(pid: int) -> bool:
        while pid in procs:
            if pid in browsers:
                return True
            pid = procs[pid][0]
        return False

    return [pid for pid, (_, cmd) in procs.items() if "--type=renderer" in cmd and under_browser(pid)]


class RssPeak:
    """The largest total resident size of some processes, sampled every 50 ms until stopped."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.peak = sum(_rss(p) for p in pids)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, sum(_rss(p) for p in self.pids))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def _interrupts(page: Any, seed: int, trials: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = run_py(page, INTERRUPTS.format(seed=seed, trials=trials))
    return out


def _frames(page: Any, code: str) -> tuple[Any, dict[str, Any]]:
    page.bring_to_front()
    page.evaluate(FRAMES_START)
    result = run_py(page, code)
    frames = page.evaluate(FRAMES_STOP)
    return result, frames


def run(rows: int = 3_000_000, trials: int = 40, log: Any = print) -> LongReport:
    """Measure as the module says; nothing is written."""
    from playwright.sync_api import sync_playwright

    report = LongReport(rows=rows, trials=trials, load=[load_average()[0]])
    outside = OutsideRequests()
    with (
        tempfile.TemporaryDirectory(prefix="edgesql-long-data-") as data,
        tempfile.TemporaryDirectory(prefix="edgesql-long-profile-") as profile,
    ):
        server = start_server(Path(data))
        try:
            with sync_playwright() as p:
                ctx = p.chromium.launch_persistent_context(
                    profile, service_workers="block", **launch_options()
                )
                try:
                    outside.watch(ctx)
                    owner = open_console(ctx.pages[0] if ctx.pages else ctx.new_page(), server.url)
                    report.chromium = chromium_version(owner.evaluate("navigator.userAgent"))
                    if run_py(owner, CONNECT.format(db=DB)) != [True, True]:
                        raise RuntimeError("the first page is not the owner on the fast path")
                    log("[long] interrupts: the owner's page")
                    report.interrupts["owner"] = _interrupts(owner, 1, trials)
                    other = open_console(ctx.new_page(), server.url)
                    if run_py(other, CONNECT.format(db=DB)) != [False, True]:
                        raise RuntimeError("the second page did not route to the owner")
                    log("[long] interrupts: a second tab")
                    report.interrupts["other tab"] = _interrupts(other, 2, trials)
                    run_py(other, "await long_db.close()")
                    other.close()
                    plain = ctx.new_page()
                    strip_isolation(plain)
                    open_console(plain, server.url)
                    if run_py(plain, CONNECT.format(db="long-plain.db")) != [True, False]:
                        raise RuntimeError(
                            "the page without COOP/COEP should own its database, without isolation"
                        )
                    log("[long] interrupts: a page without cross-origin isolation")
                    _interrupts(plain, 0, 2)  # its signal-writer worker starts on the first one
                    report.interrupts["no isolation"] = _interrupts(plain, 3, trials)
                    run_py(plain, "await long_db.close()")
                    plain.close()
                    report.load.append(load_average()[0])

                    log(f"[long] filling {rows:,} rows")
                    if run_py(owner, FILL.format(rows=rows)) != rows:
                        raise RuntimeError("the table was not filled")
                    renderers = _renderers(profile)
                    if not renderers:
                        raise RuntimeError(
                            "no renderer process of the benchmark's Chromium was found in /proc"
                        )
                    report.memory["before"] = owner.evaluate(MEMORY) | {
                        "rss": sum(_rss(p) for p in renderers)
                    }
                    log("[long] iterate")
                    peak = RssPeak(renderers)
                    report.iterate, frames = _frames(owner, ITERATE)
                    report.iterate["rssPeak"] = peak.stop()
                    if report.iterate["rows"] != rows or report.iterate["sum"] != rows * (rows + 1) // 2:
                        raise RuntimeError(f"iterate returned the wrong rows: {report.iterate}")
                    report.iterate |= frames
                    report.memory["after iterate"] = owner.evaluate(MEMORY) | {
                        "rss": sum(_rss(p) for p in renderers)
                    }
                    peak = RssPeak(renderers)
                    _none, report.idle = _frames(owner, IDLE.format(seconds=min(report.iterate["s"], 10)))
                    report.idle["rssPeak"] = peak.stop()
                    log("[long] execute, a tenth of the rows")
                    peak = RssPeak(renderers)
                    report.execute = run_py(owner, EXECUTE.format(rows=rows // 10))
                    report.execute["rssPeak"] = peak.stop()
                    report.memory["after execute"] = owner.evaluate(MEMORY) | {
                        "rss": sum(_rss(p) for p in renderers)
                    }
                    report.load.append(load_average()[0])

                    log("[long] the console")
                    owner.locator("#sql").fill("SELECT id, label, value FROM big")
                    owner.click("#run")
                    owner.wait_for_selector('#output [data-action="more"]', timeout=60_000)
                    status = owner.inner_text("#status")  # "1 statement(s) in 12.34 ms"
                    report.console_ms = float(status.split(" in ")[1].split()[0])
                    report.load.append(load_average()[0])
                finally:
                    ctx.close()
        finally:
            server.stop()
    outside.check()
    return report


def _ms(x: float) -> str:
    return f"{x:.2f} ms" if x < 10 else f"{x:.1f} ms"


def _mb(x: float | None) -> str:
    return "—" if x is None else f"{x / 1e6:.0f} MB"


def render_markdown(report: LongReport) -> str:
    env = collect()
    lines = [
        "# edgesql long statements and big results",
        "",
        "<!-- Generated by `python -m bench.long`. Do not edit by hand: rerun. -->",
        "",
        "How soon `db.interrupt()` stops a running statement, and a 3M-row result read with",
        "`db.iterate()` from Python in the page while the page keeps drawing. See `bench/long.py`",
        "for the method.",
        "",
        "|  |  |",
        "| --- | --- |",
        f"| date | {datetime.now(UTC):%Y-%m-%d %H:%M} UTC |",
        f"| CPU | {env.cpu}, {env.cores} cores |",
        f"| Chromium | {report.chromium}, headless, one persistent profile |",
        f"| rows, interrupt trials | {report.rows:,}; {report.trials} per page |",
        "| load average (1 min): before, after each part | "
        + ", ".join(f"{x:.2f}" for x in report.load)
        + " |",
        "",
        "## Interrupt: from `db.interrupt()` to the error in Python",
        "",
        "| page | p50 | p95 | p99 | max | baseline `SELECT 1` p50 | p50 ÷ baseline | p95 target | |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, got in report.interrupts.items():
        xs, base = got["landed"], got["base"]
        p50, p95 = percentile(xs, 0.5), percentile(xs, 0.95)
        b50 = percentile(base, 0.5)
        verdict = "met" if p95 <= TARGET_INTERRUPT_P95_MS else "**missed**"
        lines.append(
            f"| {name} | {_ms(p50)} | {_ms(p95)} | {_ms(percentile(xs, 0.99))} | {_ms(max(xs))} | {_ms(b50)} | "
            f"{fmt_times(ratio(p50, b50))} | ≤ {_ms(TARGET_INTERRUPT_P95_MS)} | {verdict} |"
        )
    it, idle = report.iterate, report.idle
    frames, idle_frames = it["frames"], idle["frames"]
    longest, idle_longest = max(frames), max(idle_frames)
    mem = report.memory
    lines += [
        "",
        "*owner*: the statement runs in this page's worker, which reads the page's SharedArrayBuffer",
        "while it runs. *other tab*: a second tab's statement, running in the owner tab's worker; the",
        "interrupt goes through the second tab's worker into the database's signal file. *no",
        "isolation*: a page served without COOP/COEP, so no SharedArrayBuffer: a small worker of the",
        "page writes the signal file.",
        "",
        f"## {report.rows:,} rows with `async for row in db.iterate(...)`",
        "",
        "| figure | while iterating | baseline: the page idle as long | ratio | target | |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
        f"| longest frame | {_ms(longest)} | {_ms(idle_longest)} | {fmt_times(ratio(longest, idle_longest))} | "
        f"≤ {_ms(TARGET_FRAME_MS)} | {'met' if longest <= TARGET_FRAME_MS else '**missed**'} |",
        f"| frame p99 | {_ms(percentile(frames, 0.99))} | {_ms(percentile(idle_frames, 0.99))} | "
        f"{fmt_times(ratio(percentile(frames, 0.99), percentile(idle_frames, 0.99)))} | | |",
        f"| frame p50 | {_ms(percentile(frames, 0.5))} | {_ms(percentile(idle_frames, 0.5))} | "
        f"{fmt_times(ratio(percentile(frames, 0.5), percentile(idle_frames, 0.5)))} | | |",
        f"| long tasks (> 50 ms) | {len(it['longtasks'])} | {len(idle['longtasks'])} | | | |",
        f"| frames drawn | {len(frames)} in {it['s']:.1f} s | {len(idle_frames)} | | | |",
        "",
        f"All {it['rows']:,} rows in {it['s']:.1f} s ({it['rows'] / it['s'] / 1000:.0f}k rows/s), checked by the"
        " sum of their ids.",
        "",
        f"| memory | before | while iterating {report.rows:,} rows (peak) / after | baseline: idle as long (peak) "
        f"| `execute` of {report.execute['rows']:,} rows (peak) / after |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| renderer processes, resident (page, Pyodide, DB worker) | {_mb(mem['before']['rss'])} | "
        f"{_mb(it['rssPeak'])} / {_mb(mem['after iterate']['rss'])} | {_mb(idle['rssPeak'])} | "
        f"{_mb(report.execute['rssPeak'])} / {_mb(mem['after execute']['rss'])} |",
        f"| Pyodide's WebAssembly memory (its high-water mark) | {_mb(mem['before']['wasm'])} | "
        f"{_mb(mem['after iterate']['wasm'])} | | {_mb(mem['after execute']['wasm'])} |",
        f"| page JavaScript heap | {_mb(mem['before']['heap'])} | {_mb(it['heapMax'])} / "
        f"{_mb(mem['after iterate']['heap'])} | | {_mb(mem['after execute']['heap'])} |",
        "",
        f"Renderer memory while iterating: {_mb(it['rssPeak'] - mem['before']['rss'])} above where it started, "
        f"{fmt_times(ratio(it['rssPeak'], idle['rssPeak']))} its peak while idle; `execute` of a tenth of the rows "
        f"took it {_mb(report.execute['rssPeak'] - mem['after iterate']['rss'])} higher.",
        "",
        f"`execute` of {report.execute['rows']:,} rows took {report.execute['s']:.1f} s; its growth is what a",
        "result held whole costs, for a tenth of the rows the iteration read in pages.",
        "",
        f"## The console: a `SELECT` of all {report.rows:,} rows",
        "",
        f"Run until the first 1,000 rows are on screen (the console's own timer): {_ms(report.console_ms)}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.long", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--trials", type=int, default=40, help="interrupts per page")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    start = time.monotonic()
    report = run(args.rows, args.trials, log=lambda m: print(m, file=sys.stderr, flush=True))
    md = render_markdown(report)
    print(md)
    args.out.write_text(md)
    print(f"wrote {args.out} in {time.monotonic() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
