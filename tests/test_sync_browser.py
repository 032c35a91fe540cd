"""Sync in real Chromium: two browser profiles (two OPFS) write offline, then converge
with each other, with the primary, and with a CPython replica."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.aio import run
from tests.cases.api_cases import SYNC_EDGE_VALUES as SYNC_EDGE
from tests.cases.api_cases import same
from tests.conftest import Server, install_test_modules, open_console, run_py, start_server, wait_py

import edgesql

pytestmark = pytest.mark.browser

CONNECT = """
import edgesql, json
db = await edgesql.connect("shared.db", sync_url="/sync", sync_interval=0)
"""


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Server]:
    """A serve.py of this test's own, which the test may stop and restart on the same port."""
    holder = {"s": start_server(tmp_path / "data")}
    yield holder["s"]
    holder["s"].stop()


def restart(server: Server) -> Server:
    port = int(server.url.rsplit(":", 1)[1])
    return start_server(server.data, *server.args, port=port)


def rows(page: Any, sql: str) -> Any:
    return run_py(page, f"json.dumps([list(r) for r in (await db.execute({sql!r})).rows])")


def test_two_offline_browsers_converge(browser: Any, own_server: Server, outside: Any) -> None:
    server = own_server
    pages = []
    for _ in range(2):
        ctx = browser.new_context()  # a profile of its own: its own OPFS
        outside.watch(ctx)
        page = open_console(ctx.new_page(), server.url)
        run_py(page, CONNECT)
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

    server.stop()  # both go offline and keep working
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
json.dumps([err, st.pending, st.online])
""",
        )
        assert out[0] == "offline" and out[1] > 0 and out[2] is False

    server = restart(server)
    try:
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
            async with edgesql.connect(":memory:", sync_url=server.url + "/sync", sync_interval=None) as db:
                await db.sync()
                return [
                    list(r)
                    for r in (
                        await db.execute("SELECT id, title, done, priority FROM tasks ORDER BY id")
                    ).rows
                ]

        assert run(cpython_replica()) == want
    finally:
        server.stop()


def test_writes_sync_by_themselves_and_when_back_online(
    browser: Any, own_server: Server, outside: Any
) -> None:
    ctx = browser.new_context()
    outside.watch(ctx)
    page = open_console(ctx.new_page(), own_server.url)
    # Background sync on (a long interval, so only writes and the online event trigger it).
    run_py(
        page,
        'import edgesql, json\ndb = await edgesql.connect("auto.db", sync_url="/sync", sync_interval=300)',
    )
    run_py(page, "await db.execute(\"INSERT INTO projects (id, name) VALUES ('p', 'Home')\")")
    run_py(page, "await db.execute(\"INSERT INTO tags (id, project_id, name) VALUES ('g1', 'p', 'urgent')\")")
    wait_py(page, "(await db.sync_status()).pending", 0)
    ctx.set_offline(True)
    run_py(page, "await db.execute(\"INSERT INTO tags (id, project_id, name) VALUES ('g2', 'p', 'later')\")")
    wait_py(page, "(await db.sync_status()).online", False)
    # Let the retries back off until the next one is seconds away...
    wait_py(
        page,
        "(lambda s: s.retry_in is not None and s.retry_in > 2)(await db.sync_status())",
        True,
        timeout=30,
    )
    assert run_py(page, "(await db.sync_status()).pending") == 1, run_py(
        page,
        "json.dumps([list(r) for r in (await db.execute('SELECT seq, tbl, pk, cells FROM _edgesql_outbox')).rows])",
    )
    ctx.set_offline(False)  # ...so only the 'online' event can make it sync this soon
    wait_py(page, "(await db.sync_status()).pending", 0, timeout=1.5)

    async def on_primary() -> list[str]:
        async with edgesql.connect(":memory:", sync_url=own_server.url + "/sync", sync_interval=None) as db:
            await db.sync()
            return [r[0] for r in (await db.execute("SELECT name FROM tags ORDER BY id")).rows]

    assert run(on_primary()) == ["urgent", "later"]


@pytest.fixture
def types_server(tmp_path: Path) -> Iterator[Server]:
    server = start_server(
        tmp_path / "data", "--schema", str(Path(__file__).parent / "sync" / "types_schema.sql")
    )
    yield server
    server.stop()


def test_types_survive_browser_primary_cpython_browser(
    browser: Any, types_server: Server, outside: Any
) -> None:
    """browser A -> primary -> CPython replica (which writes them again) -> primary -> browser B, exactly."""
    own_server = types_server
    ctx_a, ctx_b = browser.new_context(), browser.new_context()
    outside.watch(ctx_a)
    outside.watch(ctx_b)
    a = open_console(ctx_a.new_page(), own_server.url)
    b = open_console(ctx_b.new_page(), own_server.url)
    install_test_modules(a)
    run_py(
        a,
        CONNECT
        + """
from tests.cases.api_cases import SYNC_EDGE_VALUES as values
await db.executemany("INSERT INTO vals (id, tag, v) VALUES (?, 't', ?)",
                     [(f"c{i:02}", v) for i, v in enumerate(values)])
