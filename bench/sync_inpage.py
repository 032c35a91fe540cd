"""The timed parts of the sync benchmark, as Python that runs in the page and on CPython.

bench/sync_browser.py copies this file into the page's Pyodide (as
``sync_inpage``) and imports it on CPython as ``bench.sync_inpage``: the same
code measures both backends, so the capture-cost ratios compare like with
like. It only uses the public edgesql API (a ``db`` from ``edgesql.connect``)
and the standard library, and returns plain JSON-able values; the statistics
are computed by the caller.

Clocks: ``time.perf_counter`` reads ``performance.now()`` in the page, which
Chromium clamps to 5 µs on a cross-origin isolated page (serve.py sends
COOP/COEP) and to 100 µs otherwise; :func:`clock_step_us` reports the step.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

__all__ = [
    "capture",
    "capture_runs",
    "clock_step_us",
    "fill_points",
    "first_pull",
    "point_queries",
    "pull_with_queries",
    "row",
]

POINT_SQL = "SELECT v FROM local_points WHERE id = ?"
INSERT_SQL = "INSERT INTO {table} (id, title, n, done) VALUES (?, ?, ?, ?)"


def row(prefix: str, i: int) -> tuple[str, str, int, int]:
    """One row of the benchmark's tables (the same shape for items and the capture tables)."""
    return (f"{prefix}-{i:07d}", f"title {i}", i, i % 2)


def clock_step_us() -> float:
    """The smallest step ``time.perf_counter`` takes here, in microseconds."""
    step = float("inf")
    last = time.perf_counter()
    for _ in range(2000):
        now = time.perf_counter()
        if now != last:
            step = min(step, now - last)
            last = now
    return round(step * 1e6, 3)


async def fill_points(db: Any, rows: int) -> int:
    """Fill local_points (device-only, never captured) with ``rows`` rows; returns its row count."""
    await db.execute("DELETE FROM local_points")
    await db.executemany(
        "INSERT INTO local_points (id, v) VALUES (?, ?)", [(f"p{i:07d}", i) for i in range(rows)]
    )
    return int((await db.execute("SELECT count(*) FROM local_points")).scalar())


def _keys(rows: int, count: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    return [f"p{rnd.randrange(rows):07d}" for _ in range(count)]


async def _one(db: Any, key: str) -> float:
    start = time.perf_counter()
    await db.execute(POINT_SQL, (key,))
    return time.perf_counter() - start


async def point_queries(db: Any, rows: int, count: int, seed: int = 1) -> list[float]:
    """``count`` back-to-back point queries on local_points, each timed (seconds).

    The loop yields to the event loop after each query, exactly as
    :func:`pull_with_queries` does, so the two measure the same thing.
    """
    latencies = []
    for key in _keys(rows, count, seed):
        latencies.append(await _one(db, key))
        await asyncio.sleep(0)
    return latencies


async def pull_with_queries(
    db: Any, rows: int, pace_s: float = 0.0, status_every: int = 200, seed: int = 2
) -> dict[str, Any]:
    """Run ``db.sync()`` (the first pull) and time point queries until it ends.

    Back to back (``pace_s=0``: only a yield to the event loop between queries)
    or with ``pace_s`` seconds of sleep between them. Returns the pull's
    seconds, each query's latency, and the sync progress seen every
    ``status_every`` queries (``[seconds, applied, total]``).
    """
    keys = _keys(rows, 1 << 16, seed)
    latencies: list[float] = []
    progress: list[list[Any]] = []
    start = time.perf_counter()
    task = asyncio.ensure_future(db.sync())
    i = 0
    while not task.done():
        latencies.append(await _one(db, keys[i % len(keys)]))
        i += 1
        if i % status_every == 0:
            st = await db.sync_status()
            if st.progress is not None:
                progress.append(
                    [round(time.perf_counter() - start, 4), st.progress.applied, st.progress.total]
                )
        await asyncio.sleep(pace_s)  # also lets the sync task's awaited promise resolve
    result = await task
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "latencies": [round(x, 7) for x in latencies],
        "progress": progress,
        "pushed": result.pushed,
        "pulled": result.pulled,
    }


