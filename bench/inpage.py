"""The Python half of the benchmark: runs inside Pyodide on the benchmark page.

bench/browser.py copies this file into the page's Pyodide as the module
``bench_inpage`` and calls its coroutines through ``pyodide.runPythonAsync``;
each returns plain JSON-able data (timings in microseconds or seconds) that
the workload modules on the host turn into figures. Timing is done here, in
the page, with ``time.perf_counter_ns`` (Pyodide reads ``performance.now()``,
so its resolution is the page's: 5 µs when cross-origin isolated, 100 µs
otherwise — ``clock_resolution_us`` measures it).

It reaches into edgesql's private modules on purpose, to time each layer of
a call separately (parameter checks, JSON encoding, the FFI call into the
bridge, decoding, building the result). This file is not importable on
CPython: it needs ``js`` and the browser backend.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import js  # type: ignore[import-not-found]
from pyodide.ffi import to_js  # type: ignore[import-not-found]

import edgesql
from edgesql._params import check_many
from edgesql._result import ResultSet
from edgesql._wire import dumps, loads

_db: Any = None

_now = time.perf_counter_ns


def bench_row(i: int) -> tuple[int, str, float]:
    """The i-th bench row; bench/worker-ops.js ``benchRow`` builds the same one."""
    return (i, f"name {i:06d}", i * 0.25)


def _keys() -> list[int]:
    """The random primary keys the host put on the page (the same for every layer)."""
    keys: list[int] = js.edgesqlBenchKeys.to_py()
    return keys


def _session() -> int:
    session: int = _db._backend._s
    return session


async def _worker(req: dict[str, Any]) -> dict[str, Any]:
    """Send a bench request to the worker through the backend's own call path."""
    result: dict[str, Any] = await _db._backend._call(req)
    return result


async def open_db(name: str) -> dict[str, Any]:
    """Open the bench database and say where it lives and which path the bridge takes."""
    global _db
    _db = await edgesql.connect(name)
    info = _db.info
    clock = await _worker({"op": "bench.clock"})
    import pyodide  # type: ignore[import-not-found]

    settings = {}
    for pragma in ("journal_mode", "locking_mode", "synchronous"):
        settings[pragma] = (await _db.execute(f"PRAGMA {pragma}")).rows[0][0]
    return {
        **settings,
        "session": _session(),
        "storage": info.storage,
        "persistent": info.persistent,
        "sqlite_version": info.sqlite_version,
        "fast_path": bool(info.extra.get("fast_path")),
        "owner": info.extra.get("owner"),
        "python": sys.version.split()[0],
        "pyodide": pyodide.__version__,
        "page_clock_us": clock_resolution_us(),
        "worker_clock_us": clock["resolution_us"],
        "worker_isolated": clock["isolated"],
    }


async def connect_only(name: str) -> dict[str, Any]:
    """Connect to ``name`` as an app would, and nothing more (a second tab: its requests may be
    routed to another tab's worker, where the ``bench.*`` requests of open_db are not meant to go)."""
    global _db
    _db = await edgesql.connect(name)
    info = _db.info
    return {
        "owner": info.extra.get("owner"),
        "fast_path": bool(info.extra.get("fast_path")),
        "storage": info.storage,
        "synchronous": (await _db.execute("PRAGMA synchronous")).rows[0][0],
    }


async def close_db() -> None:
    """Close the bench database, so the next page load can take its OPFS files."""
    global _db
    if _db is not None:
        await _db.close()
        _db = None


def clock_resolution_us() -> float:
    """The smallest step ``time.perf_counter_ns`` takes here, in microseconds."""
    best = None
    for _ in range(200):
        t0 = _now()
        t1 = t0
        while t1 == t0:
            t1 = _now()
        best = t1 - t0 if best is None else min(best, t1 - t0)
    return (best or 0) / 1000


async def ensure_points(table: str, rows: int) -> dict[str, Any]:
    """Make ``table`` hold exactly the bench rows 1..rows (kept across page loads)."""
    t0 = _now()
    exists = await _db.execute("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?", (table,))
    if exists.rows:
        rs = await _db.execute(f"SELECT count(*), max(id) FROM {table}")
        if tuple(rs.rows[0]) == (rows, rows):
            return {"created": False, "seconds": (_now() - t0) / 1e9}
        await _db.execute(f"DROP TABLE {table}")
    await _db.execute(
        f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name TEXT NOT NULL, value REAL NOT NULL)"
    )
    await _db.execute(
        f"WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < ?) "
        f"INSERT INTO {table} SELECT i, printf('name %06d', i), i * 0.25 FROM c",
        (rows,),
    )
    return {"created": True, "seconds": (_now() - t0) / 1e9}


