"""Push 10k changes to local D1 (the Cloudflare Worker on workerd), against the embedded primary.

    python -m bench.sync_d1 [--changes 10000] [--repeat 3] [--only sqlite]

A CPython replica writes ``changes`` rows in one transaction (not timed), then
pushes its outbox with push-only sync rounds (pages of 5,000 changes), timed
from the first request to the last answer: what ``await db.sync()`` costs when
there is nothing to pull. Three ways, each with its own serve.py:

* ``d1-local``        serve.py --primary d1-local, through its /sync (what an app sees)
* ``d1-local-direct`` the same Worker, without serve.py's proxy hop
* ``sqlite``          serve.py --primary sqlite, the embedded primary
* ``turso-local``, ``turso-local-direct`` (only when asked: ``--only turso-local``) the same
  Worker in front of a local sqld (Turso's libSQL server), through serve.py and straight

``--only sqlite`` (or ``d1-local``, which measures both d1-local ways) runs one
serve.py. Each repeat uses a fresh replica (new replica id, new keys), so every push is
a real insert, never a replay. :func:`run` returns the figures; the target
(issue 4) is 10k changes in at most 2 s on local D1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "py"))

import edgesql  # noqa: E402
from bench.stats import ratio  # noqa: E402
from edgesql.sync.protocol import MAX_PAGE_CHANGES  # noqa: E402

__all__ = ["ALL_PRIMARIES", "PRIMARIES", "TARGET_S", "run"]

#: Issue 4: pushing 10k changes to local D1 takes at most this long.
TARGET_S = 2.0
#: The serve.py primaries measured (d1-local gives the d1-local and d1-local-direct ways).
PRIMARIES = ("d1-local", "sqlite")
#: Also measurable on request (bench/sync_turso.py asks for it).
ALL_PRIMARIES = (*PRIMARIES, "turso-local")
SCHEMA = (
    "CREATE TABLE notes (id TEXT PRIMARY KEY, title TEXT NOT NULL DEFAULT '', n INTEGER, done INTEGER);\n"
)


@contextmanager
def _serve(data: Path, primary: str) -> Iterator[dict[str, str]]:
    """serve.py with ``primary``; yields its sync URL and, for d1-local and turso-local, the Worker's."""
    schema = data / "schema.sql"
    data.mkdir(parents=True)
    schema.write_text(SCHEMA)
    cmd = [
        sys.executable,
        str(ROOT / "serve.py"),
        "--port",
        "0",
        "--data",
        str(data / "d"),
        "--schema",
        str(schema),
    ]
    proc = subprocess.Popen(
        [*cmd, "--primary", primary], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT
    )
    urls: dict[str, str] = {}
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if line.startswith(("edgesql d1-local:", "edgesql turso:")):
                urls["worker"] = (
                    next(w for w in line.split() if w.startswith("http://")).rstrip("/,") + "/sync"
                )
            if line.startswith("edgesql serving "):
                urls["serve"] = line.split()[2].rstrip("/") + "/sync"
                break
        else:
            raise RuntimeError(f"serve.py --primary {primary} did not start")
        yield urls
    finally:
        proc.terminate()
        proc.wait(15)
        proc.stdout.close()


