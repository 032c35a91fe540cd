"""The API suite, run against every backend: CPython in process, and SQLite-Wasm
on OPFS in real Chromium (the same functions, executed in the page's Pyodide).

Each case is ``async def case_<name>(connect)``; ``connect(**options)``
returns a connector for a fresh, empty database.
"""

from __future__ import annotations

import math
from typing import Any

import edgesql
from edgesql import DataError, IntegrityError, OperationalError, ProgrammingError

from .helpers import raises

Connect = Any

# Edge values every backend must store and return exactly (issue 2's table).
EDGE_VALUES: list[Any] = [
    None,
    0,
    -(2**63),
    2**63 - 1,
    2**53 + 1,
    -(2**53) - 1,
    -0.0,
    1.0,
    0.1 + 0.2,
    1e308,
    5e-324,
    -1.7976931348623157e308,
    float("inf"),
    float("-inf"),
    "",
    "ünï©ødé 🚀",
    "a\x00b",
    b"",
    b"\x00\xff" * 1000,
    bytes(range(256)) * 4096,  # 1 MB BLOB
]


# What syncs: a change is stored as one JSON text of at most 1.9 MB (D1's 2 MB
# value limit) and BLOBs travel as hex, so the largest BLOB that syncs is about
# 0.95 MB; the 1 MiB BLOB above is replaced by one that fits.
SYNC_EDGE_VALUES: list[Any] = [v for v in EDGE_VALUES if not (isinstance(v, bytes) and len(v) > 900_000)] + [
    bytes(range(256)) * 3500,  # 896,000 bytes
    "é" * 900_000,  # 1.8 MB of UTF-8 TEXT
]