@contextlib.asynccontextmanager
async def _pragma(pragma: str) -> AsyncIterator[None]:
    """Set ``PRAGMA <pragma>`` (e.g. ``locking_mode = EXCLUSIVE``) as an app could, then
    set it back to what it was; nothing when ``pragma`` is empty."""
    if not pragma:
        yield
        return
    name = pragma.split("=")[0].strip()
    before = (await _db.execute(f"PRAGMA {name}")).rows[0][0]
    await _db.execute(f"PRAGMA {pragma}")
    try:
        yield
    finally:
        await _db.execute(f"PRAGMA {name} = {before}")
        await _db.execute("SELECT 1 FROM sqlite_schema LIMIT 1")  # a locking mode changes here


async def point_query(sql: str, warm: int, pragma: str = "") -> dict[str, Any]:
    """``await db.execute(sql, (k,))`` and its row, for each key, back to back; per-call µs.

    ``pragma``: run under that setting (see ``_pragma``).
    """
    async with _pragma(pragma):
        return await _point_query(sql, warm)


async def _point_query(sql: str, warm: int) -> dict[str, Any]:
    db = _db
    keys = _keys()
    for i in range(warm):
        rs = await db.execute(sql, (keys[i % len(keys)],))
        rs.rows[0]
    us = [0.0] * len(keys)
    wrong = 0
    bridge = db._backend._bridge
    tickets = bridge.nextTicket  # a call not answered at once takes a ticket
    start = _now()
    waited = [False] * len(keys)
    for i, k in enumerate(keys):
        t0 = _now()
        rs = await db.execute(sql, (k,))
        row = rs.rows[0]
        us[i] = (_now() - t0) / 1000
        if row[0] != k:
            wrong += 1
        waited[i] = bridge.nextTicket != tickets
        tickets = bridge.nextTicket
    total_us = (_now() - start) / 1000
    return {"us": us, "waited": waited, "total_us": total_us, "wrong": wrong}


def request_texts(sql: str) -> list[str]:
    """The request text Python sends for each key (what the raw JS round trip replays)."""
    s = _session()
    return [dumps({"op": "execute", "s": s, "sql": sql, "params": [k]}) for k in _keys()]


async def worker_point(sql: str) -> dict[str, Any]:
    """In-worker cost of the point query: per-run samples and back-to-back loops."""
    s = _session()
    params = [[k] for k in _keys()]
    per_run = await _worker({"op": "bench.repeat", "s": s, "sql": sql, "params": params})
    loop = {"op": "bench.loop", "s": s, "sql": sql, "params": params}
    sqlite = await _worker({**loop, "level": "sqlite"})
    request = await _worker({**loop, "level": "request"})
    in_tx = await _worker({**loop, "level": "sqlite", "wrap": "tx"})
    exclusive = await _worker({**loop, "level": "sqlite", "wrap": "exclusive"})
    return {
        "us": per_run["us"],
        "sqlite_loop_us": sqlite["total_us"] / sqlite["n"],
        "request_loop_us": request["total_us"] / request["n"],
        "sqlite_tx_loop_us": in_tx["total_us"] / in_tx["n"],
        "sqlite_exclusive_loop_us": exclusive["total_us"] / exclusive["n"],
    }


async def worker_after_write(sql: str) -> dict[str, Any]:
    """The in-worker loop again, after one small write on this connection.

    In journal_mode=PERSIST SQLite keeps the journal file open once it has
    written; until then every autocommit statement opens the journal to
    check it is not hot, and the opfs-sahpool VFS flushes the file when it
    closes it. This shows the difference.
    """
    await _db.execute("CREATE TABLE IF NOT EXISTS bench_touch (x INTEGER)")
    await _db.execute("INSERT INTO bench_touch VALUES (1)")
    await _db.execute("DELETE FROM bench_touch")
    s = _session()
    params = [[k] for k in _keys()]
    r = await _worker({"op": "bench.loop", "s": s, "sql": sql, "params": params, "level": "sqlite"})
    return {"sqlite_loop_us": r["total_us"] / r["n"]}