async def _push_once(url: str, changes: int, tag: str) -> tuple[float, float]:
    """Seconds of the whole push, and of it the seconds its HTTP requests were in flight
    (the primary's share; the rest is the replica building pages and applying acks)."""
    db = await edgesql.connect(":memory:", sync_url=url, sync_interval=None)
    try:
        rows = [(f"{tag}-{i}", f"title {i}", i, i % 2) for i in range(changes)]
        await db.executemany("INSERT INTO notes (id, title, n, done) VALUES (?, ?, ?, ?)", rows)
        backend: Any = db._backend
        replica = backend.replica  # push-only rounds: nothing to pull muddles the figure
        transport = replica._transport
        request = transport.request
        in_flight: list[float] = []

        async def timed(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return await request(*args, **kwargs)
            finally:
                in_flight.append(time.perf_counter() - t)

        transport.request = timed
        try:
            start = time.perf_counter()
            while (await db.sync_status()).pending:
                await replica.round(push_limit=MAX_PAGE_CHANGES, pull_limit=0)
            return time.perf_counter() - start, sum(in_flight)
        finally:
            transport.request = request
    finally:
        await db.close()


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    """asyncio.run on a thread of its own: the caller may have an event loop running
    (Playwright's sync API keeps one on the main thread of a test session)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _measure(url: str, changes: int, repeat: int, tag: str) -> dict[str, Any]:
    _run(_push_once(url, 100, f"{tag}-warm"))  # the Worker's first request compiles its code
    runs = [_run(_push_once(url, changes, f"{tag}-{r}")) for r in range(repeat)]
    seconds = [total for total, _ in runs]
    median = statistics.median(seconds)
    return {
        "seconds": [round(s, 3) for s in seconds],
        "median_s": round(median, 3),
        # Of each run, the seconds its requests were in flight: the primary's share.
        "request_s": [round(r, 3) for _, r in runs],
        "median_request_s": round(statistics.median(r for _, r in runs), 3),
        "changes_per_s": per_second(changes, median),
        # Each change carries 4 cells (3 columns and the row's existence).
        "cells_per_s": per_second(4 * changes, median),
    }


def per_second(count: int, seconds: float) -> float:
    """``count`` per second, rounded to a whole number; NaN where ``seconds`` read 0 (stats.ratio)."""
    rate = ratio(count, seconds)
    return rate if math.isnan(rate) else round(rate)


def fmt_count(x: float) -> str:
    """A whole figure with thousands separators; NaN (unknown) as ``—``."""
    return "—" if math.isnan(x) else f"{x:,}"


def run(changes: int = 10_000, repeat: int = 3, only: tuple[str, ...] = PRIMARIES) -> dict[str, Any]:
    """Measure the primaries in ``only``; returns {"results": {way: {...}}, "target_s", "met", ...}.

    ``met`` is ``None`` when d1-local was not measured.
    """
    unknown = set(only) - set(ALL_PRIMARIES)
    if unknown:
        raise ValueError(f"unknown primaries {sorted(unknown)}: pick from {ALL_PRIMARIES}")
    load_before = os.getloadavg()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-d1-") as tmp:
        if "d1-local" in only:
            with _serve(Path(tmp) / "d1", "d1-local") as urls:
                results["d1-local"] = _measure(urls["serve"], changes, repeat, "proxy")
                results["d1-local-direct"] = _measure(urls["worker"], changes, repeat, "direct")
        if "turso-local" in only:
            with _serve(Path(tmp) / "turso", "turso-local") as urls:
                results["turso-local"] = _measure(urls["serve"], changes, repeat, "turso")
                results["turso-local-direct"] = _measure(urls["worker"], changes, repeat, "turso-direct")
        if "sqlite" in only:
            with _serve(Path(tmp) / "sqlite", "sqlite") as urls:
                results["sqlite"] = _measure(urls["serve"], changes, repeat, "embedded")
    return {
        "what": f"push of {changes:,} changes from a CPython replica (pages of {MAX_PAGE_CHANGES:,})",
        "changes": changes,
        "repeat": repeat,
        "results": results,
        "target_s": TARGET_S,
        "met": results["d1-local"]["median_s"] <= TARGET_S if "d1-local" in results else None,
        "load_average": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sync_d1", description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--only",
        choices=ALL_PRIMARIES,
        action="append",
        help="measure only this primary (repeatable; default: all)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    report = run(args.changes, args.repeat, tuple(args.only or PRIMARIES))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(report["what"])
    for way, r in report["results"].items():
        print(
            f"  {way:16} median {r['median_s']:.3f} s  {fmt_count(r['changes_per_s']):>7} changes/s  runs {r['seconds']}"
            f"  (requests in flight: median {r['median_request_s']:.3f} s)"
        )
    met = {True: "met", False: "NOT met", None: "not measured"}[report["met"]]
    print(f"target: d1-local ≤ {TARGET_S} s — {met}; load average {report['load_average']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
