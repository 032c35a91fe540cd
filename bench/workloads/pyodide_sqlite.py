"""Contender: Pyodide's built-in ``sqlite3``, in memory — not persistent (issue 7).

What a Pyodide user has without installing anything: the stdlib ``sqlite3``
module ships in Pyodide's ``python_stdlib.zip`` and SQLite is compiled into
``pyodide.asm.wasm`` (no ``loadPackage``). It has no OPFS VFS, so the only
honest way to use it is ``:memory:`` (a file in Emscripten's in-memory file
system is no more persistent): fast, but everything it holds is lost on
reload. It runs on the fast-path page's main thread, in the same Pyodide as
edgesql, with the same tables, keys and statements (bench/shapes.py) and the
same timing code as native CPython ``sqlite3`` (bench/sqlite_ops.py). Its
ratios to the floor are in the side-by-side section, labelled as not persistent.
"""

from __future__ import annotations

from typing import Any

from ..browser import FAST_PATH, BenchError, BenchPage
from ..config import Config
from ..contenders import latency_rows, rate_row
from ..model import Section, Table
from ..shapes import point_sql, range_sql, sqlite_spec
from ..stats import median, ratio

__all__ = ["LABEL", "PYODIDE_SQLITE", "PyodideSqlite"]

#: How the contender is named wherever it appears.
LABEL = "Pyodide's sqlite3, in memory — not persistent"

OPS = {
    "point": "point read by primary key",
    "range": "range read: 100 rows via an index, joined",
    "write_normal": "single write, autocommit INSERT (in memory: nothing to flush)",
    "burst": "write burst: single-row INSERTs back to back (per write)",
}


class PyodideSqlite:
    """Workload: the stdlib ``sqlite3`` of the page's own Pyodide on ``:memory:``."""

    key = "pyodide_sqlite"
    title = f"Contender: {LABEL}"
    paths: tuple[str, ...] = (FAST_PATH,)

    def prepare(self, page: BenchPage, cfg: Config) -> None:
        pass  # an in-memory database is filled on each page (it cannot outlive one)

    def measure(self, page: BenchPage, cfg: Config, load: int) -> dict[str, Any]:
        r: dict[str, Any] = page.call_sync("pyodide_sqlite", spec=sqlite_spec(cfg, load, write_full=False))
        if r["journal_mode"] != "memory":
            raise BenchError(f"Pyodide's sqlite3 database is not in memory: journal_mode={r['journal_mode']}")
        return r

    def summarize(self, loads: dict[str, list[dict[str, Any]]], cfg: Config) -> Section:
        data = loads.get(FAST_PATH, [])
        if not data:
            return Section(self.key, self.title, _method(cfg, "?"), [], notes=["not run"])
        figures, samples, rows = latency_rows(data, OPS, "pyodide", "Pyodide sqlite3 (memory)")
        burst_s = median([d["burst"]["total_us"] for d in data]) / 1e6
        bulk_s = median([d["bulk"]["seconds"] for d in data])
        fill_s = median([d["fill_s"] for d in data])
        figures["pyodide.burst.writes_per_s"] = ratio(cfg.burst_writes, burst_s)
        figures["pyodide.bulk.rows_per_s"] = ratio(cfg.bulk_rows, bulk_s)
        figures["pyodide.fill_s"] = fill_s
        rows += [
            rate_row(f"write burst: {cfg.burst_writes:,} writes, whole", burst_s, cfg.burst_writes, "writes"),
            rate_row(f"bulk: executemany of {cfg.bulk_rows:,} rows, one transaction", bulk_s, cfg.bulk_rows),
            [
                "untimed setup, for scale: create and fill the point and range tables",
                f"{fill_s * 1000:.0f} ms",
                "",
                "",
            ],
        ]
        version = data[0]["sqlite_version"]
        table = Table(
            columns=["operation", "p50", "p99", "mean / rate"],
            rows=rows,
            caption=f"Pyodide's stdlib `sqlite3`, SQLite {version}, `:memory:`, on the fast-path page's "
            f"main thread. Medians over {len(data)} page load(s).",
        )
        return Section(
            self.key,
            self.title,
            _method(cfg, version),
            [table],
            [],
            figures,
            notes=[
                "Not persistent: the database lives in the page's Wasm memory and is gone on reload, "
                "on a crash of the tab, or when the tab is closed. No durability is promised, so its "
                "'single write' row is no durable write."
            ],
            samples=samples,
        )


def _method(cfg: Config, version: str) -> list[str]:
    return [
        f"`sqlite3.connect(':memory:', isolation_level=None)` (autocommit) from the stdlib of the page's "
        f"own Pyodide (SQLite {version}, compiled into `pyodide.asm.wasm`; `import sqlite3` works without "
        "`loadPackage`), on the fast-path page's main thread, after edgesql's workloads on that page. "
        "A fresh database on each fast-path page load, filled untimed with the same point and range "
        "tables as the OPFS database.",
        f"The same statements, keys and timing code as native CPython `sqlite3` (bench/sqlite_ops.py): "
        f"`{point_sql(cfg)}` for the same {cfg.iterations:,} keys, `{range_sql(cfg)}` for the same "
        f"{cfg.range_iterations:,} groups, {cfg.write_iterations:,} single INSERTs, a burst of "
        f"{cfg.burst_writes:,}, and `executemany` of {cfg.bulk_rows:,} rows in one transaction. Each call "
        "timed with `time.perf_counter_ns()`, which reads the page's `performance.now()` (5 µs steps): "
        "p50s of a few µs are one or two of those steps, the means are finer.",
        "No synchronous=FULL row: in memory there is nothing to flush.",
    ]


PYODIDE_SQLITE = PyodideSqlite()