#: The layers of a Python point query, each adding one step to the one before.
LAYERS = (
    "js",
    "py_call",
    "py_dumps",
    "py_loads",
    "py_result",
    "py_backend",
    "py_execute",
    "js_ping",
    "py_ping",
)


async def layers(sql: str, pragma: str = "", block: int = 50) -> dict[str, dict[str, list[Any]]]:
    """Per-call µs of a point query built up layer by layer, interleaved.

    ``js``: the raw round trip from JavaScript; ``py_call``: the same
    ``bridge.callSync`` made from Python; then adding, one at a time, the
    JSON encoding of the request, the decoding of the answer, the
    ``ResultSet`` and its row, the backend coroutine, and the public
    ``db.execute`` (the whole). The differences between neighbours are what
    each layer costs *in place*, caches and all — a layer timed alone in a
    tight loop looks cheaper than it is between two round trips. The
    variants take turns in blocks of ``block`` keys, so drift on the machine
    touches them alike. Each sample says whether the call was answered at
    once or had to wait for the answer on the event loop. ``pragma``: run
    under that setting (see ``_pragma``).
    """
    async with _pragma(pragma):
        return await _layers(sql, block)


async def _layers(sql: str, block: int) -> dict[str, dict[str, list[Any]]]:
    db = _db
    backend = db._backend
    call_sync, wait, bridge = backend._call_sync, backend._wait, backend._bridge
    s = _session()
    keys = _keys()
    texts = [dumps({"op": "execute", "s": s, "sql": sql, "params": [k]}) for k in keys]
    ping = '{"op":"bench.ping"}'
    round_trips = js.edgesqlBench.roundTrips

    async def call(text: str) -> str:
        out = call_sync(text)
        if not isinstance(out, str):
            out = await wait(out)
        return out

    async def py_call(k: int, text: str) -> None:
        await call(text)

    async def py_dumps(k: int, text: str) -> None:
        await call(dumps({"op": "execute", "s": s, "sql": sql, "params": [k]}))

    async def py_loads(k: int, text: str) -> None:
        loads(await call(dumps({"op": "execute", "s": s, "sql": sql, "params": [k]})))

    async def py_result(k: int, text: str) -> None:
        r = loads(await call(dumps({"op": "execute", "s": s, "sql": sql, "params": [k]})))
        ResultSet(r["cols"], r["rows"], r["n"], r["rowid"]).rows[0]

    async def py_backend(k: int, text: str) -> None:
        (await backend.execute(sql, [k])).rows[0]

    async def py_execute(k: int, text: str) -> None:
        (await db.execute(sql, (k,))).rows[0]

    async def py_ping(k: int, text: str) -> None:
        await call(ping)

    variants = {
        "py_call": py_call,
        "py_dumps": py_dumps,
        "py_loads": py_loads,
        "py_result": py_result,
        "py_backend": py_backend,
        "py_execute": py_execute,
        "py_ping": py_ping,
    }
    out: dict[str, dict[str, list[Any]]] = {name: {"us": [], "waited": []} for name in LAYERS}
    for start in range(0, len(keys), block):
        ks, ts = keys[start : start + block], texts[start : start + block]
        for name, texts_js in (("js", ts), ("js_ping", [ping] * len(ts))):
            r = (await round_trips(to_js(texts_js), 0)).to_py()
            out[name]["us"] += r["us"]
            out[name]["waited"] += r["waited"]
        for name, fn in variants.items():
            us, waited = out[name]["us"], out[name]["waited"]
            for k, text in zip(ks, ts, strict=True):
                ticket = bridge.nextTicket
                t0 = _now()
                await fn(k, text)
                us.append((_now() - t0) / 1000)
                waited.append(bridge.nextTicket != ticket)
    return out


async def _fresh_table(table: str) -> None:
    await _db.execute(f"DROP TABLE IF EXISTS {table}")
    await _db.execute(
        f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name TEXT NOT NULL, value REAL NOT NULL)"
    )


async def _count(table: str) -> int:
    rs = await _db.execute(f"SELECT count(*) FROM {table}")
    count: int = rs.rows[0][0]
    return count


