"""The timed operations run on a plain Python ``sqlite3`` connection, wherever it lives.

One piece of code for two contenders, so they cannot drift apart: native
CPython ``sqlite3`` on disk, in the benchmark process (bench/native.py),
and Pyodide's built-in ``sqlite3`` in memory, inside the benchmark page
(bench/browser.py copies this file into the page's Pyodide as the module
``bench_sqlite_ops``; bench/inpage.py calls it). The statements, keys and
parameters come in a :class:`Spec` built from bench/shapes.py on the host.

Standard library only, and no relative imports: the same file must import
as ``bench.sqlite_ops`` on CPython and as a top-level module in Pyodide.
Each call is timed with ``time.perf_counter_ns()`` (tens of nanoseconds on
Linux; in Pyodide it reads the page's ``performance.now()``, 5 µs steps on a
cross-origin isolated page).
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any, TypedDict

__all__ = ["Spec", "bench_row", "fill", "measure"]

_now = time.perf_counter_ns
BULK_TABLE = "bench_bulk"


class Spec(TypedDict):
    """What :func:`measure` runs (every list is JSON-able: it is sent into the page)."""

    #: Create-and-fill statements for the point and range tables (bench/shapes.py).
    tables: list[str]
    point_sql: str
    point_params: list[list[Any]]
    warm: int
    range_sql: str
    range_params: list[list[Any]]
    range_warm: int
    range_rows: int
    insert_sql: str
    #: Drop and create the writes table (before each write run).
    writes_statements: list[str]
    write_iterations: int
    burst_writes: int
    bulk_rows: int
    #: Run the single writes under synchronous=FULL too (meaningless in memory).
    write_full: bool


def bench_row(i: int) -> tuple[int, str, float]:
    """The i-th bench row (bench/inpage.py and bench/worker-ops.js build the same)."""
    return (i, f"name {i:06d}", i * 0.25)


def fill(conn: sqlite3.Connection, spec: Spec) -> None:
    """Create and fill the point and range tables (untimed)."""
    for sql in spec["tables"]:
        conn.execute(sql)


def measure(conn: sqlite3.Connection, spec: Spec) -> dict[str, Any]:
    """Every operation once, as the page runs it: per-call µs, and totals.

    ``conn`` is in autocommit (``isolation_level=None``), as edgesql's own
    CPython backend opens one; the caller sets the journal mode.
    """
    out: dict[str, Any] = {
        "point": _reads(conn, spec["point_sql"], spec["point_params"], spec["warm"], rows=1),
        "range": _reads(
            conn, spec["range_sql"], spec["range_params"], spec["range_warm"], rows=spec["range_rows"]
        ),
    }
    variants = [("write_normal", "NORMAL")] + ([("write_full", "FULL")] if spec["write_full"] else [])
    for op, setting in variants:
        conn.execute(f"PRAGMA synchronous = {setting}")
        out[op] = _writes(conn, spec, spec["write_iterations"])
    conn.execute("PRAGMA synchronous = NORMAL")
    out["burst"] = _writes(conn, spec, spec["burst_writes"])
    out["bulk"] = _bulk(conn, spec["bulk_rows"])
    out["sqlite_version"] = sqlite3.sqlite_version
    out["journal_mode"] = conn.execute("PRAGMA journal_mode").fetchone()[0]
    return out


def _reads(
    conn: sqlite3.Connection, sql: str, params: list[list[Any]], warm: int, rows: int
) -> dict[str, Any]:
    for i in range(warm):
        conn.execute(sql, params[i % len(params)]).fetchall()
    us = [0.0] * len(params)
    start = _now()
    for i, p in enumerate(params):
        t0 = _now()
        got = conn.execute(sql, p).fetchall()
        us[i] = (_now() - t0) / 1000
        if len(got) != rows:
            raise RuntimeError(f"sqlite3: {sql!r} returned {len(got)} rows, expected {rows}")
    return {"us": us, "total_us": (_now() - start) / 1000}


def _writes(conn: sqlite3.Connection, spec: Spec, n: int) -> dict[str, Any]:
    for sql in spec["writes_statements"]:
        conn.execute(sql)
    params = [bench_row(i) for i in range(1, n + 1)]
    sql = spec["insert_sql"]
    us = [0.0] * n
    start = _now()
    for i, p in enumerate(params):
        t0 = _now()
        conn.execute(sql, p)
        us[i] = (_now() - t0) / 1000
    total_us = (_now() - start) / 1000
    count = conn.execute("SELECT count(*) FROM bench_writes").fetchone()[0]
    if count != n:
        raise RuntimeError(f"sqlite3: {count} rows after {n} writes")
    return {"us": us, "total_us": total_us}


def _bulk(conn: sqlite3.Connection, n: int) -> dict[str, Any]:
    conn.execute(f"DROP TABLE IF EXISTS {BULK_TABLE}")
    conn.execute(
        f"CREATE TABLE {BULK_TABLE} (id INTEGER PRIMARY KEY, name TEXT NOT NULL, value REAL NOT NULL)"
    )
    sql = f"INSERT INTO {BULK_TABLE} (id, name, value) VALUES (?, ?, ?)"
    rows = [bench_row(i) for i in range(1, n + 1)]
    t0 = _now()
    conn.execute("BEGIN")
    conn.executemany(sql, rows)
    conn.execute("COMMIT")
    seconds = (_now() - t0) / 1e9
    count = conn.execute(f"SELECT count(*) FROM {BULK_TABLE}").fetchone()[0]
    conn.execute(f"DROP TABLE {BULK_TABLE}")
    if count != n:
        raise RuntimeError(f"sqlite3: {count} rows after executemany of {n}")
    return {"seconds": seconds}
