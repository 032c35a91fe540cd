"""FOREIGN KEYs and UNIQUEs across devices (issue 17), on both primaries over real HTTP.

The primary applies every change in one order and keeps the constraints; what it
refuses is rejected and reverted on its writer, a parent's delete cascades as
changes in the log, and every edit a device loses is recorded where the app can
show it (``db.conflicts()``, ``_edgesql_conflicts``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.aio import run
from tests.conftest import start_server
from tests.sync.harness import table_state
from tests.sync.primaries import TOKEN, PrimaryServer, worker_url

import edgesql

SCHEMA = """
CREATE TABLE projects (id TEXT PRIMARY KEY, name TEXT);
CREATE TABLE tasks (id TEXT PRIMARY KEY, project_id TEXT REFERENCES projects(id) ON DELETE CASCADE, title TEXT);
CREATE TABLE notes (id TEXT PRIMARY KEY, task_id TEXT REFERENCES tasks(id) ON DELETE RESTRICT, body TEXT);
CREATE TABLE comments (id TEXT PRIMARY KEY, task_id TEXT REFERENCES tasks(id) ON DELETE SET NULL, body TEXT);
CREATE TABLE tags (id TEXT PRIMARY KEY, name TEXT UNIQUE);
"""
TABLES = ["projects", "tasks", "notes", "comments", "tags"]


@pytest.fixture(scope="module", params=["sqlite", "d1-local"])
def primary(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrimaryServer]:
    base = tmp_path_factory.mktemp(f"constraints-{request.param}")
    (base / "schema.sql").write_text(SCHEMA)
    server = start_server(
        base / "data",
        *("--primary", request.param, "--schema", str(base / "schema.sql"), "--auth-token", TOKEN),
        timeout=90,
    )
    yield PrimaryServer(request.param, server, worker_url(server))
    server.stop()


_n = [0]


def ids(tag: str) -> str:
    _n[0] += 1
    return f"{tag}{_n[0]}"


async def replica(primary: PrimaryServer) -> edgesql.Connection:
    return await edgesql.connect(":memory:", sync_url=primary.sync_url, auth_token=TOKEN, sync_interval=None)


async def everywhere(primary: PrimaryServer, *dbs: edgesql.Connection) -> dict[str, Any]:
    """Sync until quiet; every replica equals the primary and keeps every foreign key."""
    for _ in range(2):
        for db in dbs:
            await db.sync()
    want = {t: table_state(primary.query(f"SELECT * FROM {t} ORDER BY id")) for t in TABLES}
    for db in dbs:
        got = {t: table_state((await db.execute(f"SELECT * FROM {t} ORDER BY id")).rows) for t in TABLES}
        assert got == want
        assert (await db.execute("PRAGMA foreign_key_check")).rows == []
        assert (await db.sync_status()).pending == 0
    assert primary.query("PRAGMA foreign_key_check") == []
    return want


def test_a_child_written_offline_under_a_parent_deleted_elsewhere(primary: PrimaryServer) -> None:
    """The delete wins: its cascade removes the children everywhere, the offline child is
    rejected on its writer, and the writer is told (a conflict)."""

    async def check() -> None:
        a, b = await replica(primary), await replica(primary)
        p, t1, t2 = ids("p"), ids("t"), ids("t")
        await a.execute("INSERT INTO projects VALUES (?, 'Home')", (p,))
        await a.execute("INSERT INTO tasks VALUES (?, ?, 'synced child')", (t1, p))
        await a.sync()
        await b.sync()
        await b.execute("INSERT INTO tasks VALUES (?, ?, 'written offline')", (t2, p))
        await a.execute("DELETE FROM projects WHERE id = ?", (p,))
        await a.sync()
        state = await everywhere(primary, a, b)
        assert not [r for r in state["tasks"] if r[0][1] in (t1, t2)]
        conflicts = await b.conflicts()
        mine = [c for c in conflicts if c.pk == f'["t{t2.encode().hex().upper()}"]']
        assert mine and mine[0].kind == "rejected" and "FOREIGN KEY" in (mine[0].reason or "")
        assert mine[0].row is not None and mine[0].row["title"] == "written offline", mine[0]
        # The cascade is in the log as the primary's own change, for every device.
        assert (
            primary.query(
                "SELECT count(*) FROM _edgesql_changes WHERE replica = '~cascade' AND tbl = 'tasks'"
            )[0][0]
            >= 1
        )
        await a.close()
        await b.close()

    run(check())


def test_the_same_unique_value_made_on_two_devices(primary: PrimaryServer) -> None:
    """The first to reach the primary keeps it; the other's row is rejected and shown."""

    async def check() -> None:
        a, b = await replica(primary), await replica(primary)
        name = ids("urgent-")
        await a.execute("INSERT INTO tags VALUES (?, ?)", (ids("g"), name))
        await b.execute("INSERT INTO tags VALUES (?, ?)", (ids("g"), name))
        await a.sync()
        await b.sync()
        state = await everywhere(primary, a, b)
        assert len([r for r in state["tags"] if r[1][1] == name]) == 1
        reasons = [c.reason for c in await b.conflicts() if c.tbl == "tags"]
        assert reasons and "UNIQUE" in reasons[0]
        await a.close()
        await b.close()

    run(check())


