"""Long statements and big results, on every backend: ``db.interrupt()``,
``statement_timeout`` and ``db.iterate()``.

Each case is ``async def case_<name>(connect)``, run on CPython in process
(tests/test_long_native.py) and in Chromium's Pyodide against the DB worker
(tests/test_long_browser.py), like api_cases.py.

A statement is stopped the way each backend allows: in the browser the
statement runs in the worker, so another task of the page calls
``db.interrupt()``; on CPython it runs inside the coroutine (the event loop
waits for it), so another thread does, as with the stdlib's sqlite3.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import edgesql
from edgesql import OperationalError, ProgrammingError

from .api_cases import EDGE_VALUES, same
from .helpers import raises

Connect = Any

SQLITE_INTERRUPT = 9
#: Counts to two billion: minutes of work on any backend, so it only ends when it is stopped.
LONG_READ = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000000) SELECT count(*) FROM c"
LONG_WRITE = (
    "INSERT INTO big (x) SELECT x FROM "
    "(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000000) SELECT x FROM c)"
)
#: A stopped statement must have stopped well before it would have ended by itself.
STOPPED_WITHIN_S = 5.0


def interrupt_soon(db: Any, delay: float) -> None:
    """Call ``db.interrupt()`` after ``delay`` seconds, while the caller awaits a long statement."""
    if sys.platform == "emscripten":
        asyncio.get_running_loop().call_later(delay, db.interrupt)
    else:
        import threading

        threading.Timer(delay, db.interrupt).start()


async def _setup(db: Any) -> None:
    await db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    await db.execute("CREATE TABLE big (x INTEGER)")
    await db.execute("INSERT INTO t VALUES (1, 'committed')")


async def case_interrupt_stops_a_running_read(connect: Connect) -> None:
    async with connect() as db:
        await _setup(db)
        interrupt_soon(db, 0.1)
        start = time.monotonic()
        with raises(
            OperationalError,
            code=SQLITE_INTERRUPT,
            name="SQLITE_INTERRUPT",
            match=r"db\.interrupt\(\) stopped",
        ):
            await db.execute(LONG_READ)
        assert time.monotonic() - start < STOPPED_WITHIN_S
        # Nothing else was touched, and the connection goes on.
        assert (await db.execute("SELECT v FROM t")).rows == [("committed",)]
        await db.execute("INSERT INTO t VALUES (2, 'after')")
        assert (await db.execute("SELECT count(*) FROM t")).scalar() == 2


async def case_interrupt_a_read_keeps_the_transaction(connect: Connect) -> None:
    async with connect() as db:
        await _setup(db)
        async with db.transaction():
            await db.execute("INSERT INTO t VALUES (2, 'in the transaction')")
            interrupt_soon(db, 0.1)
            with raises(OperationalError, code=SQLITE_INTERRUPT, match="nothing else was undone"):
                await db.execute(LONG_READ)
            assert db.in_transaction
            await db.execute("INSERT INTO t VALUES (3, 'after the interrupt')")
        assert (await db.execute("SELECT id FROM t ORDER BY id")).rows == [(1,), (2,), (3,)]


async def case_interrupt_a_write_in_a_transaction_says_it_was_rolled_back(connect: Connect) -> None:
    async with connect() as db:
        await _setup(db)
        try:
            async with db.transaction():
                await db.execute("INSERT INTO t VALUES (2, 'in the transaction')")
                interrupt_soon(db, 0.1)
                await db.execute(LONG_WRITE)
        except OperationalError as e:
            # SQLite ends the transaction when it interrupts a write in it; the error says so.
            assert e.sqlite_errorcode == SQLITE_INTERRUPT, e
            assert "rolled back this connection's open transaction" in str(e), e
        else:
            raise AssertionError("the long write was not interrupted")
        assert not db.in_transaction
        assert (await db.execute("SELECT id FROM t")).rows == [(1,)]
        assert (await db.execute("SELECT count(*) FROM big")).scalar() == 0
        await db.execute("INSERT INTO t VALUES (2, 'again')")
        assert (await db.execute("SELECT count(*) FROM t")).scalar() == 2


async def case_interrupt_an_autocommit_write_undoes_only_it(connect: Connect) -> None:
    async with connect() as db, edgesql.connect(db.info.path) as other:
        await _setup(db)
        await db.execute("INSERT INTO big VALUES (-1)")
        interrupt_soon(db, 0.1)
        with raises(OperationalError, code=SQLITE_INTERRUPT, match="nothing else was undone"):
            await db.execute(LONG_WRITE)
        assert (await db.execute("SELECT x FROM big")).rows == [(-1,)]
        # Another connection to the same database never noticed.
        await other.execute("CREATE TABLE IF NOT EXISTS o (v)")
        await other.execute("INSERT INTO o VALUES ('other')")
        assert (await db.execute("SELECT v FROM o")).rows == [("other",)]


async def case_interrupt_when_nothing_runs_does_nothing(connect: Connect) -> None:
    async with connect() as db:
        await _setup(db)
        db.interrupt()
        db.interrupt()
        assert (await db.execute("SELECT v FROM t")).rows == [("committed",)]
        await db.execute("INSERT INTO t VALUES (2, 'x')")
        await db.close()
        db.interrupt()  # closed: still nothing


async def case_statement_timeout_stops_a_long_statement(connect: Connect) -> None:
    async with connect(statement_timeout=0.25) as db, edgesql.connect(db.info.path) as unlimited:
        await _setup(db)
        start = time.monotonic()
        with raises(OperationalError, code=SQLITE_INTERRUPT, match=r"statement_timeout \(0\.25 s\)"):
            await db.execute(LONG_READ)
        took = time.monotonic() - start
        assert 0.2 < took < STOPPED_WITHIN_S, took
        with raises(OperationalError, code=SQLITE_INTERRUPT, match="nothing else was undone"):
            await db.execute(LONG_WRITE)
        assert (await db.execute("SELECT count(*) FROM big")).scalar() == 0
        # Short calls are not affected, nor is a connection without a limit.
        for i in range(50):
            await db.execute("INSERT INTO t VALUES (?, 'x')", (i + 10,))
        assert (await unlimited.execute("SELECT count(*) FROM t")).scalar() == 51


async def case_statement_timeout_applies_to_executemany_and_batch(connect: Connect) -> None:
    async with connect(statement_timeout=0.2) as db:
        await _setup(db)
        with raises(OperationalError, code=SQLITE_INTERRUPT, match=r"row 0 of executemany: interrupted"):
            await db.executemany(LONG_WRITE.replace("x < 2000000000", "x < 2000000000 + ?"), [(1,), (2,)])
        with raises(OperationalError, code=SQLITE_INTERRUPT, match=r"statement 1 of the batch failed"):
            await db.batch(["INSERT INTO t VALUES (5, 'batch')", LONG_READ])
        # All or nothing: the batch's first statement is undone with it.
        assert (await db.execute("SELECT id FROM t")).rows == [(1,)]


async def case_statement_timeout_refuses_bad_values(connect: Connect) -> None:
    for bad in (0, -1, "1", True, float("nan"), 10**9):
        with raises(ProgrammingError, match="statement_timeout must be a number of seconds"):
            await connect(statement_timeout=bad)


async def case_iterate_keeps_every_type_exactly(connect: Connect) -> None:
    async with connect() as db:
        await db.execute("CREATE TABLE v (i INTEGER PRIMARY KEY, x)")
        await db.executemany("INSERT INTO v VALUES (?, ?)", [(i, x) for i, x in enumerate(EDGE_VALUES)])
        expected = (await db.execute("SELECT i, x FROM v ORDER BY i")).rows
        got = [row async for row in db.iterate("SELECT i, x FROM v ORDER BY i", page_size=3)]
        assert len(got) == len(EDGE_VALUES)
        for row, want, value in zip(got, expected, EDGE_VALUES, strict=True):
            assert same(row[1], value) and same(row["x"], want["x"]), (row[0], value)
            assert row.keys() == ("i", "x")


async def case_iterate_pages_through_a_big_result(connect: Connect) -> None:
    async with connect() as db:
        await db.execute("CREATE TABLE n (i INTEGER PRIMARY KEY, s TEXT)")
        await db.executemany("INSERT INTO n VALUES (?, ?)", [(i, f"row {i}") for i in range(2500)])
        cur = db.iterate("SELECT i, s FROM n WHERE i >= ? ORDER BY i", (100,), page_size=1000)
        first = await cur.fetchmany(10)
        assert [r["i"] for r in first] == list(range(100, 110))
        assert cur.columns == ("i", "s")
        rest = [r async for r in cur]
        assert [r[0] for r in rest] == list(range(110, 2500))
        assert cur.closed
        assert await cur.fetchmany(5) == []  # exhausted, as PEP 249's fetchmany says
        # Exactly a page, and nothing at all.
        cur = db.iterate("SELECT i FROM n WHERE i < 1000", page_size=500)
        assert len(await cur.fetchall()) == 1000
        assert [r async for r in db.iterate("SELECT i FROM n WHERE i < 0")] == []


async def case_iterate_closed_early_lets_go_of_the_statement(connect: Connect) -> None:
    async with connect() as db:
        await db.execute("CREATE TABLE n (i INTEGER PRIMARY KEY)")
        await db.executemany("INSERT INTO n VALUES (?)", [(i,) for i in range(3000)])
        async with db.iterate("SELECT i FROM n ORDER BY i", page_size=100) as cur:
            assert len(await cur.fetchmany(150)) == 150
        with raises(ProgrammingError, match="this cursor is closed"):
            await cur.fetchmany(1)
        # A statement still reading the table would make SQLite refuse to drop it.
        await db.execute("DROP TABLE n")
        async for _row in db.iterate("SELECT 1 UNION ALL SELECT 2", page_size=1):
            break  # an `async for` left early: close() is up to the cursor's owner (or its GC)


async def case_iterate_a_write_runs_it_at_once(connect: Connect) -> None:
    async with connect() as db:
        await db.execute("CREATE TABLE w (id INTEGER PRIMARY KEY, v TEXT)")
        cur = db.iterate("INSERT INTO w (v) VALUES ('a'), ('b'), ('c') RETURNING id, v", page_size=2)
        rows = [tuple(r) async for r in cur]
        assert rows == [(1, "a"), (2, "b"), (3, "c")]
        assert cur.rows_affected == 3 and cur.columns == ("id", "v")
        assert (await db.execute("SELECT count(*) FROM w")).scalar() == 3


async def case_iterate_errors_are_clear(connect: Connect) -> None:
    async with connect() as db:
        with raises(OperationalError, match="no such table"):
            async for _ in db.iterate("SELECT * FROM missing"):
                pass
        with raises(ProgrammingError, match="page_size must be a positive int"):
            db.iterate("SELECT 1", page_size=0)
        with raises(ProgrammingError, match="at least 1"):
            await db.iterate("SELECT 1").fetchmany(0)
        cur = db.iterate("SELECT 1")
    with raises(ProgrammingError, match="closed database"):
        await cur.fetchmany(1)


async def case_iterate_sees_its_own_transaction(connect: Connect) -> None:
    async with connect() as db:
        await db.execute("CREATE TABLE n (i INTEGER PRIMARY KEY)")
        async with db.transaction():
            await db.executemany("INSERT INTO n VALUES (?)", [(i,) for i in range(30)])
            assert [r[0] async for r in db.iterate("SELECT i FROM n ORDER BY i", page_size=7)] == list(
                range(30)
            )
        assert (await db.execute("SELECT count(*) FROM n")).scalar() == 30


async def case_statement_timeout_applies_to_each_page(connect: Connect) -> None:
    async with connect(statement_timeout=0.2) as db:
        # Every row is far from the next: each page would take minutes to fill.
        sparse = LONG_READ.replace("SELECT count(*) FROM c", "SELECT x FROM c WHERE x % 500000000 = 1")
        cur = db.iterate(sparse, page_size=10)
        with raises(OperationalError, code=SQLITE_INTERRUPT, match="statement_timeout"):
            await cur.fetchmany(10)
        assert cur.closed
        assert (await db.execute("SELECT 1")).scalar() == 1


CASES = {name[len("case_") :]: fn for name, fn in sorted(globals().items()) if name.startswith("case_")}
