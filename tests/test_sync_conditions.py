"""Convergence under real-world conditions (issue 13), on both primaries over real HTTP.

Each test is one way replicas used to diverge or get stuck: a sync while the app's
transaction is open, DEFAULT columns, collations and -0.0, a clock that gets fixed,
migrations (drop a column, add a CHECK, convert a type) with old replicas holding
offline writes, and a database restored from a backup. CPython replicas talk to
serve.py with the embedded primary and with the Cloudflare Worker on workerd's D1.
"""

from __future__ import annotations

import asyncio
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.aio import run
from tests.conftest import start_server
from tests.sync.harness import table_state
from tests.sync.primaries import TOKEN, PrimaryServer, worker_url

import edgesql

PRIMARIES = ["sqlite", "d1-local"]

V1 = """
CREATE TABLE items (
  id TEXT PRIMARY KEY, title TEXT, qty INTEGER DEFAULT 7, note TEXT, u,
  nc TEXT COLLATE NOCASE, rt TEXT COLLATE RTRIM, amount REAL, n INTEGER
);
"""
DROP_NOTE = "ALTER TABLE items DROP COLUMN note;"
CHECK_N = """
CREATE TABLE items_new (
  id TEXT PRIMARY KEY, title TEXT, qty INTEGER DEFAULT 7, note TEXT, u,
  nc TEXT COLLATE NOCASE, rt TEXT COLLATE RTRIM, amount REAL, n INTEGER CHECK (n >= 0)
);
INSERT INTO items_new SELECT * FROM items;
DROP TABLE items;
ALTER TABLE items_new RENAME TO items;
"""
AMOUNT_AS_TEXT = """
CREATE TABLE items_new (
  id TEXT PRIMARY KEY, title TEXT, qty INTEGER DEFAULT 7, note TEXT, u,
  nc TEXT COLLATE NOCASE, rt TEXT COLLATE RTRIM, amount TEXT, n INTEGER
);
INSERT INTO items_new SELECT * FROM items;
DROP TABLE items;
ALTER TABLE items_new RENAME TO items;
"""


class Primary:
    """serve.py running one kind of primary on a schema folder that tests can add migrations to."""

    def __init__(self, kind: str, base: Path) -> None:
        self.kind = kind
        self.base = base
        self.schema = base / "schema"
        self.schema.mkdir()
        (self.schema / "0001_init.sql").write_text(V1)
        self.server: PrimaryServer | None = None
        self.port = 0
        self.start()

    def start(self) -> None:
        # The same port each time: replicas keep their sync URL across a restart.
        server = start_server(
            self.base / "data",
            *("--primary", self.kind, "--schema", str(self.schema), "--auth-token", TOKEN),
            port=self.port,
            timeout=90,
        )
        self.port = int(server.url.rsplit(":", 1)[1])
        self.server = PrimaryServer(self.kind, server, worker_url(server))

    def migrate(self, sql: str) -> None:
        """Stop, add a migration, start again (the primary migrates itself on start)."""
        assert self.server is not None
        self.server.server.stop()
        n = len(list(self.schema.iterdir())) + 1
        (self.schema / f"{n:04d}_step{n}.sql").write_text(sql)
        self.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.server.stop()

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.sync_url

    def rows(self) -> Any:
        assert self.server is not None
        return table_state(self.server.query("SELECT * FROM items ORDER BY id"))

    async def replica(self, path: str = ":memory:", **options: Any) -> edgesql.Connection:
        return await edgesql.connect(path, sync_url=self.url, auth_token=TOKEN, sync_interval=None, **options)


@pytest.fixture(params=PRIMARIES)
def primary(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Primary]:
    p = Primary(request.param, tmp_path)
    yield p
    p.stop()


async def rows(db: edgesql.Connection) -> Any:
    return table_state((await db.execute("SELECT * FROM items ORDER BY id")).rows)


async def settle(*dbs: edgesql.Connection) -> None:
    for _ in range(2):
        for db in dbs:
            await db.sync()


async def converged(primary: Primary, *dbs: edgesql.Connection) -> Any:
    await settle(*dbs)
    expected = primary.rows()
    for db in dbs:
        assert await rows(db) == expected
        assert (await db.sync_status()).pending == 0
    return expected


# -- 1. a sync while the app's transaction is open --------------------------------------


class RollbackError(Exception):
    pass


def test_a_sync_during_an_open_transaction_sends_only_committed_writes(primary: Primary) -> None:
    """Found: db.sync() from another task pushed the rows of a transaction that was still
    open, then broke it; the app rolled back, the primary kept the rows."""

    async def check() -> None:
        a, b = await primary.replica(), await primary.replica()
        with pytest.raises(RollbackError):
            async with a.transaction() as tx:
                await tx.execute("INSERT INTO items (id, title) VALUES ('rolled', 'never')")
                other = asyncio.create_task(a.sync())  # another task syncs meanwhile
                await asyncio.sleep(0.3)
                assert not other.done(), "the sync must wait for the transaction"
                raise RollbackError
        await other
        async with a.transaction() as tx:
            await tx.execute("INSERT INTO items (id, title) VALUES ('kept', 'yes')")
            other = asyncio.create_task(a.sync())
            await asyncio.sleep(0.3)
            await tx.execute("UPDATE items SET qty = 1 WHERE id = 'kept'")
        await other
        await a.sync()
        assert [r[0] for r in primary.server.query("SELECT id FROM items")] == ["kept"]  # type: ignore[union-attr]
        assert await converged(primary, a, b)
        await a.close()
        await b.close()

    run(check())