def test_the_same_unique_value_pulled_before_it_is_pushed(primary: PrimaryServer) -> None:
    """A pull that brings the value first: the device's own row gives way, rejected at once."""

    async def check() -> None:
        a, b = await replica(primary), await replica(primary)
        name = ids("later-")
        await a.execute("INSERT INTO tags VALUES (?, ?)", (ids("g"), name))
        await a.sync()
        await b.execute("INSERT INTO tags VALUES (?, ?)", (ids("g"), name))
        await b._backend.replica.round(push_limit=0)  # type: ignore[attr-defined]  # a pull, nothing pushed
        assert (await b.sync_status()).pending == 0
        assert [c.kind for c in await b.conflicts() if c.tbl == "tags"] == ["rejected"]
        await everywhere(primary, a, b)
        await a.close()
        await b.close()

    run(check())


def test_a_rejected_parent_insert_takes_its_children_with_it(primary: PrimaryServer) -> None:
    async def check() -> None:
        a, b = await replica(primary), await replica(primary)
        name = ids("dup-")
        await a.execute("INSERT INTO tags VALUES (?, ?)", (ids("g"), name))
        await a.sync()
        p = ids("p")
        # b's project is fine, but its task's parent is a project the primary refuses below
        # (a name clash on tags is the only constraint here: use a parent that cannot land).
        await b.execute("INSERT INTO projects VALUES (?, 'doomed')", (p,))
        await b.execute("INSERT INTO tasks VALUES (?, ?, 'child of doomed')", (ids("t"), p))
        await b.execute(
            "INSERT INTO notes VALUES (?, (SELECT max(id) FROM tasks), 'grandchild')", (ids("n"),)
        )
        # The primary refuses the project insert (a CHECK the device does not have: its
        # stamp from the future, as a device whose clock ran ahead would make it).
        await b.execute(
            "UPDATE _edgesql_outbox SET hlc = hlc + (86400000 << 16) WHERE tbl = 'projects' AND pk = ?",
            (f'["t{p.encode().hex().upper()}"]',),
        )
        await b.sync()
        state = await everywhere(primary, a, b)
        assert not [r for r in state["projects"] if r[0][1] == p]
        kinds = sorted(c.tbl for c in await b.conflicts() if c.kind == "rejected")
        assert "projects" in kinds and "tasks" in kinds and "notes" in kinds
        await a.close()
        await b.close()

    run(check())


def test_restrict_refuses_a_delete_from_a_device_that_did_not_see_the_new_child(
    primary: PrimaryServer,
) -> None:
    async def check() -> None:
        a, b = await replica(primary), await replica(primary)
        p, t = ids("p"), ids("t")
        await a.execute("INSERT INTO projects VALUES (?, 'Work')", (p,))
        await a.execute("INSERT INTO tasks VALUES (?, ?, 'keep me')", (t, p))
        await a.sync()
        await b.sync()
        await a.execute("INSERT INTO notes VALUES (?, ?, 'a note b has not seen')", (ids("n"), t))
        await a.sync()
        await b.execute("DELETE FROM tasks WHERE id = ?", (t,))  # b sees no note: allowed there
        await b.sync()
        state = await everywhere(primary, a, b)
        assert [r for r in state["tasks"] if r[0][1] == t]  # the task stays, on b too
        reasons = [c.reason for c in await b.conflicts() if c.tbl == "tasks"]
        assert reasons and "FOREIGN KEY" in reasons[0]
        await a.close()
        await b.close()

    run(check())


