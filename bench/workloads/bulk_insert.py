"""``executemany`` of 100k rows from Python, next to the worker inserting them alone (issue 2).

The same rows (``(i, 'name 000123', i * 0.25)``, built in Python by
bench/inpage.py and in JavaScript by bench/worker-ops.js) go into a fresh
table in one transaction, three ways: ``await db.executemany`` from Python;
the worker alone through the engine's ``runMany`` (what executemany runs
once the request is parsed); and the worker alone binding with the C API
(the floor). Then the Python call's parts are timed apart.
"""

from __future__ import annotations

import math
from typing import Any

from ..browser import FAST_PATH, BenchError, BenchPage
from ..config import Config
from ..model import Check, Section, Table, check, fmt_rate, fmt_ratio
from ..stats import median, ratio

__all__ = ["BULK_INSERT", "BulkInsert"]

TABLE = "bench_bulk"
#: worker/sab-layout.js DATA_BYTES: larger requests go by postMessage.
SAB_BYTES = 1 << 20
#: Issue 2's target, and issue 7's for later.
TARGET_ROWS_PER_S = 50_000.0
LATER_ROWS_PER_S = 90_000.0


class BulkInsert:
    """Workload: 100k rows in one transaction, from Python and from the worker alone."""

    key = "bulk_insert"
    title = "Bulk insert: executemany"
    paths: tuple[str, ...] = (FAST_PATH,)

    def prepare(self, page: BenchPage, cfg: Config) -> None:
        # The first insert grows the database file; later ones reuse the
        # pages the dropped table freed. Grow it once, untimed.
        page.call("worker_bulk", table=TABLE, rows=cfg.bulk_rows, mode="raw")

    def measure(self, page: BenchPage, cfg: Config, load: int) -> dict[str, Any]:
        n = cfg.bulk_rows
        # One untimed insert first: the page's first big write grows the
        # journal (or WAL) file, which the variants should not pay for.
        page.call("worker_bulk", table=TABLE, rows=n, mode="raw")

        def js() -> dict[str, Any]:
            page.call("executemany_text", table=TABLE, rows=n)
            r = page.js("() => edgesqlBench.roundTrips([globalThis.edgesqlBenchText], 0)")
            return {"seconds": r["total_us"] / 1e6, "count": page.call("count_and_drop", table=TABLE)}

        variants = {
            "python": lambda: page.call("executemany", table=TABLE, rows=n),
            "js": js,
            "engine": lambda: page.call("worker_bulk", table=TABLE, rows=n, mode="engine"),
            "raw": lambda: page.call("worker_bulk", table=TABLE, rows=n, mode="raw"),
        }
        # Each load starts with the next variant, so no variant always goes first.
        order = list(variants)
        order = order[load % len(order) :] + order[: load % len(order)]
        out = {name: variants[name]() for name in order}
        for name, r in out.items():
            if r["count"] != n:
                raise BenchError(f"the {name} variant left {r['count']} rows, expected {n}")
        return out

    def summarize(self, loads: dict[str, list[dict[str, Any]]], cfg: Config) -> Section:
        data = loads.get(FAST_PATH, [])
        n = cfg.bulk_rows
        if not data:
            return Section(self.key, self.title, _method(cfg), [], notes=["not run"])
        py_s = median([d["python"]["seconds"] for d in data])
        js_s = median([d["js"]["seconds"] for d in data])
        engine_s = median([d["engine"]["seconds"] for d in data])
        raw_s = median([d["raw"]["seconds"] for d in data])
        keys = ("before_call_s", "call_s", "wait_s", "after_s", "check_s", "dumps_s", "ffi_s", "parse_s")
        keys += ("plain_parse_s",)
        parts = {k: median([d["python"][k] for d in data]) for k in keys}
        request_mb = data[0]["python"]["request_bytes"] / 1e6
        via = "postMessage" if data[0]["python"]["request_bytes"] > SAB_BYTES else "the SharedArrayBuffer"

        def row(label: str, seconds: float) -> list[str]:
            return [
                label,
                f"{seconds * 1000:.0f} ms",
                fmt_rate(ratio(n, seconds)),
                fmt_ratio(ratio(py_s, seconds)),
            ]

        results = Table(
            columns=["variant", "time", "rows/s", "executemany time ÷"],
            rows=[
                row("`await db.executemany(...)` from Python", py_s),
                row("raw JS round trip: the same request text, same bridge and worker", js_s),
                row("worker alone, engine (`Database.runMany`, one transaction)", engine_s),
                row("worker alone, raw C-API binds (one transaction)", raw_s),
            ],
            caption=f"{n:,} rows, fast-path page. Medians over {len(data)} page load(s).",
        )
        wait_rest = parts["wait_s"] - parts["parse_s"] - engine_s

        def part(label: str, seconds: float) -> list[str]:
            share = ratio(seconds, py_s)
            return [label, f"{seconds * 1000:.0f} ms", "—" if math.isnan(share) else f"{100 * share:.0f}%"]

        breakdown = Table(
            columns=["where executemany's time goes", "time", "share"],
            rows=[
                part("`await db.executemany(...)`, whole", py_s),
                part("Python, before the bridge call", parts["before_call_s"]),
                part("  `check_many` (parameter checks), timed apart", parts["check_s"]),
                part(f"  `dumps` (to {request_mb:.1f} MB of JSON), timed apart", parts["dumps_s"]),
                part(f"`bridge.callSync` (text into JS, then {via})", parts["call_s"]),
                part("  handing the text to JavaScript (FFI), timed apart", parts["ffi_s"]),
                part("waiting for the answer", parts["wait_s"]),
                part("  worker: `JSON.parse` with the type reviver, timed apart", parts["parse_s"]),
                part("    for scale: plain `JSON.parse` of the same text", parts["plain_parse_s"]),
                part("  worker: inserting (the engine variant above)", engine_s),
                part("  rest: message passing, event loops, answer", wait_rest),
                part("Python, after the answer (`loads`, `ResultSet`)", parts["after_s"]),
            ],
            caption="One traced executemany per load (stamps at the bridge calls); parts marked "
            "'timed apart' were run separately on the same page. Medians over the loads.",
        )
        checks: list[Check] = [
            check(2, "executemany rows/s", ratio(n, py_s), TARGET_ROWS_PER_S, at_most=False, fmt=fmt_rate),
            check(7, "executemany rows/s", ratio(n, py_s), LATER_ROWS_PER_S, at_most=False, fmt=fmt_rate),
        ]
        figures = {
            "executemany.rows_per_s": ratio(n, py_s),
            "executemany_js.rows_per_s": ratio(n, js_s),
            "worker_engine.rows_per_s": ratio(n, engine_s),
            "worker_raw.rows_per_s": ratio(n, raw_s),
            **{f"executemany.{k}": v for k, v in parts.items()},
        }
        return Section(self.key, self.title, _method(cfg), [results, breakdown], checks, figures)


