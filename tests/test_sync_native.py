"""Sync between CPython replicas and the embedded primary: conflicts, idempotency,
rejections, copies, schema changes and type fidelity."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from tests.aio import run
from tests.cases.api_cases import SYNC_EDGE_VALUES, same
from tests.sync.faults import Duplicate, LoseResponses, Offline
from tests.sync.harness import Cluster

import edgesql
from edgesql.sync.schema import Migration
from edgesql.sync.status import SyncError


async def later() -> None:
    # Stamps carry milliseconds: wait past the current one so the next write is later.
    await asyncio.sleep(0.003)


def test_concurrent_edits_to_different_columns_both_survive() -> None:
    async def check() -> None:
        c = Cluster()
        a, b = await c.replica(), await c.replica()
        await a.execute("INSERT INTO items (id, a, b) VALUES ('r', 'a0', 0)")
        await a.sync()
        await b.sync()
        await a.execute("UPDATE items SET a = 'from A' WHERE id = 'r'")
        await b.execute("UPDATE items SET b = 42 WHERE id = 'r'")
        await c.settle()
        states = await c.states("items", "id")
        assert all(s == states[0] for s in states)
        row = (await a.execute("SELECT a, b FROM items")).rows[0]
        assert row == ("from A", 42)
        await c.close()

    run(check())


def test_same_column_ends_with_the_later_write_everywhere() -> None:
    async def check() -> None:
        c = Cluster()
        a, b, d = await c.replica(), await c.replica(), await c.replica()
        await a.execute("INSERT INTO items (id, c) VALUES ('r', 'first')")
        await c.settle()
        await b.execute("UPDATE items SET c = 'earlier' WHERE id = 'r'")
        await later()
        await a.execute("UPDATE items SET c = 'later' WHERE id = 'r'")
        # Push the later write first: order of arrival must not matter.
        await a.sync()
        await b.sync()
        await c.settle()
        for db in (a, b, d):
            assert (await db.execute("SELECT c FROM items")).scalar() == "later"
        assert c.primary.query("SELECT c FROM items") == [("later",)]
        await c.close()

    run(check())


@pytest.mark.parametrize("delete_first", [True, False])
def test_delete_beats_a_concurrent_update_everywhere(delete_first: bool) -> None:
    async def check() -> None:
        c = Cluster()
        a, b = await c.replica(), await c.replica()
        await a.execute("INSERT INTO items (id, c) VALUES ('r', 'x')")
        await c.settle()
        if delete_first:
            await a.execute("DELETE FROM items WHERE id = 'r'")
            await later()
            await b.execute("UPDATE items SET c = 'edited after the delete' WHERE id = 'r'")
        else:
            await b.execute("UPDATE items SET c = 'edited before the delete' WHERE id = 'r'")
            await later()
            await a.execute("DELETE FROM items WHERE id = 'r'")
        await c.settle()
        assert all(s == [] for s in await c.states("items", "id"))
        # Only an INSERT brings the row back.
        await b.execute("INSERT INTO items (id, c) VALUES ('r', 'again')")
        await c.settle()
        assert all(len(s) == 1 for s in await c.states("items", "id"))
        await c.close()

    run(check())


def test_outbox_holds_committed_writes_only_and_pulls_are_not_logged_again() -> None:
    async def check() -> None:
        c = Cluster()
        a, b = await c.replica(), await c.replica()
        with pytest.raises(ZeroDivisionError):
            async with a.transaction():
                await a.execute("INSERT INTO items (id) VALUES ('gone')")
                raise ZeroDivisionError
        assert (await a.sync_status()).pending == 0
        await a.executemany("INSERT INTO items (id, b) VALUES (?, ?)", [(f"k{i}", i) for i in range(10)])
        await a.execute("UPDATE items SET b = b WHERE id = 'k1'")  # changes nothing: logs nothing
        assert (await a.sync_status()).pending == 10
        await c.settle()
        assert (await b.execute("SELECT count(*) FROM items")).scalar() == 10
        assert (await b.sync_status()).pending == 0  # applying pulled rows logged nothing
        await c.close()

    run(check())


@pytest.mark.parametrize(
    ("sql", "params", "table"),
    [
        ("INSERT INTO items (id, b) VALUES (?, 1)", (None,), "items"),
        ("UPDATE items SET id = ? WHERE id = 'k'", (None,), "items"),
        ("INSERT INTO pairs (x, y) VALUES ('k', ?)", (1.5,), "pairs"),
        ("UPDATE pairs SET y = ? WHERE x = 'k'", (2.5,), "pairs"),
    ],
)
def test_a_null_or_real_primary_key_is_refused_and_nothing_is_logged(
    sql: str, params: tuple[object], table: str
) -> None:
    async def check() -> None:
        c = Cluster()
        a = await c.replica()
        await a.execute("INSERT INTO items (id, b) VALUES ('k', 0)")
        await a.execute("INSERT INTO pairs (x, y) VALUES ('k', 0)")
        with pytest.raises(
            edgesql.IntegrityError, match=f"primary key of {table} must be an INTEGER, TEXT or BLOB"
        ):
            await a.execute(sql, params)
        assert (await a.execute("SELECT id, b FROM items")).rows == [("k", 0)]
        assert (await a.execute("SELECT x, y FROM pairs")).rows == [("k", 0)]
        assert (await a.sync_status()).pending == 2  # the two inserts only
        await c.close()

    run(check())


def test_lost_responses_and_duplicated_requests_change_nothing() -> None:
    async def check() -> None:
        c = Cluster()
        lossy = LoseResponses(c.transport, n=1)
        a = await c.replica(transport=lossy)
        b = await c.replica(transport=Duplicate(c.transport))
        await a.executemany("INSERT INTO items (id, b) VALUES (?, ?)", [(f"a{i}", i) for i in range(5)])
        with pytest.raises(SyncError, match="cannot reach"):
            await a.sync()  # the primary applied the page; the answer never came
        assert (await a.sync_status()).pending == 5
        await a.sync()  # the same page again: acknowledged, not applied twice
        await b.executemany("INSERT INTO items (id, b) VALUES (?, ?)", [(f"b{i}", i) for i in range(5)])
        await b.execute("UPDATE items SET b = b + 100")
        await c.settle()
        assert c.primary.query("SELECT count(*) FROM _edgesql_changes") == [(15,)]  # 5 + 5 inserts, 5 updates
        states = await c.states("items", "id")
        assert all(s == states[0] for s in states)
        assert c.primary.query("SELECT sum(b) FROM items") == [(sum(range(5)) * 2 + 500,)]
        await c.close()

    run(check())


def test_offline_writes_wait_in_the_outbox_and_sync_when_back() -> None:
    async def check() -> None:
        c = Cluster()
        net = Offline(c.transport)
        a = await c.replica(transport=net)
        net.down = True
        await a.execute("INSERT INTO items (id, c) VALUES ('o1', 'offline')")
        with pytest.raises(SyncError) as err:
            await a.sync()
        assert err.value.code == "offline"
        status = await a.sync_status()
        assert status.pending == 1 and not status.online and "cannot reach" in status.last_error
        net.down = False
        assert await a.sync() == edgesql.SyncResult(pushed=1, pulled=0)
        status = await a.sync_status()
        assert status.pending == 0 and status.online and status.last_error is None and status.last_synced_at
        await c.close()

    run(check())


def test_offline_start_uses_the_cached_schema(tmp_path: Path) -> None:
    async def check() -> None:
        c = Cluster()
        net = Offline(c.transport)
        path = str(tmp_path / "r.db")
        db = await c.replica(transport=net, path=path)
        await db.close()
        net.down = True
        db = await edgesql.connect(
            path, sync_url="http://primary.invalid/sync", transport=net, sync_interval=None
        )
        await db.execute("INSERT INTO items (id) VALUES ('works offline')")
        assert (await db.sync_status()).pending == 1
        await db.close()
        fresh = Offline(c.transport)
        fresh.down = True
        with pytest.raises(SyncError, match="first start needs the network"):
            await edgesql.connect(
                str(tmp_path / "new.db"), sync_url="http://primary.invalid/sync", transport=fresh
            )
        c.primary.close()

    run(check())


def test_values_keep_their_type_through_the_primary() -> None:
    async def check() -> None:
        c = Cluster()
        a, b = await c.replica(), await c.replica()
        values = SYNC_EDGE_VALUES
        await a.executemany(
            "INSERT INTO items (id, a) VALUES (?, ?)", [(f"v{i:02}", v) for i, v in enumerate(values)]
        )
        await c.settle()
        got = (await b.execute("SELECT a FROM items ORDER BY id")).rows
        for (value,), want in zip(got, values, strict=True):
            assert same(value, want), (want, value)
        on_primary = c.primary.query("SELECT a FROM items ORDER BY id")
        for (value,), want in zip(on_primary, values, strict=True):
            assert same(value, want), (want, value)
        await c.close()

    run(check())


def test_a_copied_database_takes_a_new_replica_id(tmp_path: Path) -> None:
    async def check() -> None:
        c = Cluster()
        first = await c.replica(path=str(tmp_path / "orig.db"))
        await first.execute("INSERT INTO items (id, c) VALUES ('shared', 'before the copy')")
        await first.sync()
        await first.close()
        c.replicas.remove(first)
        shutil.copy(tmp_path / "orig.db", tmp_path / "copy.db")
        a = await c.replica(path=str(tmp_path / "orig.db"))
        b = await c.replica(path=str(tmp_path / "copy.db"))
        await a.execute("INSERT INTO items (id, c) VALUES ('from-a', 'a')")
        await b.execute("INSERT INTO items (id, c) VALUES ('from-b', 'b')")
        await a.sync()
        await b.sync()  # same replica id, same seq, different change: b must rename itself
        await c.settle()
        ids = {
            (await a.execute("SELECT replica FROM _edgesql_state")).scalar(),
            (await b.execute("SELECT replica FROM _edgesql_state")).scalar(),
        }
        assert len(ids) == 2
        states = await c.states("items", "id")
        assert all(s == states[-1] for s in states)
        assert [r[0] for r in c.primary.query("SELECT id FROM items ORDER BY id")] == [
            "from-a",
            "from-b",
            "shared",
        ]
        await c.close()

    run(check())


def test_a_device_clock_far_ahead_is_refused_and_the_row_restored() -> None:
    async def check() -> None:
        c = Cluster()
        a, b = await c.replica(), await c.replica()
        await a.execute("INSERT INTO items (id, c) VALUES ('r', 'agreed')")
        await c.settle()
        # This device's clock jumps a day ahead (as a wrong system clock would).
        await b.execute("UPDATE _edgesql_state SET hlc = hlc + (86400000 << 16)")
        await b.execute("UPDATE items SET c = 'from the future' WHERE id = 'r'")
        await b.sync()
        rejected = (await b.execute("SELECT code, reason FROM _edgesql_rejected")).rows
        assert rejected[0][0] == "future_stamp" and "ahead of the primary" in rejected[0][1]
        assert (await b.execute("SELECT c FROM items")).scalar() == "agreed"  # back to what the primary has
        assert (await b.sync_status()).pending == 0
        await c.settle()
        states = await c.states("items", "id")
        assert all(s == states[0] for s in states)
        await c.close()

    run(check())


def test_a_change_breaking_a_constraint_is_rejected_alone() -> None:
    async def check() -> None:
        # The primary's table has a CHECK the replica's old copy of the schema lacks.
        c = Cluster(
            schema="CREATE TABLE items (id TEXT PRIMARY KEY, a, b INTEGER CHECK (b >= 0), c TEXT, d REAL);"
            "CREATE TABLE pairs (x TEXT NOT NULL, y INTEGER NOT NULL, v, PRIMARY KEY (x, y)) WITHOUT ROWID;"
        )
        a = await c.replica()
        await a.execute("PRAGMA ignore_check_constraints = ON")  # as an older app version without the CHECK
        await a.executemany("INSERT INTO items (id, b) VALUES (?, ?)", [("ok1", 1), ("bad", -5), ("ok2", 2)])
        result = await a.sync()
        assert result.pushed == 2
        rejected = (await a.execute("SELECT pk, code, reason FROM _edgesql_rejected")).rows
        assert (
            len(rejected) == 1
            and rejected[0][1] == "constraint"
            and "CHECK constraint failed" in rejected[0][2]
        )
        assert [r[0] for r in (await a.execute("SELECT id FROM items ORDER BY id")).rows] == ["ok1", "ok2"]
        assert [r[0] for r in c.primary.query("SELECT id FROM items ORDER BY id")] == ["ok1", "ok2"]
        await c.close()

    run(check())


def test_schema_moves_on_and_replicas_migrate(tmp_path: Path) -> None:
    async def check() -> None:
        from tests.sync.inprocess import InProcessTransport

        from edgesql.server.primary import Primary
        from edgesql.server.sync_routes import SyncHandler

        v1 = (Migration(1, "init", "CREATE TABLE notes (id TEXT PRIMARY KEY, body TEXT);"),)
        v2 = (*v1, Migration(2, "stars", "ALTER TABLE notes ADD COLUMN stars INTEGER NOT NULL DEFAULT 0;"))
        path = tmp_path / "primary.db"
        primary = Primary(path, v1)
        transport = InProcessTransport(SyncHandler(primary))
        a = await edgesql.connect(
            ":memory:", sync_url="http://p/sync", transport=transport, sync_interval=None
        )
        b = await edgesql.connect(
            ":memory:", sync_url="http://p/sync", transport=transport, sync_interval=None
        )
        await a.execute("INSERT INTO notes VALUES ('n1', 'hello')")
        await a.sync()
        primary.close()
        primary = Primary(path, v2)  # the server restarts with a new migration
        transport.handler = SyncHandler(primary)
        await b.execute("INSERT INTO notes VALUES ('n2', 'old app, old columns')")
        await b.sync()  # b pushes with schema 1, learns of 2 and migrates
        assert (await b.sync_status()).schema_version == 2
        await b.execute("UPDATE notes SET stars = 5 WHERE id = 'n1'")
        await b.sync()
        await a.sync()
        assert (await a.sync_status()).schema_version == 2
        assert (await a.execute("SELECT id, body, stars FROM notes ORDER BY id")).rows == [
            ("n1", "hello", 5),
            ("n2", "old app, old columns", 0),
        ]
        assert primary.query("SELECT id, stars FROM notes ORDER BY id") == [("n1", 5), ("n2", 0)]
        await a.close()
        await b.close()
        primary.close()

    run(check())
