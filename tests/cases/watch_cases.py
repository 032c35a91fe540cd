"""Live-query cases, run on CPython and in the page's Pyodide alike."""

from __future__ import annotations

import asyncio
from typing import Any

Connect = Any


async def next_result(watch: Any, timeout: float = 5.0) -> Any:
    return await asyncio.wait_for(watch.__anext__(), timeout)


async def case_watch_yields_now_and_after_each_change(connect: Connect) -> None:
    async with connect() as db:
        await db.execute("CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER)")
        await db.execute("CREATE TABLE other (id TEXT PRIMARY KEY)")
        w = db.watch("SELECT count(*), coalesce(sum(n), 0) FROM t")
        assert (await next_result(w)).rows == [(0, 0)]
        assert w.tables == {"t"}
        await db.execute("INSERT INTO t VALUES ('a', 1)")
        assert (await next_result(w)).rows == [(1, 1)]
        # A burst of writes while nobody reads is coalesced into one result.
        for i in range(10):
            await db.execute("INSERT INTO t VALUES (?, ?)", (f"b{i}", i))
        assert (await next_result(w)).rows == [(11, 46)]
        # A write to another table does not re-run it.
        runs = w.reruns
        await db.execute("INSERT INTO other VALUES ('x')")
        await asyncio.sleep(0.05)
        assert w.reruns == runs
        # A rolled-back transaction changed nothing: no new result.
        try:
            async with db.transaction():
                await db.execute("INSERT INTO t VALUES ('gone', 100)")
                raise LookupError
        except LookupError:
            pass
        await db.execute("UPDATE t SET n = n WHERE id = 'a'")  # same values: the result is not repeated
        await db.execute("DELETE FROM t WHERE id = 'a'")
        assert (await next_result(w)).rows == [(10, 45)]
        await w.close()


async def case_watch_join_and_callback(connect: Connect) -> None:
    async with connect() as db:
        await db.executescript(
            "CREATE TABLE p (id TEXT PRIMARY KEY, name TEXT);"
            "CREATE TABLE k (id TEXT PRIMARY KEY, p TEXT, done INTEGER);"
            "CREATE VIEW open_counts AS SELECT p.name, count(k.id) AS n FROM p LEFT JOIN k ON k.p = p.id AND k.done = 0 GROUP BY p.id;"
        )
        seen: list[Any] = []
        got = asyncio.Event()

        def on_result(rs: Any) -> None:
            seen.append([tuple(r) for r in rs.rows])
            got.set()

        w = db.watch("SELECT name, n FROM open_counts ORDER BY name", callback=on_result)
        await asyncio.wait_for(got.wait(), 5)
        assert seen[-1] == []
        assert {"p", "k"} <= w.tables  # read through the view
        got.clear()
        await db.batch(["INSERT INTO p VALUES ('p1', 'Home')", "INSERT INTO k VALUES ('k1', 'p1', 0)"])
        await asyncio.wait_for(got.wait(), 5)
        assert seen[-1] == [("Home", 1)]
        got.clear()
        await db.execute("UPDATE k SET done = 1")
        await asyncio.wait_for(got.wait(), 5)
        assert seen[-1] == [("Home", 0)]
        await w.close()
        await db.execute("INSERT INTO p VALUES ('p2', 'Work')")
        await asyncio.sleep(0.05)
        assert seen[-1] == [("Home", 0)]  # closed: no more calls


CASES = {name[len("case_") :]: fn for name, fn in sorted(globals().items()) if name.startswith("case_")}
