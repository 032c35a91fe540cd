"""Point query from a non-owner tab next to the owner tab, in one run (issue 6's benchmark).

    python -m bench.tabs [--rows 100000] [--queries 5000] [--rounds 3] [--out docs/benchmarks-tabs.md]

One Chromium profile (persistent, so OPFS is on disk), two pages of
``/console.html``. Tab A connects to ``tabs-bench.db`` first and so its
worker owns the OPFS file (Web Locks); tab B connects to the same name and
routes every request to A's worker over a BroadcastChannel. Both then run
the same seeded random point SELECTs by primary key back to back from
Python, each call timed with ``time.perf_counter_ns()``, taking turns in
rounds so that drift on the machine touches both alike. The owner tab is
the baseline: the ratio is non-owner ÷ owner. Target (issue 6): non-owner
p50 ≤ 1 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.conftest import OutsideRequests, launch_options, open_console, run_py, start_server  # noqa: E402

from .environment import chromium_version, collect, load_average  # noqa: E402
from .model import fmt_times  # noqa: E402
from .stats import ratio  # noqa: E402

__all__ = ["TabsReport", "main", "run"]

DB = "tabs-bench.db"
TARGET_P50_US = 1000.0
DEFAULT_OUT = ROOT / "docs" / "benchmarks-tabs.md"

OPEN = """
import edgesql
tabs_db = await edgesql.connect({db!r})
tabs_db.info.extra.get("owner")
"""

FILL = """
await tabs_db.execute("DROP TABLE IF EXISTS points")
await tabs_db.execute("CREATE TABLE points(id INTEGER PRIMARY KEY, name TEXT, value REAL)")
await tabs_db.executemany(
    "INSERT INTO points VALUES (?, ?, ?)", [(i, f"name {{i}}", i * 0.5) for i in range(1, {rows} + 1)]
)
(await tabs_db.execute("SELECT count(*) FROM points")).rows[0][0]
"""

QUERIES = """
import random, time, json
keys = random.Random({seed}).choices(range(1, {rows} + 1), k={n})
sql = "SELECT id, name, value FROM points WHERE id = ?"
for k in keys[:200]:
    await tabs_db.execute(sql, (k,))
us = []
wrong = 0
for k in keys:
    t = time.perf_counter_ns()
    rs = await tabs_db.execute(sql, (k,))
    row = rs.rows[0]
    us.append((time.perf_counter_ns() - t) / 1000)
    wrong += row[0] != k