def same(a: Any, b: Any) -> bool:
    """Equal in value and in type (1 != 1.0 here, and -0.0 != 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return math.copysign(1.0, a) == math.copysign(1.0, b) and (
            a == b or (math.isnan(a) and math.isnan(b))
        )
    return bool(a == b)


async def case_result_set_shape(connect: Connect) -> None:
    async with connect() as db:
        await db.execute("CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER, x REAL)")
        await db.execute("INSERT INTO t VALUES ('a', 1, 1.5), ('b', 2, NULL)")
        rs = await db.execute("SELECT id, n, x FROM t ORDER BY id")
        assert rs.columns == ("id", "n", "x")
        assert len(rs.rows) == 2 and len(rs) == 2
        row = rs.rows[0]
        assert row == ("a", 1, 1.5)
        assert row[0] == "a" and row["n"] == 1 and row[-1] == 1.5
        assert tuple(row) == ("a", 1, 1.5)
        assert list(row.keys()) == ["id", "n", "x"]
        assert row.asdict() == {"id": "a", "n": 1, "x": 1.5}
        a, n, x = rs.rows[1]
        assert (a, n, x) == ("b", 2, None)
        with raises(KeyError, match="no column named 'nope'"):
            row["nope"]
        assert rs.first() == ("a", 1, 1.5)
        assert (await db.execute("SELECT count(*) FROM t")).scalar() == 2
        empty = await db.execute("SELECT * FROM t WHERE 0")
        assert empty.rows == [] and empty.columns == ("id", "n", "x") and empty.first() is None


async def case_rows_affected_and_rowid(connect: Connect) -> None:
    async with connect() as db:
        rs = await db.execute("CREATE TABLE r (k INTEGER PRIMARY KEY, v TEXT)")
        assert rs.rows_affected == 0 and rs.last_insert_rowid is None
        rs = await db.execute("INSERT INTO r (v) VALUES ('x'), ('y'), ('z')")
        assert rs.rows_affected == 3
        assert rs.last_insert_rowid == 3
        rs = await db.execute("UPDATE r SET v = 'w' WHERE k >= 2")
        assert rs.rows_affected == 2
        rs = await db.execute("DELETE FROM r WHERE k = 1")
        assert rs.rows_affected == 1
        rs = await db.execute("SELECT * FROM r")
        assert rs.rows_affected == 0 and rs.last_insert_rowid is None
        rs = await db.execute("UPDATE r SET v = 'q' WHERE k = 99")
        assert rs.rows_affected == 0


async def case_named_parameters(connect: Connect) -> None:
    async with connect() as db:
        await db.execute("CREATE TABLE p (id TEXT PRIMARY KEY, v)")
        await db.execute("INSERT INTO p VALUES (:id, :v)", {"id": "a", "v": 10})
        await db.execute("INSERT INTO p VALUES ($id, @v)", {"id": "b", "v": 20})
        rs = await db.execute("SELECT v FROM p WHERE id = :id", {"id": "b"})
        assert rs.rows == [(20,)]
        with raises(ProgrammingError, match=":v"):
            await db.execute("INSERT INTO p VALUES (:id, :v)", {"id": "c"})


async def case_executemany(connect: Connect) -> None:
    async with connect() as db:
        await db.execute("CREATE TABLE m (id TEXT PRIMARY KEY, n INTEGER)")
        rs = await db.executemany("INSERT INTO m VALUES (?, ?)", [(f"k{i}", i) for i in range(500)])
        assert rs.rows_affected == 500
        assert (await db.execute("SELECT count(*), sum(n) FROM m")).rows == [(500, sum(range(500)))]
        rs = await db.executemany("UPDATE m SET n = n + 1 WHERE id = ?", (("k1",), ("k2",), ("nope",)))
        assert rs.rows_affected == 2
        # All or nothing: the duplicate in row 2 undoes rows 0 and 1 too.
        with raises(IntegrityError, match="row 2"):
            await db.executemany("INSERT INTO m VALUES (?, ?)", [("x1", 1), ("x2", 2), ("k5", 3)])
        assert (await db.execute("SELECT count(*) FROM m WHERE id LIKE 'x%'")).scalar() == 0
        assert (await db.executemany("INSERT INTO m VALUES (?, ?)", [])).rows_affected == 0


async def case_batch_atomic(connect: Connect) -> None:
    async with connect() as db:
        await db.execute("CREATE TABLE b (id TEXT PRIMARY KEY, n INTEGER NOT NULL)")
        results = await db.batch(
            [
                ("INSERT INTO b VALUES (?, ?)", ("a", 1)),
                "INSERT INTO b VALUES ('b', 2)",
                ("SELECT id, n FROM b ORDER BY id", ()),
            ]
        )
        assert [r.rows_affected for r in results] == [1, 1, 0]
        assert results[2].rows == [("a", 1), ("b", 2)]
        with raises(IntegrityError, name="SQLITE_CONSTRAINT_NOTNULL", match="statement 1"):
            await db.batch(
                [
                    ("INSERT INTO b VALUES (?, ?)", ("c", 3)),
                    ("INSERT INTO b VALUES (?, ?)", ("d", None)),
                ]
            )
        assert (await db.execute("SELECT count(*) FROM b")).scalar() == 2
        assert not db.in_transaction
        assert await db.batch([]) == []
        with raises(ProgrammingError, match="batch item 0"):
            await db.batch([42])


async def case_transaction_commit_and_rollback(connect: Connect) -> None:
    async with connect() as db:
        await db.execute("CREATE TABLE t (id TEXT PRIMARY KEY)")
        async with db.transaction() as tx:
            assert db.in_transaction
            await tx.execute("INSERT INTO t VALUES ('kept')")
        assert not db.in_transaction
        try:
            async with db.transaction():
                await db.execute("INSERT INTO t VALUES ('undone')")
                raise LookupError("boom")
        except LookupError as e:
            assert str(e) == "boom"  # the block's own exception comes out unchanged
        else:
            raise AssertionError("the exception was swallowed")
        assert not db.in_transaction
        rows = (await db.execute("SELECT id FROM t")).rows
        assert rows == [("kept",)]
        async with db.transaction() as tx:
            await db.execute("INSERT INTO t VALUES ('explicit')")
            await tx.rollback()
            assert not tx.active
        assert (await db.execute("SELECT count(*) FROM t")).scalar() == 1


async def case_transaction_nesting(connect: Connect) -> None:
    async with connect() as db:
        await db.execute("CREATE TABLE t (id TEXT PRIMARY KEY)")
        async with db.transaction():
            await db.execute("INSERT INTO t VALUES ('outer')")
            try:
                async with db.transaction():
                    await db.execute("INSERT INTO t VALUES ('inner')")
                    raise ValueError
            except ValueError:
                pass
            async with db.transaction():
                await db.execute("INSERT INTO t VALUES ('inner2')")
            # A batch inside a transaction is a savepoint: its failure undoes only itself.
            with raises(IntegrityError):
                await db.batch(["INSERT INTO t VALUES ('b1')", "INSERT INTO t VALUES ('outer')"])
            assert db.in_transaction
        ids = [r[0] for r in (await db.execute("SELECT id FROM t ORDER BY id")).rows]
        assert ids == ["inner2", "outer"]


async def case_failed_statement_keeps_transaction(connect: Connect) -> None:
    async with connect() as db:
        await db.execute("CREATE TABLE t (id TEXT PRIMARY KEY)")
        async with db.transaction():
            await db.execute("INSERT INTO t VALUES ('a')")
            with raises(IntegrityError, code=1555):
                await db.execute("INSERT INTO t VALUES ('a')")
            await db.execute("INSERT INTO t VALUES ('b')")
        assert (await db.execute("SELECT count(*) FROM t")).scalar() == 2


async def case_commit_after_sqlite_ended_the_transaction(connect: Connect) -> None:
    async with connect() as db:
        await db.execute("CREATE TABLE t (id TEXT PRIMARY KEY)")
        with raises(OperationalError, code=4, match="already been rolled back"):
            async with db.transaction():
                await db.execute("INSERT INTO t VALUES ('a')")
                await db.execute("ROLLBACK")  # as SQLite itself does after some errors
        assert not db.in_transaction
        assert (await db.execute("SELECT count(*) FROM t")).scalar() == 0


async def case_error_classes_and_codes(connect: Connect) -> None:
    async with connect() as db:
        await db.execute(
            "CREATE TABLE e (id TEXT PRIMARY KEY, u TEXT UNIQUE, n INTEGER NOT NULL, c INTEGER CHECK (c > 0))"
        )
        await db.execute("INSERT INTO e VALUES ('a', 'u', 1, 1)")
        with raises(OperationalError, code=1, name="SQLITE_ERROR", match="syntax error"):
            await db.execute("SELEC 1")
        with raises(OperationalError, code=1, match="no such table: missing"):
            await db.execute("SELECT * FROM missing")
        with raises(IntegrityError, code=1555, name="SQLITE_CONSTRAINT_PRIMARYKEY"):
            await db.execute("INSERT INTO e VALUES ('a', 'v', 1, 1)")
        with raises(IntegrityError, code=2067, name="SQLITE_CONSTRAINT_UNIQUE"):
            await db.execute("INSERT INTO e VALUES ('b', 'u', 1, 1)")
        with raises(IntegrityError, code=1299, name="SQLITE_CONSTRAINT_NOTNULL"):
            await db.execute("INSERT INTO e VALUES ('c', 'w', NULL, 1)")
        with raises(IntegrityError, code=275, name="SQLITE_CONSTRAINT_CHECK"):
            await db.execute("INSERT INTO e VALUES ('d', 'x', 1, -1)")
        with raises(ProgrammingError, match="uses 2, and there are 1"):
            await db.execute("SELECT ?, ?", (1,))
        with raises(ProgrammingError, match="uses 1, and there are 3"):
            await db.execute("SELECT ?", (1, 2, 3))
        with raises(ProgrammingError, match="one statement at a time"):
            await db.execute("SELECT 1; SELECT 2")
        with raises(ProgrammingError, match="sql must be a str"):
            await db.execute(b"SELECT 1")  # type: ignore[arg-type]
        assert isinstance(ProgrammingError("x"), edgesql.DatabaseError)
        assert issubclass(IntegrityError, edgesql.Error)
        # Nothing above changed anything.
        assert (await db.execute("SELECT count(*) FROM e")).scalar() == 1


async def case_parameter_types_refused(connect: Connect) -> None:
    import datetime
    import decimal

    async with connect() as db:
        with raises(ProgrammingError, match=r"parameter 2 has type date"):
            await db.execute("SELECT ?, ?", (1, datetime.date(2026, 1, 1)))
        with raises(ProgrammingError, match=r"parameter :when has type Decimal"):
            await db.execute("SELECT :when", {"when": decimal.Decimal("1.5")})
        with raises(ProgrammingError, match="parameter 1 has type list"):
            await db.execute("SELECT ?", ([1, 2],))
        with raises(DataError, match="outside SQLite's 64-bit INTEGER range"):
            await db.execute("SELECT ?", (2**63,))
        with raises(DataError, match="parameter 1 is -9223372036854775809"):
            await db.execute("SELECT ?", (-(2**63) - 1,))
        with raises(ProgrammingError, match="lone surrogate"):
            await db.execute("SELECT ?", ("bad \ud800",))
        with raises(ProgrammingError, match="row 1 of executemany: parameter 1 has type object"):
            await db.executemany("SELECT ?", [(1,), (object(),)])
        with raises(ProgrammingError, match="single str"):
            await db.execute("SELECT ?", "abc")  # type: ignore[arg-type]


async def case_parameter_types_accepted(connect: Connect) -> None:
    async with connect() as db:
        rs = await db.execute(
            "SELECT ?, typeof(?), ?, typeof(?), ?, ?",
            (True, True, 1.0, 1.0, bytearray(b"ab"), memoryview(b"cd")),
        )
        assert rs.rows[0] == (1, "integer", 1.0, "real", b"ab", b"cd")
        assert same(rs.rows[0][2], 1.0)
        rs = await db.execute("SELECT ?, typeof(?)", (float("nan"), float("nan")))
        assert rs.rows[0] == (None, "null")  # SQLite stores NaN as NULL


async def case_type_round_trip_edge_values(connect: Connect) -> None:
    async with connect() as db:
        await db.execute("CREATE TABLE v (i INTEGER PRIMARY KEY, x)")
        await db.executemany("INSERT INTO v VALUES (?, ?)", list(enumerate(EDGE_VALUES)))
        rows = (await db.execute("SELECT i, x FROM v ORDER BY i")).rows
        assert len(rows) == len(EDGE_VALUES)
        for (i, got), want in zip(rows, EDGE_VALUES, strict=True):
            assert same(got, want), f"value {i}: stored {want!r:.60}, got back {got!r:.60}"
        for want in EDGE_VALUES:
            got = (await db.execute("SELECT ?", (want,))).scalar()
            assert same(got, want), f"SELECT ? of {want!r:.60} gave {got!r:.60}"
            got = (await db.execute("SELECT :x", {"x": want})).scalar()
            assert same(got, want), f"SELECT :x of {want!r:.60} gave {got!r:.60}"
        batched = await db.batch([("SELECT ?", (want,)) for want in EDGE_VALUES])
        for rs, want in zip(batched, EDGE_VALUES, strict=True):
            assert same(rs.scalar(), want), f"batch SELECT ? of {want!r:.60} gave {rs.scalar()!r:.60}"
        types = [r[0] for r in (await db.execute("SELECT typeof(x) FROM v ORDER BY i")).rows]
        assert types[:7] == ["null"] + ["integer"] * 5 + ["real"]


async def case_large_results(connect: Connect) -> None:
    async with connect() as db:
        await db.execute("CREATE TABLE big (id INTEGER PRIMARY KEY, s TEXT)")
        await db.executemany("INSERT INTO big (s) VALUES (?)", [("x" * 200,) for _ in range(20_000)])
        rs = await db.execute("SELECT id, s FROM big")
        assert len(rs.rows) == 20_000 and rs.rows[-1] == (20_000, "x" * 200)
        blob = bytes(range(256)) * (3 * 4096)  # 3 MB, larger than any single message buffer
        got = (await db.execute("SELECT ?", (blob,))).scalar()
        assert got == blob


async def case_script(connect: Connect) -> None:
    async with connect() as db:
        await db.executescript(
            """
            CREATE TABLE s1 (id TEXT PRIMARY KEY);
            CREATE TABLE s2 (id TEXT PRIMARY KEY, note TEXT DEFAULT 'a;b');
            CREATE TRIGGER s1_ins AFTER INSERT ON s1 BEGIN INSERT INTO s2 (id) VALUES (new.id); END;
            INSERT INTO s1 VALUES ('x');
            """
        )
        assert (await db.execute("SELECT id, note FROM s2")).rows == [("x", "a;b")]
        with raises(OperationalError):
            await db.executescript("INSERT INTO s1 VALUES ('y'); INSERT INTO nope VALUES (1);")
        assert (await db.execute("SELECT count(*) FROM s1")).scalar() == 1


async def case_close_and_use_after_close(connect: Connect) -> None:
    db = await connect()
    await db.execute("CREATE TABLE c (id TEXT PRIMARY KEY)")
    with raises(ProgrammingError, match="closed inside the transaction"):
        async with db.transaction():
            await db.execute("INSERT INTO c VALUES ('x')")
            await db.close()  # closing with an open transaction rolls it back
    assert db.closed
    await db.close()  # idempotent
    with raises(ProgrammingError, code=21, name="SQLITE_MISUSE", match="closed database"):
        await db.execute("SELECT 1")
    with raises(ProgrammingError, match="closed"):
        db.transaction()


async def case_use_after_close_everywhere(connect: Connect) -> None:
    """Every entry point of a closed connection refuses alike, and says what to do."""
    db = await connect()
    await db.close()
    calls = {
        "execute": lambda: db.execute("SELECT 1"),
        "executemany": lambda: db.executemany("SELECT ?", [(1,)]),
        "batch": lambda: db.batch(["SELECT 1"]),
        "executescript": lambda: db.executescript("SELECT 1"),
        "sync": lambda: db.sync(),
        "sync_status": lambda: db.sync_status(),
    }
    for name, call in calls.items():
        with raises(ProgrammingError, code=21, name="SQLITE_MISUSE", match="closed database.*connect again"):
            await call()
        assert name  # (which call failed shows in the traceback's locals)
    for make in (lambda: db.transaction(), lambda: db.watch("SELECT 1")):
        with raises(ProgrammingError, code=21, match="connect again"):
            make()


async def case_bad_sql_and_parameters_change_nothing(connect: Connect) -> None:
    """Wrong SQL and wrong parameters: the right class, SQLite's code where SQLite decided,
    a message naming the problem; and the database is as it was."""
    async with connect() as db:
        await db.execute("CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER NOT NULL)")
        await db.execute("INSERT INTO t VALUES ('a', 1)")
        with raises(ProgrammingError, match="row 1 of executemany: Incorrect number of bindings.*uses 2"):
            await db.executemany("INSERT INTO t VALUES (?, ?)", [("b", 2), ("c",)])
        with raises(ProgrammingError, match="row 1 of executemany: .*binding parameter :n"):
            await db.executemany("INSERT INTO t VALUES (:id, :n)", [{"id": "d", "n": 4}, {"id": "e"}])
        with raises(
            ProgrammingError, match="statement 1 of the batch failed, nothing was applied: .*bindings"
        ):
            await db.batch(
                [("INSERT INTO t VALUES (?, ?)", ("f", 6)), ("INSERT INTO t VALUES (?, ?)", ("g",))]
            )
        with raises(ProgrammingError, match="dict"):
            await db.execute("INSERT INTO t VALUES (?, ?)", {"id": "h", "n": 8})
        with raises(ProgrammingError, match="parameter 2 has type dict"):
            await db.execute("INSERT INTO t VALUES (?, ?)", ("i", {"n": 9}))
        with raises(ProgrammingError, code=21, match="no statement"):
            await db.execute("  -- only a comment\n")
        with raises(ProgrammingError, code=21, match="no statement"):
            await db.execute(" ; ")
        with raises(OperationalError, code=1, name="SQLITE_ERROR", match="table t has no column named nope"):
            await db.execute("INSERT INTO t (nope) VALUES (1)")
        with raises(OperationalError, code=1, match="no such column: nope"):
            await db.execute("UPDATE t SET n = nope")
        with raises(OperationalError, code=1, match="cannot commit - no transaction is active"):
            await db.execute("COMMIT")
        async with db.transaction():
            with raises(OperationalError, code=1, match="cannot start a transaction within a transaction"):
                await db.execute("BEGIN")
            await db.execute("UPDATE t SET n = 2")
        with raises(IntegrityError, code=1299, match="NOT NULL constraint failed: t.n"):
            await db.execute("UPDATE t SET n = NULL")
        assert not db.in_transaction
        assert (await db.execute("SELECT id, n FROM t")).rows == [("a", 2)]


async def case_transaction_left_open_blocks_other_connections(connect: Connect) -> None:
    """A transaction left open: another connection's write waits out the busy timeout (5 s),
    then fails with SQLITE_BUSY saying to commit or roll back, and changes nothing."""
    async with connect() as a:
        await a.execute("CREATE TABLE t (id TEXT PRIMARY KEY)")
        b = await edgesql.connect(a.info.path)
        try:
            await a.execute("BEGIN IMMEDIATE")
            await a.execute("INSERT INTO t VALUES ('held')")
            with raises(OperationalError, code=5, name="SQLITE_BUSY", match="commit or roll it back"):
                await b.execute("INSERT INTO t VALUES ('blocked')")
            assert not b.in_transaction
            await a.execute("COMMIT")
            await b.execute("INSERT INTO t VALUES ('after')")
            assert [r[0] for r in (await a.execute("SELECT id FROM t ORDER BY id")).rows] == ["after", "held"]
        finally:
            await b.close()


async def case_context_manager_closes(connect: Connect) -> None:
    async with connect() as db:
        await db.execute("SELECT 1")
    assert db.closed


CASES = {name[len("case_") :]: fn for name, fn in sorted(globals().items()) if name.startswith("case_")}
