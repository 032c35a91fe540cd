"""Two offline browser profiles converge syncing straight with the Worker in front of a real
sqld — the second Turso front: no serve.py between the page and the Worker, as an app syncs
with a Worker deployed for Turso (cross-origin, allowed by ``EDGESQL_ALLOWED_ORIGIN``).

The same story as tests/test_sync_browser.py, except that the devices go offline by the
browser's own switch (the Worker keeps its address while serve.py runs).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.aio import run
from tests.conftest import Server, open_console, run_py, start_server
from tests.sync.turso import worker_url

import edgesql
from edgesql.server.sqld import free_port

pytestmark = pytest.mark.browser


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Server]:
    port = free_port()  # the pages' origin, which the Worker must allow
    server = start_server(
        tmp_path / "data",
        *("--primary", "turso-local"),
        port=port,
        timeout=90,
        env={"EDGESQL_ALLOWED_ORIGIN": f"http://127.0.0.1:{port}"},
    )
    yield server
    server.stop()


def rows(page: Any, sql: str) -> Any:
    return run_py(page, f"json.dumps([list(r) for r in (await db.execute({sql!r})).rows])")


def test_two_offline_browsers_converge_through_the_worker_in_front_of_turso(
    browser: Any, own_server: Server, outside: Any
) -> None:
    sync_url = worker_url(own_server) + "/sync"
    assert not sync_url.startswith(own_server.url)  # another origin than the page's
    contexts, pages = [], []
    for _ in range(2):
        ctx = browser.new_context()  # a profile of its own: its own OPFS
        outside.watch(ctx)
        page = open_console(ctx.new_page(), own_server.url)
        run_py(
            page,
            f"import edgesql, json\ndb = await edgesql.connect('shared.db', sync_url={sync_url!r}, sync_interval=0)",
        )
        contexts.append(ctx)
        pages.append(page)
    a, b = pages
    run_py(
        a,
        """
await db.execute("INSERT INTO projects (id, name) VALUES ('p1', 'Home')")
await db.executemany("INSERT INTO tasks (id, project_id, title, priority) VALUES (?, 'p1', ?, 0)",
                     [('t1', 'Milk'), ('t2', 'Bread')])
await db.sync()
""",
    )
    run_py(b, "await db.sync()")
    assert rows(b, "SELECT id, title FROM tasks ORDER BY id") == [["t1", "Milk"], ["t2", "Bread"]]

    for ctx in contexts:
        ctx.set_offline(True)  # both go offline and keep working
    run_py(
        a,
        """
await db.execute("UPDATE tasks SET title = 'Oat milk', priority = 1 WHERE id = 't1'")
await db.execute("DELETE FROM tasks WHERE id = 't2'")
await db.execute("INSERT INTO tasks (id, project_id, title) VALUES ('t3', 'p1', 'From A offline')")
""",
    )
    run_py(
        b,
        """
import asyncio
await asyncio.sleep(0.01)  # B's edits come later in time
await db.execute("UPDATE tasks SET done = 1, priority = 3 WHERE id = 't1'")
await db.execute("UPDATE tasks SET title = 'Edited while deleted elsewhere' WHERE id = 't2'")
await db.execute("INSERT INTO tasks (id, project_id, title) VALUES ('t4', 'p1', 'From B offline')")
""",
    )
    for page in pages:
        out = run_py(
            page,
            """
try:
    await db.sync()
    err = None
except edgesql.SyncError as e:
    err = e.code
st = await db.sync_status()
json.dumps([err, st.pending])
""",
        )
        assert out[0] == "offline" and out[1] > 0

    for ctx in contexts:
        ctx.set_offline(False)
    for page in (a, b, a):
        run_py(page, "await db.sync()")
    want = [
        ["t1", "Oat milk", 1, 3],  # A's title, B's done, B's (later) priority
        ["t3", "From A offline", 0, 0],
        ["t4", "From B offline", 0, 0],
    ]  # t2: deleted by A, and a delete beats an update
    for page in pages:
        assert rows(page, "SELECT id, title, done, priority FROM tasks ORDER BY id") == want
        assert run_py(page, "(await db.sync_status()).pending") == 0

    async def cpython_replica() -> list[list[Any]]:
        async with edgesql.connect(":memory:", sync_url=sync_url, sync_interval=None) as db:
            await db.sync()
            result = await db.execute("SELECT id, title, done, priority FROM tasks ORDER BY id")
            return [list(r) for r in result.rows]

    assert run(cpython_replica()) == want