def _method(cfg: Config) -> list[str]:
    return [
        f"{cfg.bulk_rows:,} rows `(i, 'name %06d', i * 0.25)` into a fresh "
        f"`{TABLE}(id INTEGER PRIMARY KEY, name TEXT, value REAL)` in `{cfg.db_name}`, one transaction "
        "each, with the worker's settings (see above); the table is dropped after each variant, so "
        "each one reuses the same freed pages. On the setup page one untimed insert grew the "
        "database file, and on every page one untimed insert comes first (a page's first big write "
        "grows the journal or WAL file); the variants then take turns going first, load by load.",
        "**executemany**: the list of row tuples is built first (untimed), then "
        "`await db.executemany(sql, rows)` is timed with `time.perf_counter_ns()`. A request larger "
        "than the SharedArrayBuffer's 1 MiB (100k rows make about 3 MB) travels by postMessage on "
        "either path. The "
        "call is traced: the backend's two bridge hooks are wrapped to stamp the time (a few timer "
        "reads in a call of seconds).",
        "**raw JS round trip**: the request text Python's executemany sent, sent again from "
        "JavaScript through the same bridge (into a fresh table), timed with `performance.now()`.",
        "**worker alone**: the same rows built in the worker (untimed), then inserted under one "
        "`performance.now()` timer: through `Database.runMany` (the engine), or binding with the C API "
        "directly.",
    ]


BULK_INSERT = BulkInsert()