def test_set_null_and_a_pending_restrict_child_meet_a_pulled_delete(primary: PrimaryServer) -> None:
    """SET NULL children follow the parent's delete everywhere; a child this device wrote
    under a RESTRICT key of a parent deleted elsewhere goes (rejected) instead of blocking
    the pull."""

    async def check() -> None:
        a, b = await replica(primary), await replica(primary)
        p, t, c = ids("p"), ids("t"), ids("c")
        await a.execute("INSERT INTO projects VALUES (?, 'Home')", (p,))
        await a.execute("INSERT INTO tasks VALUES (?, ?, 'parent')", (t, p))
        await a.execute("INSERT INTO comments VALUES (?, ?, 'stays, unattached')", (c, t))
        await a.sync()
        await b.sync()
        await b.execute("INSERT INTO notes VALUES (?, ?, 'pending on b')", (ids("n"), t))
        await a.execute("DELETE FROM tasks WHERE id = ?", (t,))
        await a.sync()
        await b._backend.replica.round(push_limit=0)  # type: ignore[attr-defined]  # the delete arrives first
        state = await everywhere(primary, a, b)
        assert [r[1][1] for r in state["comments"] if r[0][1] == c] == [None]
        assert [c.kind for c in await b.conflicts() if c.tbl == "notes"] == ["rejected"]
        await a.close()
        await b.close()

    run(check())


def test_an_edit_that_loses_to_a_delete_or_a_later_write_is_recorded(primary: PrimaryServer) -> None:
    async def check() -> None:
        a, b = await replica(primary), await replica(primary)
        p1, p2 = ids("p"), ids("p")
        await a.executemany("INSERT INTO projects VALUES (?, ?)", [(p1, "one"), (p2, "two")])
        await a.sync()
        await b.sync()
        await b.execute("UPDATE projects SET name = 'b renamed' WHERE id IN (?, ?)", (p1, p2))
        # Clocks tick in milliseconds: in the same one, the replica id would break the tie.
        await asyncio.sleep(0.005)
        await a.execute("DELETE FROM projects WHERE id = ?", (p1,))
        await a.execute("UPDATE projects SET name = 'a renamed later' WHERE id = ?", (p2,))
        await b.sync()  # b's renames land first...
        await a.sync()  # ...a's later edits win over them
        await b.sync()
        await everywhere(primary, a, b)
        kinds = {(c.kind, c.pk) for c in await b.conflicts() if c.tbl == "projects"}
        key = {p: f'["t{p.encode().hex().upper()}"]' for p in (p1, p2)}
        assert ("deleted", key[p1]) in kinds and ("overwritten", key[p2]) in kinds
        got = next(c for c in await b.conflicts() if c.kind == "overwritten" and c.pk == key[p2])
        assert got.mine == "b renamed" and got.theirs == "a renamed later"
        # The deleted row as b had it, to name it in a notice ("your edit to 'b renamed' ...").
        gone = next(c for c in await b.conflicts() if c.kind == "deleted" and c.pk == key[p1])
        assert gone.row == {"name": "b renamed"} and gone.key == (p1,), gone
        await b.dismiss_conflicts([c.id for c in await b.conflicts()])
        assert await b.conflicts() == []
        await a.close()
        await b.close()

    run(check())


def test_a_schema_with_a_foreign_key_to_a_local_table_is_refused(tmp_path: Path) -> None:
    from edgesql.server.primary import Primary
    from edgesql.sync.schema import Migration, SchemaError

    bad = "CREATE TABLE local_x (id TEXT PRIMARY KEY); CREATE TABLE t (id TEXT PRIMARY KEY, x TEXT REFERENCES local_x(id));"
    with pytest.raises(SchemaError, match="not synced"):
        Primary(tmp_path / "p.db", (Migration(1, "x", bad),))
    upd = "CREATE TABLE p (id TEXT PRIMARY KEY); CREATE TABLE c (id TEXT PRIMARY KEY, p TEXT REFERENCES p(id) ON UPDATE CASCADE);"
    with pytest.raises(SchemaError, match="ON UPDATE"):
        Primary(tmp_path / "q.db", (Migration(1, "x", upd),))