async def first_pull(name: str, points: int, queries: int, mode: str, pace_s: float = 0.0) -> dict[str, Any]:
    """A fresh database ``name`` connects to the primary at ``/sync`` and pulls everything.

    ``mode``: ``alone`` (only ``await db.sync()``) or ``queries`` (local_points
    is filled, ``queries`` baseline point queries run before and after, and
    the pull runs beside :func:`pull_with_queries`). ``window`` is the pull's
    wall-clock span (epoch seconds), to match it with the network log.
    """
    import edgesql  # the page's (or CPython's) edgesql

    out: dict[str, Any] = {"mode": mode, "pace_s": pace_s}
    wall = time.time()
    t0 = time.perf_counter()
    db = await edgesql.connect(name, sync_url="/sync", sync_interval=0)
    out["connect_s"] = time.perf_counter() - t0
    try:
        if mode == "queries":
            out["points"] = await fill_points(db, points)
            out["before"] = await point_queries(db, points, queries, seed=1)
            wall = time.time()
            pull = await pull_with_queries(db, points, pace_s)
            out["window"] = [wall, time.time()]
            out["after"] = await point_queries(db, points, queries, seed=3)
        elif mode == "alone":
            t0 = time.perf_counter()
            result = await db.sync()
            pull = {"seconds": time.perf_counter() - t0, "pulled": result.pulled, "pushed": result.pushed}
            out["window"] = [wall, time.time()]
        else:
            raise ValueError(f"mode must be 'alone' or 'queries', not {mode!r}")
        out["pull"] = pull
        st = await db.sync_status()
        out["pending"] = st.pending
        out["last_error"] = st.last_error
        out["items"] = (await db.execute("SELECT count(*) FROM items")).scalar()
        out["storage"] = db.info.storage
        out["fast_path"] = db.info.extra.get("fast_path")
        out["sqlite"] = db.info.sqlite_version
    finally:
        await db.close()
    return out


#: The capture tables, in the order of the first run; later runs rotate it.
CAPTURE_TABLES = ("capture_synced", "local_capture", "local_capture_floor")
FLOOR_TRIGGER = """
CREATE TRIGGER IF NOT EXISTS local_capture_floor_ins AFTER INSERT ON local_capture_floor BEGIN
  INSERT INTO local_capture_log (tbl, pk, cells)
  VALUES ('local_capture_floor', NEW.id, json_array(NEW.title, NEW.n, NEW.done));
END
"""


async def capture_runs(db: Any, rows: int, repeat: int, warm: int) -> dict[str, Any]:
    """:func:`capture` on every capture table, both ways, ``repeat`` times, after a warm-up.

    Returns ``{how: {table: {"seconds": [...], "latencies": [...]}}}``.
    """
    await db.execute(FLOOR_TRIGGER)
    for how in ("execute", "executemany"):  # warm-up, not timed: statement caches, file growth
        for table in CAPTURE_TABLES:
            await capture(db, table, min(rows, warm), how, f"warm-{how}")
    out: dict[str, Any] = {}
    for rep in range(repeat):
        k = rep % len(CAPTURE_TABLES)
        order = CAPTURE_TABLES[k:] + CAPTURE_TABLES[:k]  # each table goes first in turn
        for how in ("execute", "executemany"):
            for table in order:
                r = await capture(db, table, rows, how, f"{how}-{rep}")
                entry = out.setdefault(how, {}).setdefault(table, {"seconds": [], "latencies": []})
                entry["seconds"].append(r["seconds"])
                entry["latencies"].extend(round(x, 7) for x in r["latencies"])
    return out


async def capture(db: Any, table: str, rows: int, how: str, prefix: str) -> dict[str, Any]:
    """Insert ``rows`` new rows into ``table``; returns total seconds and, for
    ``how="execute"``, each statement's latency.

    ``execute``: one ``await db.execute`` per row inside one transaction (the
    commit is timed too); ``executemany``: one call, which is one transaction.
    """
    sql = INSERT_SQL.format(table=table)
    data = [row(prefix, i) for i in range(rows)]
    latencies: list[float] = []
    if how == "execute":
        start = time.perf_counter()
        async with db.transaction():
            for params in data:
                t = time.perf_counter()
                await db.execute(sql, params)
                latencies.append(time.perf_counter() - t)
        seconds = time.perf_counter() - start
    elif how == "executemany":
        start = time.perf_counter()
        await db.executemany(sql, data)
        seconds = time.perf_counter() - start
    else:
        raise ValueError(f"how must be 'execute' or 'executemany', not {how!r}")
    return {"seconds": seconds, "latencies": latencies}
