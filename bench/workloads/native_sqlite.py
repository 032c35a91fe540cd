"""Contender: native CPython ``sqlite3`` on disk, same tables, keys and statements (issue 7).

Not in the browser at all: the stdlib's SQLite in the benchmark process,
on an ext4 file (bench/native.py). It shows what the same work costs with
no Wasm, no worker and no bridge, and is measured on the fast-path page
loads (while the page sits idle), so it shares the run's conditions. Its
ratios to the floor are in the side-by-side section.
"""

from __future__ import annotations

from typing import Any

from ..browser import FAST_PATH, BenchPage
from ..config import Config
from ..contenders import latency_rows, rate_row
from ..model import Section, Table
from ..native import NativeDb
from ..shapes import point_sql, range_sql
from ..stats import median, ratio

__all__ = ["NATIVE_SQLITE", "NativeSqlite"]

OPS = {
    "point": "point read by primary key",
    "range": "range read: 100 rows via an index, joined",
    "write_normal": "single write, autocommit INSERT, WAL + synchronous=NORMAL",
    "write_full": "single write, autocommit INSERT, WAL + synchronous=FULL",
    "burst": "write burst: single-row INSERTs back to back, NORMAL (per write)",
}


class NativeSqlite:
    """Workload: the same operations on CPython's own sqlite3, in this process."""

    key = "native_sqlite"
    title = "Contender: native CPython sqlite3 on disk"
    paths: tuple[str, ...] = (FAST_PATH,)

    def __init__(self) -> None:
        self._db: NativeDb | None = None

    def prepare(self, page: BenchPage, cfg: Config) -> None:
        if self._db is not None:
            self._db.close()
        self._db = NativeDb()
        self._db.prepare(cfg)

    def measure(self, page: BenchPage, cfg: Config, load: int) -> dict[str, Any]:
        if self._db is None:
            raise RuntimeError("native_sqlite: prepare did not run")
        return self._db.measure(cfg, load)

    def summarize(self, loads: dict[str, list[dict[str, Any]]], cfg: Config) -> Section:
        if self._db is not None:
            self._db.close()
            self._db = None
        data = loads.get(FAST_PATH, [])
        if not data:
            return Section(self.key, self.title, _method(cfg, "?"), [], notes=["not run"])
        figures, samples, rows = latency_rows(data, OPS, "native", "native sqlite3")
        burst_s = median([d["burst"]["total_us"] for d in data]) / 1e6
        bulk_s = median([d["bulk"]["seconds"] for d in data])
        figures["native.burst.writes_per_s"] = ratio(cfg.burst_writes, burst_s)
        figures["native.bulk.rows_per_s"] = ratio(cfg.bulk_rows, bulk_s)
        rows += [
            rate_row(f"write burst: {cfg.burst_writes:,} writes, whole", burst_s, cfg.burst_writes, "writes"),
            rate_row(f"bulk: executemany of {cfg.bulk_rows:,} rows, one transaction", bulk_s, cfg.bulk_rows),
        ]
        table = Table(
            columns=["operation", "p50", "p99", "mean / rate"],
            rows=rows,
            caption=f"CPython {_py()} `sqlite3`, SQLite {data[0]['sqlite_version']}, on ext4. "
            f"Medians over {len(data)} load(s).",
        )
        return Section(
            self.key,
            self.title,
            _method(cfg, data[0]["sqlite_version"]),
            [table],
            [],
            figures,
            samples=samples,
        )


def _py() -> str:
    import platform

    return platform.python_version()


def _method(cfg: Config, version: str) -> list[str]:
    return [
        f"CPython {_py()}'s stdlib `sqlite3` (SQLite {version}) in the benchmark process, on a file in "
        "/var/tmp (ext4, the same disk as the browser profile), opened as edgesql's own CPython backend "
        "opens one: autocommit, `journal_mode = WAL`, `synchronous = NORMAL` (FULL for the FULL run). "
        "A fresh connection on each fast-path page load, while the page is idle.",
        "The same tables, rows, keys and statements as the page (bench/shapes.py): "
        f"`{point_sql(cfg)}` for the same {cfg.iterations:,} keys, `{range_sql(cfg)}` for the same "
        f"{cfg.range_iterations:,} groups, {cfg.write_iterations:,} single INSERTs per synchronous "
        f"setting, a burst of {cfg.burst_writes:,}, and `executemany` of {cfg.bulk_rows:,} rows in one "
        "transaction. Each call timed with `time.perf_counter_ns()` (rows fetched).",
        "Not in a browser: no Wasm, no worker, no bridge, the OS page cache and a real `fsync`. "
        "WAL + NORMAL here makes the same promise as in the page (survives a crash of the process, not "
        "a power cut); FULL fsyncs every commit.",
    ]


NATIVE_SQLITE = NativeSqlite()