async def executemany(table: str, rows: int) -> dict[str, Any]:
    """``await db.executemany(INSERT, rows)`` of the bench rows into a fresh table, timed.

    The call is traced: the backend's bridge hooks are wrapped (for this one
    call; a few timer reads on a call of seconds) to stamp when the request
    text reaches ``bridge.callSync``, when that returns, and when the answer
    arrives. Then the parts are timed apart: the parameter checks, the JSON
    encoding, handing the text to JavaScript, and the worker's parse of it.
    """
    await _fresh_table(table)
    sql = f"INSERT INTO {table} (id, name, value) VALUES (?, ?, ?)"
    data = [bench_row(i) for i in range(1, rows + 1)]
    backend = _db._backend
    marks: dict[str, int] = {}
    call_sync, wait = backend._call_sync, backend._wait

    def traced_call_sync(text: str) -> Any:
        marks["call"] = _now()
        out = call_sync(text)
        marks["called"] = marks["answered"] = _now()
        return out

    async def traced_wait(ticket: Any) -> Any:
        out = await wait(ticket)
        marks["answered"] = _now()
        return out

    backend._call_sync, backend._wait = traced_call_sync, traced_wait
    try:
        t0 = _now()
        await _db.executemany(sql, data)
        t1 = _now()
    finally:
        backend._call_sync, backend._wait = call_sync, wait
    count = await _count(table)
    await _db.execute(f"DROP TABLE {table}")

    t = _now()
    checked = check_many(data)
    check_s = (_now() - t) / 1e9
    req = {"op": "executemany", "s": _session(), "sql": sql, "rows": checked}
    t = _now()
    text = dumps(req)
    dumps_s = (_now() - t) / 1e9
    t = _now()
    js.edgesqlBench.length(text)
    ffi_s = (_now() - t) / 1e9
    parsed = await _worker({"op": "bench.parse", "text": text})
    return {
        "seconds": (t1 - t0) / 1e9,
        "rows": rows,
        "count": count,
        "before_call_s": (marks["call"] - t0) / 1e9,
        "call_s": (marks["called"] - marks["call"]) / 1e9,
        "wait_s": (marks["answered"] - marks["called"]) / 1e9,
        "after_s": (t1 - marks["answered"]) / 1e9,
        "check_s": check_s,
        "dumps_s": dumps_s,
        "ffi_s": ffi_s,
        "parse_s": parsed["ms"] / 1000,
        "plain_parse_s": parsed["plain_ms"] / 1000,
        "request_bytes": len(text.encode()),
    }


async def executemany_text(table: str, rows: int) -> int:
    """Make ``table`` fresh and leave on the page, as ``edgesqlBenchText``, the exact
    request text Python's executemany sends for the bench rows (for the raw JS run)."""
    await _fresh_table(table)
    sql = f"INSERT INTO {table} (id, name, value) VALUES (?, ?, ?)"
    data = check_many([bench_row(i) for i in range(1, rows + 1)])
    text = dumps({"op": "executemany", "s": _session(), "sql": sql, "rows": data})
    js.edgesqlBenchText = text
    return len(text)


async def count_and_drop(table: str) -> int:
    """Rows in ``table``; then drop it."""
    count = await _count(table)
    await _db.execute(f"DROP TABLE {table}")
    js.edgesqlBenchText = ""
    return count


async def worker_bulk(table: str, rows: int, mode: str) -> dict[str, Any]:
    """The worker alone inserts the same bench rows into a fresh table in one transaction."""
    await _fresh_table(table)
    r = await _worker({"op": "bench.bulk", "s": _session(), "table": table, "n": rows, "mode": mode})
    count = await _count(table)
    await _db.execute(f"DROP TABLE {table}")
    return {"seconds": r["ms"] / 1000, "rows": rows, "count": count}


# -- generic timed runs (range read, single writes, write burst; bench/workloads/edgesql_ops.py) --


async def ensure_tables(check_sql: str, want: list[Any], statements: list[str]) -> dict[str, Any]:
    """Run ``statements`` (create and fill tables) unless ``check_sql`` already answers ``want``."""
    t0 = _now()
    try:
        got = list((await _db.execute(check_sql)).rows[0])
    except Exception:  # the tables do not exist yet
        got = None
    if got == want:
        return {"created": False, "seconds": (_now() - t0) / 1e9}
    for sql in statements:
        await _db.execute(sql)
    return {"created": True, "seconds": (_now() - t0) / 1e9}


async def run_statements(statements: list[str]) -> None:
    """Run each statement once, untimed (setup between variants)."""
    for sql in statements:
        await _db.execute(sql)