def test_the_background_sync_waits_for_the_apps_transaction(primary: Primary) -> None:
    async def check() -> None:
        a = await edgesql.connect(":memory:", sync_url=primary.url, auth_token=TOKEN, sync_interval=0.05)
        await a.execute("INSERT INTO items (id, title) VALUES ('first', 'wakes the sync')")
        with pytest.raises(RollbackError):
            async with a.transaction() as tx:
                await tx.execute("INSERT INTO items (id, title) VALUES ('rolled', 'never')")
                await asyncio.sleep(0.5)  # the background sync wakes up meanwhile
                await tx.execute("INSERT INTO items (id, title) VALUES ('rolled2', 'never')")
                raise RollbackError
        async with a.transaction() as tx:  # and the app's next transaction is not disturbed
            await tx.execute("INSERT INTO items (id, title) VALUES ('second', 'ok')")
            await asyncio.sleep(0.3)
        for _ in range(100):
            if (await a.sync_status()).pending == 0:
                break
            await asyncio.sleep(0.05)
        assert sorted(r[0] for r in primary.server.query("SELECT id FROM items")) == ["first", "second"]  # type: ignore[union-attr]
        assert (await a.sync_status()).last_error is None
        await a.close()

    run(check())


def test_db_sync_inside_its_own_transaction_says_why_it_cannot(primary: Primary) -> None:
    async def check() -> None:
        a = await primary.replica()
        async with a.transaction() as tx:
            await tx.execute("INSERT INTO items (id) VALUES ('x')")
            with pytest.raises(edgesql.ProgrammingError, match="inside a transaction"):
                await a.sync()
        await a.sync()
        await a.close()

    run(check())


# -- 2, 3. values that compare equal but are not the same ----------------------------------


def test_an_explicit_null_in_a_column_with_a_default_stays_null(primary: Primary) -> None:
    async def check() -> None:
        a, b = await primary.replica(), await primary.replica()
        await a.execute("INSERT INTO items (id, qty) VALUES ('null-qty', NULL)")
        await a.execute("INSERT INTO items (id) VALUES ('default-qty')")
        state = await converged(primary, a, b)
        got = {r[0][1]: r[2][1] for r in state}
        assert got == {"null-qty": None, "default-qty": 7}
        await a.close()
        await b.close()

    run(check())


def test_updates_that_only_collation_or_the_sign_of_zero_hide_are_synced(primary: Primary) -> None:
    async def check() -> None:
        a, b = await primary.replica(), await primary.replica()
        await a.execute("INSERT INTO items (id, u, nc, rt) VALUES ('eq', 0.0, 'abc', 'a')")
        await settle(a, b)
        await a.execute("UPDATE items SET u = -0.0, nc = 'ABC', rt = 'a  ' WHERE id = 'eq'")
        await converged(primary, a, b)
        u, nc, rt = (await b.execute("SELECT u, nc, rt FROM items")).rows[0]
        assert math.copysign(1, u) == -1 and nc == "ABC" and rt == "a  "
        await a.execute("UPDATE items SET u = 0.0 WHERE id = 'eq'")
        await converged(primary, a, b)
        assert math.copysign(1, (await b.execute("SELECT u FROM items")).scalar()) == 1
        await a.close()
        await b.close()

    run(check())


# -- 4. a clock that was wrong, then fixed -------------------------------------------------


def test_a_device_whose_clock_was_ahead_writes_again_once_it_is_fixed(
    primary: Primary, tmp_path: Path
) -> None:
    """Found: a device a day ahead was rightly refused (future_stamp), but the refused stamps
    moved its clock, so after its clock was fixed it stayed a day ahead, refused forever."""
    day = 86_400_000 << 16
    path = str(tmp_path / "ahead.db")

    async def check() -> None:
        a, b = await primary.replica(path), await primary.replica()
        await a.execute("INSERT INTO items (id, title) VALUES ('ahead', 'written a day ahead')")
        # The write as a device whose clock reads a day ahead stamps it (the outbox is not
        # captured: editing it is how a test sets a device's clock).
        await a.execute("UPDATE _edgesql_outbox SET hlc = hlc + ?", (day,))
        await a.sync()
        code = (await a.execute("SELECT code FROM _edgesql_rejected")).scalar()
        assert code == "future_stamp"
        await a.close()
        a = await primary.replica(path)  # reopened, the clock now right
        await a.execute("INSERT INTO items (id, title) VALUES ('fixed', 'written after the fix')")
        await a.sync()
        assert (await a.execute("SELECT count(*) FROM _edgesql_rejected")).scalar() == 1
        state = await converged(primary, a, b)
        assert [r[0][1] for r in state] == ["fixed"]
        await a.close()
        await b.close()

    run(check())


