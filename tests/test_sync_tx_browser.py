"""A sync in the browser's worker never sees or breaks the app's open transaction (issue 13).

On CPython a sync during an open transaction pushed its rows and broke it; the
worker must neither push the outbox rows of an uncommitted transaction nor apply
a pulled slice between two statements of one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.aio import run
from tests.conftest import Server, open_console, run_py, start_server

import edgesql

pytestmark = pytest.mark.browser


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Server]:
    s = start_server(tmp_path / "data")
    yield s
    s.stop()


def test_the_workers_sync_waits_for_the_apps_transaction(
    browser: Any, own_server: Server, outside: Any
) -> None:
    server = own_server
    ctx = browser.new_context()
    outside.watch(ctx)
    page = open_console(ctx.new_page(), server.url)
    run_py(
        page,
        'import edgesql, asyncio\ntxdb = await edgesql.connect("tx.db", sync_url="/sync", sync_interval=0)',
    )

    async def other_device() -> None:
        db = await edgesql.connect(":memory:", sync_url=server.url + "/sync", sync_interval=None)
        await db.executemany(
            "INSERT INTO projects (id, name) VALUES (?, ?)", [(f"p{i}", f"other {i}") for i in range(300)]
        )
        await db.sync()
        await db.close()

    result = run_py(
        page,
        """
class Rollback(Exception):
    pass

seen = {}
try:
    async with txdb.transaction() as tx:
        await tx.execute("INSERT INTO projects (id, name) VALUES ('rolled', 'never')")
        other = asyncio.ensure_future(txdb.sync())   # another task syncs meanwhile
        await asyncio.sleep(0.4)
        seen["waiting"] = not other.done()
        raise Rollback
except Rollback:
    pass
await other
seen["after_rollback"] = (await txdb.execute("SELECT count(*) FROM projects WHERE id = 'rolled'")).scalar()
seen
""",
    )
    assert result == {"waiting": True, "after_rollback": 0}
    from tests.sync.primaries import PrimaryServer

    primary = PrimaryServer("sqlite", server, None)
    assert primary.query("SELECT count(*) FROM projects WHERE id = 'rolled'") == [(0,)]

    run(other_device())  # 300 changes for this browser to pull
    result = run_py(
        page,
        """
seen = {}
async with txdb.transaction() as tx:
    before = (await tx.execute("SELECT count(*) FROM projects")).scalar()
    pulling = asyncio.ensure_future(txdb.sync())
    await asyncio.sleep(0.4)
    # No pulled slice lands between two statements of this transaction.
    seen["same_view"] = (await tx.execute("SELECT count(*) FROM projects")).scalar() == before
    await tx.execute("INSERT INTO projects (id, name) VALUES ('mine', 'committed')")
await pulling
seen["pulled"] = (await txdb.execute("SELECT count(*) FROM projects WHERE name LIKE 'other %'")).scalar()
await txdb.sync()
seen["pending"] = (await txdb.sync_status()).pending
seen
""",
    )
    assert result == {"same_view": True, "pulled": 300, "pending": 0}
    assert primary.query("SELECT name FROM projects WHERE id = 'mine'") == [("committed",)]