json.dumps({{"us": us, "wrong": wrong}})
"""


@dataclass
class TabsReport:
    """Per-call latencies (µs) from the owner and the non-owner tab."""

    rows: int
    queries: int
    rounds: int
    owner_us: list[float] = field(default_factory=list)
    other_us: list[float] = field(default_factory=list)
    owner_p50s: list[float] = field(default_factory=list)
    other_p50s: list[float] = field(default_factory=list)
    fast_path: bool = False
    chromium: str = ""
    load: list[float] = field(default_factory=list)


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def run(rows: int = 100_000, queries: int = 5_000, rounds: int = 3, log: Any = print) -> TabsReport:
    """Measure as the module says; nothing is written."""
    from playwright.sync_api import sync_playwright

    report = TabsReport(rows=rows, queries=queries, rounds=rounds, load=[load_average()[0]])
    outside = OutsideRequests()
    with (
        tempfile.TemporaryDirectory(prefix="edgesql-tabs-data-") as data,
        tempfile.TemporaryDirectory(prefix="edgesql-tabs-profile-") as profile,
    ):
        server = start_server(Path(data))
        try:
            with sync_playwright() as p:
                ctx = p.chromium.launch_persistent_context(profile, **launch_options())
                try:
                    outside.watch(ctx)
                    owner = open_console(ctx.pages[0] if ctx.pages else ctx.new_page(), server.url)
                    report.chromium = chromium_version(owner.evaluate("navigator.userAgent"))
                    if run_py(owner, OPEN.format(db=DB)) is not True:
                        raise RuntimeError("the first tab did not become the owner")
                    log(f"[tabs] filling {rows} rows")
                    if run_py(owner, FILL.format(rows=rows)) != rows:
                        raise RuntimeError("the table was not filled")
                    other = open_console(ctx.new_page(), server.url)
                    if run_py(other, OPEN.format(db=DB)) is not False:
                        raise RuntimeError("the second tab did not route to the owner")
                    report.fast_path = bool(run_py(owner, "tabs_db.info.extra.get('fast_path')"))
                    for r in range(rounds):
                        log(f"[tabs] round {r + 1}/{rounds}")
                        for page, sink, p50s in (
                            (owner, report.owner_us, report.owner_p50s),
                            (other, report.other_us, report.other_p50s),
                        ):
                            out = run_py(page, QUERIES.format(seed=r, rows=rows, n=queries))
                            if out["wrong"]:
                                raise RuntimeError(f"{out['wrong']} point queries returned the wrong row")
                            sink += out["us"]
                            p50s.append(statistics.median(out["us"]))
                        report.load.append(load_average()[0])
                    run_py(other, "await tabs_db.close()")
                    run_py(owner, "await tabs_db.close()")
                finally:
                    ctx.close()
        finally:
            server.stop()
    outside.check()
    return report


def _us(x: float) -> str:
    return f"{x / 1000:.2f} ms" if x >= 1000 else f"{x:.0f} µs"


def render_markdown(report: TabsReport) -> str:
    env = collect()
    o50, o99 = _pct(report.owner_us, 0.5), _pct(report.owner_us, 0.99)
    n50, n99 = _pct(report.other_us, 0.5), _pct(report.other_us, 0.99)
    verdict = "met" if n50 <= TARGET_P50_US else f"**missed** by {_us(n50 - TARGET_P50_US)}"
    return "\n".join(
        [
            "# edgesql many-tabs benchmark",
            "",
            "<!-- Generated by `python -m bench.tabs`. Do not edit by hand: rerun. -->",
            "",
            "Point query by primary key from Python in the tab that owns the database and in a",
            "second tab of the same profile that routes its requests to the owner's worker. See",
            "`bench/tabs.py` for the method.",
            "",
            "|  |  |",
            "| --- | --- |",
            f"| date | {datetime.now(UTC):%Y-%m-%d %H:%M} UTC |",
            f"| CPU | {env.cpu}, {env.cores} cores |",
            f"| Chromium | {report.chromium}, headless, one persistent profile, two pages |",
            f"| page bridge | {'SharedArrayBuffer fast path' if report.fast_path else 'postMessage'} |",
            f"| table, calls | {report.rows:,} rows; {report.queries:,} calls per tab and round, "
            f"{report.rounds} rounds taking turns |",
            "| load average (1 min): before, after each round | "
            + ", ".join(f"{x:.2f}" for x in report.load)
            + " |",
            "",
            "| tab | p50 | p99 | mean | p50 per round | p50 ÷ owner | p99 ÷ owner |",
            "| --- | ---: | ---: | ---: | --- | ---: | ---: |",
            f"| owner (its worker holds the OPFS file) | {_us(o50)} | {_us(o99)} | "
            f"{_us(statistics.fmean(report.owner_us))} | "
            + ", ".join(_us(x) for x in report.owner_p50s)
            + " | 1.00× | 1.00× |",
            f"| non-owner (routed over BroadcastChannel) | {_us(n50)} | {_us(n99)} | "
            f"{_us(statistics.fmean(report.other_us))} | "
            + ", ".join(_us(x) for x in report.other_p50s)
            + f" | {fmt_times(ratio(n50, o50))} | {fmt_times(ratio(n99, o99))} |",
            "",
            f"Target (issue 6): non-owner p50 ≤ {_us(TARGET_P50_US)}: {verdict}.",
            "",
            "A non-owner's call takes two extra hops the owner's does not: its page posts to its own",
            "worker, which forwards over a BroadcastChannel to the owner's worker and back; the owner's",
            "page answers through a SharedArrayBuffer where the page is cross-origin isolated.",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tabs", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=5_000, help="calls per tab and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    start = time.monotonic()
    report = run(args.rows, args.queries, args.rounds, log=lambda m: print(m, file=sys.stderr, flush=True))
    md = render_markdown(report)
    print(md)
    args.out.write_text(md)
    print(f"wrote {args.out} in {time.monotonic() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