async def timed_runs(sql: str, params: list[list[Any]], warm: int = 0, pragma: str = "") -> dict[str, Any]:
    """``await db.execute(sql, p)`` (and its rows) for each parameter set, back to back.

    The first ``warm`` sets are run untimed first (reads only: writes pass 0).
    Returns per-call µs, whether each call waited on the event loop, the
    rows of the last answer and the total time.
    """
    async with _pragma(pragma):
        db = _db
        for i in range(warm):
            _ = (await db.execute(sql, tuple(params[i % len(params)]))).rows
        bridge = db._backend._bridge
        us = [0.0] * len(params)
        waited = [False] * len(params)
        rows = 0
        tickets = bridge.nextTicket
        start = _now()
        for i, p in enumerate(params):
            t0 = _now()
            rs = await db.execute(sql, tuple(p))
            rows = len(rs.rows)
            us[i] = (_now() - t0) / 1000
            waited[i] = bridge.nextTicket != tickets
            tickets = bridge.nextTicket
        total_us = (_now() - start) / 1000
    return {"us": us, "waited": waited, "rows": rows, "total_us": total_us}


def texts_for(sql: str, params: list[list[Any]]) -> list[str]:
    """The request text Python's ``db.execute(sql, p)`` sends for each parameter set."""
    s = _session()
    return [dumps({"op": "execute", "s": s, "sql": sql, "params": list(p)}) for p in params]


async def worker_repeat(sql: str, params: list[list[Any]], pragma: str = "") -> dict[str, Any]:
    """The worker alone runs ``sql`` once per parameter set (``bench.repeat``): per-run µs."""
    async with _pragma(pragma):
        r = await _worker({"op": "bench.repeat", "s": _session(), "sql": sql, "params": params})
    return {"us": r["us"]}


async def scalar(sql: str) -> Any:
    """The first column of the first row of ``sql``."""
    return (await _db.execute(sql)).rows[0][0]


async def set_pragma(pragma: str) -> Any:
    """``PRAGMA <pragma>`` on the bench connection (e.g. ``synchronous = FULL``); returns the
    setting's value afterwards."""
    await _db.execute(f"PRAGMA {pragma}")
    return await scalar(f"PRAGMA {pragma.split('=')[0].strip()}")


async def watch_latency(table: str, n: int) -> dict[str, Any]:
    """Live-query update latency: ``db.watch(sql)``, then ``n`` single-row UPDATEs.

    For each update: ``write_us`` is the UPDATE's own ``await``; ``us`` is
    the time from that await returning to the watcher handing out the new
    ResultSet (the change event's trip from the worker, the re-run of the
    query, and the result); ``total_us`` is both. Every new result is checked.
    """
    db = _db
    await db.execute(f"DROP TABLE IF EXISTS {table}")
    await db.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)")
    await db.execute(f"INSERT INTO {table} VALUES (1, 0)")
    watch = db.watch(f"SELECT v FROM {table} WHERE id = 1")
    it = watch.__aiter__()
    try:
        first = await it.__anext__()
        if first.rows[0][0] != 0:
            raise RuntimeError("watch: wrong first result")
        write_us = [0.0] * n
        us = [0.0] * n
        wrong = 0
        for i in range(n):
            t0 = _now()
            await db.execute(f"UPDATE {table} SET v = ? WHERE id = 1", (i + 1,))
            t1 = _now()
            rs = await it.__anext__()
            t2 = _now()
            write_us[i] = (t1 - t0) / 1000
            us[i] = (t2 - t1) / 1000
            if rs.rows[0][0] != i + 1:
                wrong += 1
    finally:
        await watch.close()
    await db.execute(f"DROP TABLE {table}")
    return {"us": us, "write_us": write_us, "wrong": wrong}


def pyodide_sqlite(spec: dict[str, Any]) -> dict[str, Any]:
    """Pyodide's built-in ``sqlite3`` (stdlib, SQLite compiled into pyodide.asm.wasm) on a fresh
    in-memory database: fill the tables untimed, then bench/sqlite_ops.py's timed operations,
    the same code that times native CPython ``sqlite3``. Nothing here touches OPFS or edgesql."""
    import sqlite3

    import bench_sqlite_ops  # type: ignore[import-not-found]

    t0 = _now()
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        bench_sqlite_ops.fill(conn, spec)
        fill_s = (_now() - t0) / 1e9
        out: dict[str, Any] = bench_sqlite_ops.measure(conn, spec)
    finally:
        conn.close()
    out["fill_s"] = fill_s
    return out