await db.sync()
""",
    )

    async def cpython_hop() -> None:
        async with edgesql.connect(":memory:", sync_url=own_server.url + "/sync", sync_interval=None) as db:
            await db.sync()
            got = [r[0] for r in (await db.execute("SELECT v FROM vals ORDER BY id")).rows]
            for g, want in zip(got, SYNC_EDGE, strict=True):
                assert same(g, want), (want, g)
            # The CPython replica writes the same values back under new ids.
            await db.executemany(
                "INSERT INTO vals (id, tag, v) VALUES (?, 'py', ?)",
                [(f"py{i:02}", v) for i, v in enumerate(got)],
            )
            await db.sync()

    run(cpython_hop())
    out = run_py(
        b,
        CONNECT
        + """
import math
await db.sync()
def enc(v):
    if isinstance(v, float): return ["float", v.hex() if not math.isnan(v) else "nan"]
    if isinstance(v, bytes): return ["bytes", v.hex()]
    return [type(v).__name__, v]
json.dumps([[r[0], enc(r[1])] for r in (await db.execute("SELECT id, v FROM vals ORDER BY tag, id")).rows])
""",
    )
    by_id = {i: v for i, v in out}
    for prefix in ("c", "py"):
        for i, want in enumerate(SYNC_EDGE):
            kind, value = by_id[f"{prefix}{i:02}"]
            if isinstance(want, float):
                assert kind == "float" and value == want.hex(), (prefix, i, want, value)
            elif isinstance(want, bytes):
                assert kind == "bytes" and bytes.fromhex(value) == want, (prefix, i)
            else:
                assert kind == type(want).__name__ and value == want, (prefix, i, want, value)
    json.dumps(out)  # the page's answer was plain JSON


def test_console_shows_progress_during_a_long_first_pull(
    playwright: Any, own_server: Server, outside: Any
) -> None:
    """A new device's first sync pulls 20,000 changes: the console shows a progress bar."""

    async def seed() -> None:
        async with edgesql.connect(":memory:", sync_url=own_server.url + "/sync", sync_interval=None) as db:
            await db.execute("INSERT INTO projects (id, name) VALUES ('p', 'Big')")
            for start in range(0, 20_000, 5_000):
                await db.executemany(
                    "INSERT INTO tasks (id, project_id, title) VALUES (?, 'p', ?)",
                    [(f"t{i:05}", f"task {i}") for i in range(start, start + 5_000)],
                )
                await db.sync()

    run(seed())
    import tempfile

    from tests.conftest import launch_options

    ctx = playwright.chromium.launch_persistent_context(tempfile.mkdtemp(), **launch_options())
    outside.watch(ctx)
    try:
        page = open_console(ctx.new_page(), own_server.url)  # the console syncs app.db at once
        seen: set[str] = set()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            state = page.evaluate(
                """() => ({bar: !document.getElementById('sync-progress').hidden,
                          count: document.getElementById('sync-count').textContent,
                          detail: document.getElementById('sync-detail').textContent})"""
            )
            if state["bar"]:
                seen.add(state["count"])
            if (
                "0 pending" in state["detail"]
                and run_py(page, "(await db.execute('SELECT count(*) FROM tasks')).scalar()") == 20_000
            ):
                break
            time.sleep(0.05)
        assert any(c.startswith("pulled ") and c.endswith("of 20,001 changes") for c in seen), seen
        assert run_py(page, "(await db.execute('SELECT count(*) FROM tasks')).scalar()") == 20_000
    finally:
        ctx.close()


def test_a_write_during_a_long_pull_is_pushed_and_every_row_arrives(
    browser: Any, own_server: Server, outside: Any
) -> None:
    """While a first pull of 12,000 changes runs (pages asked for ahead, see worker/sync.js), the page
    writes: the write reaches the primary, and every pulled row arrives with its own values."""

    async def seed() -> None:
        async with edgesql.connect(":memory:", sync_url=own_server.url + "/sync", sync_interval=None) as db:
            await db.execute("INSERT INTO projects (id, name) VALUES ('p', 'Big')")
            for start in range(0, 12_000, 3_000):
                await db.executemany(
                    "INSERT INTO tasks (id, project_id, title, priority) VALUES (?, 'p', ?, ?)",
                    [(f"t{i:05}", f"task {i}", i % 4) for i in range(start, start + 3_000)],
                )
                await db.sync()

    run(seed())
    ctx = browser.new_context()
    outside.watch(ctx)
    try:
        page = open_console(ctx.new_page(), own_server.url)
        run_py(page, CONNECT)
        got = run_py(
            page,
            """
import asyncio
task = asyncio.ensure_future(db.sync())
while (await db.sync_status()).progress is None and not task.done():
    await asyncio.sleep(0.005)
during = not task.done()
await db.execute("INSERT INTO tasks (id, project_id, title) VALUES ('mine', 'p', 'written during the pull')")
await task
await db.sync()
st = await db.sync_status()
json.dumps({"during": during, "pending": st.pending, "error": st.last_error,
            "count": (await db.execute("SELECT count(*) FROM tasks")).scalar(),
            "wrong": (await db.execute(
                "SELECT count(*) FROM tasks WHERE id != 'mine' AND (title != 'task ' || CAST(substr(id, 2) AS INTEGER) "
                "OR priority != CAST(substr(id, 2) AS INTEGER) % 4)")).scalar()})
""",
        )
        assert got == {"during": True, "pending": 0, "error": None, "count": 12_001, "wrong": 0}

        async def on_primary() -> Any:
            async with edgesql.connect(
                ":memory:", sync_url=own_server.url + "/sync", sync_interval=None
            ) as db:
                await db.sync()
                return (await db.execute("SELECT title FROM tasks WHERE id = 'mine'")).scalar()

        assert run(on_primary()) == "written during the pull"
    finally:
        ctx.close()