# -- 5, 6, 7. migrations with old replicas holding offline writes ------------------------------


def test_dropping_a_column_migrates_old_replicas_and_keeps_their_other_values(primary: Primary) -> None:
    """Found: every existing replica failed every sync after a DROP COLUMN (its capture
    trigger named the column), and offline writes lost the values of the other columns."""

    async def check() -> None:
        a, b = await primary.replica(), await primary.replica()
        await a.execute("INSERT INTO items (id, title, note) VALUES ('r1', 'synced', 'n1')")
        await settle(a, b)
        await a.execute("INSERT INTO items (id, title, note) VALUES ('r2', 'offline', 'n2')")
        await a.execute("UPDATE items SET title = 'edited offline', note = 'gone' WHERE id = 'r1'")
        primary.migrate(DROP_NOTE)
        state = await converged(primary, a, b)
        assert [(r[0][1], r[1][1]) for r in state] == [("r1", "edited offline"), ("r2", "offline")]
        cols = [r[1] for r in (await a.execute("SELECT * FROM pragma_table_info('items')")).rows]
        assert "note" not in cols
        assert (await a.execute("SELECT count(*) FROM _edgesql_rejected")).scalar() == 0
        await a.execute("INSERT INTO items (id, title) VALUES ('r3', 'after')")
        await converged(primary, a, b)
        await a.close()
        await b.close()

    run(check())


def test_a_check_added_by_a_migration_rejects_the_offline_writes_it_refuses(primary: Primary) -> None:
    """Found: an old replica holding offline writes that a new CHECK refuses could not migrate
    (IntegrityError), recorded no rejection, and never synced again."""

    async def check() -> None:
        a, b = await primary.replica(), await primary.replica()
        await a.execute("INSERT INTO items (id, title, n) VALUES ('ok', 'fine', 1)")
        await settle(a, b)
        await a.execute("INSERT INTO items (id, title, n) VALUES ('neg', 'refused', -5)")
        await a.execute("UPDATE items SET title = 'still fine', n = 3 WHERE id = 'ok'")
        primary.migrate(CHECK_N)
        state = await converged(primary, a, b)
        assert [(r[0][1], r[1][1], r[8][1]) for r in state] == [("ok", "still fine", 3)]
        code, reason = (await a.execute("SELECT code, reason FROM _edgesql_rejected")).rows[0]
        assert code == "constraint" and "CHECK constraint failed" in reason
        await a.close()
        await b.close()

    run(check())


def test_a_migration_that_converts_values_leaves_every_replica_with_the_primarys(primary: Primary) -> None:
    """Found: a REAL->TEXT rebuild gave '0.66666666666666663' on the primary and
    '0.666666666666667' on CPython replicas (another SQLite), for good."""

    async def check() -> None:
        a, b = await primary.replica(), await primary.replica()
        await a.executemany(
            "INSERT INTO items (id, amount) VALUES (?, ?)", [("third", 2 / 3), ("tenth", 0.1), ("big", 1e300)]
        )
        await settle(a, b)
        await b.execute("INSERT INTO items (id, amount) VALUES ('offline', ?)", (1 / 7,))
        primary.migrate(AMOUNT_AS_TEXT)
        state = await converged(primary, a, b)
        amounts = {r[0][1]: r[7] for r in state}
        assert all(kind == "str" for kind, _ in amounts.values()), amounts
        c = await primary.replica()  # a replica that starts after the migration agrees too
        await converged(primary, a, b, c)
        await a.close()
        await b.close()
        await c.close()

    run(check())


# -- 9. a database restored from a backup --------------------------------------------------


def test_a_database_restored_from_an_older_backup_gets_its_later_changes_back(
    primary: Primary, tmp_path: Path
) -> None:
    """Found: a restored copy's first sync moved its pull position past its own later
    changes (pulls skip a replica's own), so it never had them again."""
    path, backup = tmp_path / "a.db", tmp_path / "backup.db"

    async def check() -> None:
        a, b = await primary.replica(str(path)), await primary.replica()
        await a.execute("INSERT INTO items (id, title) VALUES ('before', 'in the backup')")
        await a.sync()
        await a.close()
        shutil.copy(path, backup)
        a = await primary.replica(str(path))
        await a.execute("INSERT INTO items (id, title) VALUES ('after', 'not in the backup')")
        await a.execute("UPDATE items SET title = 'edited after' WHERE id = 'before'")
        await a.sync()
        await a.close()
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        shutil.copy(backup, path)
        a = await primary.replica(str(path))
        state = await converged(primary, a, b)
        assert [(r[0][1], r[1][1]) for r in state] == [
            ("after", "not in the backup"),
            ("before", "edited after"),
        ]
        await a.execute("INSERT INTO items (id, title) VALUES ('later', 'after the restore')")
        await converged(primary, a, b)
        await a.close()
        await b.close()

    run(check())
