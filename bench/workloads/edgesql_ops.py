"""Range read with a join, single durable writes, a write burst and live-query latency (issue 7).

On each page load, on both bridge paths, each operation runs three ways
with the same parameters: edgesql from Python (``await db.execute``), the
raw JavaScript round trip with the very request texts Python sends (same
bridge, same worker), and the worker alone (``bench.repeat``: SQLite-Wasm
running the statement, each run timed in the worker). The last two are the
floor. Writes run under ``synchronous = NORMAL`` (the worker's default) and
``FULL``; the worker keeps WAL with EXCLUSIVE locking on the opfs-sahpool
VFS. Last, ``db.watch`` update latency.
"""

from __future__ import annotations

from typing import Any

from ..browser import FAST_PATH, PATHS, BenchError, BenchPage
from ..config import Config
from ..model import Check, Section, Table, check, fmt_rate, fmt_ratio, fmt_us
from ..shapes import (
    GROUP_ROWS,
    INSERT_SQL,
    WRITES_TABLE,
    range_check,
    range_keys,
    range_sql,
    range_statements,
    range_warmup,
    write_params,
    writes_statements,
)
from ..stats import Latency, combine, median, ratio, summarize

__all__ = ["EDGESQL_OPS", "OPS", "VARIANTS", "EdgesqlOps"]

ROUND_TRIPS = "([texts, warm]) => edgesqlBench.roundTrips(texts, warm)"
WATCH_TABLE = "bench_watch"
#: Issue 7: a durable single-row write p50 ≤ 0.7 ms.
TARGET_WRITE_P50_US = 700.0

#: Operation key → label.
OPS = {
    "range": f"range read: {GROUP_ROWS} rows via an index, joined",
    "write_normal": "single write, autocommit INSERT, synchronous=NORMAL",
    "write_full": "single write, autocommit INSERT, synchronous=FULL",
    "burst": "write burst: single-row INSERTs back to back, synchronous=NORMAL",
}
#: Variant key → label.
VARIANTS = {
    "python": "edgesql from Python: `await db.execute(...)`",
    "js": "raw JS round trip: same request texts, same bridge and worker",
    "worker": "in worker: SQLite-Wasm alone (`Database.run`, per-run timer)",
}
DURABILITY = {
    "NORMAL": "WAL + synchronous=NORMAL: a committed write survives a crash of the tab or the browser "
    "(its pages are in the OPFS file when the await returns), not a power cut or an OS crash",
    "FULL": "WAL + synchronous=FULL: the OPFS file is flushed at every commit, so a committed write "
    "also survives a power cut or an OS crash",
}


class EdgesqlOps:
    """Workload: the operations of issue 7 beyond the point query, with their floor."""

    key = "edgesql_ops"
    title = "Range read, single writes, write burst, live query"
    paths: tuple[str, ...] = PATHS

    def prepare(self, page: BenchPage, cfg: Config) -> None:
        sql, want = range_check(cfg)
        page.call("ensure_tables", check_sql=sql, want=want, statements=range_statements(cfg))

    def measure(self, page: BenchPage, cfg: Config, load: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        params = range_keys(cfg, load, cfg.range_iterations)
        warm = range_warmup(cfg)
        out["range"] = self._three(page, range_sql(cfg), params, warm, rows=GROUP_ROWS)
        before = page.call("scalar", sql="PRAGMA synchronous")
        try:
            for op, setting in (("write_normal", "NORMAL"), ("write_full", "FULL")):
                page.call("set_pragma", pragma=f"synchronous = {setting}")
                out[op] = self._three(page, INSERT_SQL, write_params(cfg.write_iterations), 0, rows=0)
            page.call("set_pragma", pragma="synchronous = NORMAL")
            out["burst"] = self._three(page, INSERT_SQL, write_params(cfg.burst_writes), 0, rows=0)
        finally:
            page.call("set_pragma", pragma=f"synchronous = {before}")
        watch = page.call("watch_latency", table=WATCH_TABLE, n=cfg.watch_iterations)
        if watch["wrong"]:
            raise BenchError(f"the live query delivered {watch['wrong']} wrong results")
        out["watch"] = {"us": watch["us"], "write_us": watch["write_us"]}
        return out

    @staticmethod
    def _three(page: BenchPage, sql: str, params: list[list[Any]], warm: int, rows: int) -> dict[str, Any]:
        """Python, the raw JS round trip and the worker alone; a write starts on a fresh table."""
        writes = rows == 0
        out: dict[str, Any] = {}
        if writes:
            page.call("run_statements", statements=writes_statements())
        py = page.call("timed_runs", sql=sql, params=params, warm=warm)
        if not writes and py["rows"] != rows:
            raise BenchError(f"{sql!r} returned {py['rows']} rows, expected {rows}")
        out["python"] = {"us": py["us"], "waited": py["waited"], "total_us": py["total_us"]}
        if writes:
            _expect_count(page, len(params))
            page.call("run_statements", statements=writes_statements())
        texts = page.call_sync("texts_for", sql=sql, params=params)
        js = page.js(ROUND_TRIPS, [texts, warm])
        out["js"] = {"us": js["us"], "waited": js["waited"], "total_us": js["total_us"]}
        if writes:
            _expect_count(page, len(params))
            page.call("run_statements", statements=writes_statements())
        worker = page.call("worker_repeat", sql=sql, params=params)
        out["worker"] = {"us": worker["us"], "waited": [False] * len(params), "total_us": sum(worker["us"])}
        if writes:
            _expect_count(page, len(params))
        return out

    def summarize(self, loads: dict[str, list[dict[str, Any]]], cfg: Config) -> Section:
        tables: list[Table] = []
        checks: list[Check] = []
        figures: dict[str, float] = {}
        samples: dict[str, dict[str, list[float]]] = {}
        for path, data in loads.items():
            if not data:
                continue
            lat = {
                op: {v: combine([summarize(d[op][v]["us"]) for d in data]) for v in VARIANTS} for op in OPS
            }
            waited = {
                op: {v: median([_share(d[op][v]["waited"]) for d in data]) for v in VARIANTS} for op in OPS
            }
            burst_s = {v: median([d["burst"][v]["total_us"] for d in data]) / 1e6 for v in VARIANTS}
            watch = combine([summarize(d["watch"]["us"]) for d in data])
            watch_write = combine([summarize(d["watch"]["write_us"]) for d in data])
            for op in OPS:
                for v in VARIANTS:
                    x = lat[op][v]
                    figures |= {f"{path}.{op}.{v}.p50_us": x.p50, f"{path}.{op}.{v}.p99_us": x.p99}
                    figures[f"{path}.{op}.{v}.mean_us"] = x.mean
                    if path == FAST_PATH or v == "python":
                        label = f"{_short(v)}{'' if path == FAST_PATH else ' (postMessage)'}"
                        samples.setdefault(op, {})[label] = [u for d in data for u in d[op][v]["us"]]
            for v in VARIANTS:
                figures[f"{path}.burst.{v}.writes_per_s"] = ratio(cfg.burst_writes, burst_s[v])
            figures |= {f"{path}.watch.p50_us": watch.p50, f"{path}.watch.p99_us": watch.p99}
            figures[f"{path}.watch.write_p50_us"] = watch_write.p50
            label = f"edgesql watch{'' if path == FAST_PATH else ' (postMessage)'}"
            samples.setdefault("watch", {})[label] = [u for d in data for u in d["watch"]["us"]]
            tables += [
                _ops_table(path, lat, waited, len(data)),
                _burst_table(path, burst_s, lat["burst"], cfg),
                _watch_table(path, watch, watch_write, lat["range"]["python"], len(data), cfg),
            ]
            if path == FAST_PATH:
                checks.append(
                    check(
                        7,
                        "single durable write p50 (WAL, synchronous=NORMAL: survives a tab or browser crash)",
                        lat["write_normal"]["python"].p50,
                        TARGET_WRITE_P50_US,
                        at_most=True,
                        fmt=fmt_us,
                    )
                )
        return Section(self.key, self.title, _method(cfg), tables, checks, figures, samples=samples)


def _expect_count(page: BenchPage, n: int) -> None:
    got = page.call("scalar", sql=f"SELECT count(*) FROM {WRITES_TABLE}")
    if got != n:
        raise BenchError(f"{WRITES_TABLE} holds {got} rows after {n} writes")


def _share(flags: list[bool]) -> float:
    return sum(flags) / len(flags) if flags else 0.0


def _short(variant: str) -> str:
    return {"python": "edgesql Python", "js": "raw JS round trip", "worker": "SQLite-Wasm in worker"}[variant]


PATH_TITLES = {FAST_PATH: "fast path (SharedArrayBuffer)", "postmessage": "postMessage path"}


def _ops_table(
    path: str, lat: dict[str, dict[str, Latency]], waited: dict[str, dict[str, float]], loads: int
) -> Table:
    rows: list[list[str]] = []
    for op, op_label in OPS.items():
        py = lat[op]["python"]
        for v, v_label in VARIANTS.items():
            x = lat[op][v]
            rows.append(
                [
                    op_label if v == "python" else "",
                    v_label,
                    fmt_us(x.p50),
                    fmt_us(x.p99),
                    f"{100 * waited[op][v]:.0f}%",
                    fmt_ratio(ratio(py.p50, x.p50)),
                    fmt_ratio(ratio(py.p99, x.p99)),
                ]
            )
    return Table(
        columns=["operation", "variant", "p50", "p99", "waited", "Python p50 ÷", "Python p99 ÷"],
        rows=rows,
        caption=f"{PATH_TITLES.get(path, path)}: per call. Medians over {loads} page load(s).",
        text_columns=2,
    )


def _burst_table(path: str, seconds: dict[str, float], lat: dict[str, Latency], cfg: Config) -> Table:
    py_s = seconds["python"]
    rows = [
        [
            VARIANTS[v],
            f"{seconds[v] * 1000:.0f} ms",
            fmt_rate(ratio(cfg.burst_writes, seconds[v])).replace("rows", "writes"),
            fmt_us(lat[v].p99),
            fmt_ratio(ratio(py_s, seconds[v])),
        ]
        for v in VARIANTS
    ]
    return Table(
        columns=["variant", "whole burst", "writes/s", "p99 write", "Python time ÷"],
        rows=rows,
        caption=f"{PATH_TITLES.get(path, path)}: a burst of {cfg.burst_writes:,} single-row writes, "
        "each its own transaction, back to back.",
    )


def _watch_table(
    path: str, watch: Latency, write: Latency, range_py: Latency, loads: int, cfg: Config
) -> Table:
    rows = [
        ["the UPDATE's own `await db.execute(...)`", fmt_us(write.p50), fmt_us(write.p99)],
        ["then until `db.watch` hands out the new ResultSet", fmt_us(watch.p50), fmt_us(watch.p99)],
        [
            "for scale: a range read from Python (one query re-run)",
            fmt_us(range_py.p50),
            fmt_us(range_py.p99),
        ],
    ]
    return Table(
        columns=["live-query update", "p50", "p99"],
        rows=rows,
        caption=f"{PATH_TITLES.get(path, path)}: {cfg.watch_iterations:,} updates of a watched row per "
        f"page load. Medians over {loads} page load(s).",
    )


def _method(cfg: Config) -> list[str]:
    return [
        f"Tables as in bench/shapes.py, in `{cfg.db_name}`: `range_items_{cfg.table_rows}` "
        f"({cfg.table_rows:,} rows, index on `grp`, {GROUP_ROWS} rows per group spread over the table) "
        "joined to `range_cats` (100 rows); writes go to a fresh `bench_writes(id INTEGER PRIMARY KEY, "
        "name TEXT, value REAL)` before each variant (each variant writes rows 1..n).",
        f"**Range read**: `{range_sql(cfg)}` for {cfg.range_iterations:,} random groups (seeded), "
        f"after {range_warmup(cfg):,} untimed calls; 100 rows come back each time.",
        f"**Single write**: {cfg.write_iterations:,} autocommit `INSERT`s back to back, each timed; "
        "one run with `PRAGMA synchronous = NORMAL` and one with `FULL`, set on the page's connection "
        "for all three variants. What each promises: "
        + DURABILITY["NORMAL"]
        + "; "
        + DURABILITY["FULL"]
        + ".",
        f"**Write burst**: {cfg.burst_writes:,} of the same writes back to back (synchronous=NORMAL); "
        "the whole burst is timed, which includes the WAL checkpoints SQLite runs on its own.",
        "Variants: **Python** times `await db.execute(sql, params)` (and the rows) with "
        "`time.perf_counter_ns()`; **raw JS round trip** sends the request text Python's encoder "
        "produced for each call through `bridge.callSync` (waiting on the event loop only when the "
        "answer did not come back at once), timed with `performance.now()`; **in worker** runs the "
        "same statement with the same parameters through `Database.run` in the worker, one "
        "`performance.now()` timer per run (5 µs steps when isolated, 100 µs otherwise).",
        f"**Live query**: `db.watch('SELECT v FROM {WATCH_TABLE} WHERE id = 1')`, then "
        f"{cfg.watch_iterations:,} times `await db.execute('UPDATE {WATCH_TABLE} SET v = ? ...')` "
        "followed by waiting for the watch's next result (checked): the time from the write's "
        "await returning to the new ResultSet (the worker's change event, the re-run, the result).",
    ]


EDGESQL_OPS = EdgesqlOps()
