"""Many tabs, one database (one browser profile, several pages): one tab's worker owns
the OPFS database, the others route to it, and closing the owner loses nothing."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from tests.conftest import open_console, run_py

pytestmark = pytest.mark.browser

CONNECT = """
import edgesql, json, asyncio
db = await edgesql.connect("tabs.db", sync_url="/sync", sync_interval=0)
await db.execute("INSERT OR IGNORE INTO projects (id, name) VALUES ('p', 'Tabs')")  # tags belong to one
json.dumps(db.info.extra)
"""

WRITE_1000 = """
async def write_all(tab):
    done = 0
    errors = []
    for i in range(1000):
        while True:
            try:
                await db.execute("INSERT INTO tags (id, project_id, name) VALUES (?, 'p', ?)", (f"{tab}-{i:04}", f"tag {i} of {tab}"))
                done += 1
                break
            except edgesql.OperationalError as e:
                # A write in flight when the owning tab closed fails with a clear,
                # retryable error (or completes): never lost, never applied twice.
                errors.append(f"{e.sqlite_errorname}: {e}")
                if e.sqlite_errorname != "SQLITE_ABORT":
                    raise
    return json.dumps([done, errors])
"""


def start_py(page: Any, code: str) -> None:
    """Start Python in the page without waiting; wait_py_job() collects the result."""
    page.evaluate(
        """(code) => {
            window.__job = pyodide.runPythonAsync(code).then(
                (r) => ({ok: true, value: String(r)}), (e) => ({ok: false, value: String(e)}));
        }""",
        code,
    )


def wait_py_job(page: Any) -> Any:
    out = page.evaluate("async () => await window.__job")
    assert out["ok"], out["value"]
    return json.loads(out["value"])


def open_tab(context: Any, server: Any) -> Any:
    page = open_console(context.new_page(), server.url)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
    page.console_errors = errors
    return page


def no_lock_errors(pages: list[Any]) -> None:
    for p in pages:
        bad = [e for e in p.console_errors if "NoModificationAllowed" in e or "database is locked" in e]
        assert not bad, bad


@pytest.fixture
def context(persistent_context: Any) -> Any:
    # A profile on disk, as a person's browser has: OPFS in an incognito-like
    # context lives in memory behind a slower path (a write costs ~10x more).
    return persistent_context()


def test_three_tabs_write_concurrently_through_one_owner(context: Any, server: Any) -> None:
    tabs = [open_tab(context, server) for _ in range(3)]
    owners = [run_py(t, CONNECT)["owner"] for t in tabs]
    assert owners == [True, False, False]  # the first tab's worker holds the database
    for i, t in enumerate(tabs):
        run_py(t, WRITE_1000)
        start_py(t, f"await write_all('tab{i}')")
    results = [wait_py_job(t) for t in tabs]
    assert [r[0] for r in results] == [1000, 1000, 1000]
    out = run_py(
        tabs[1],
        """
rs = await db.execute("SELECT count(*), count(DISTINCT id) FROM tags WHERE id LIKE 'tab%'")
ob = await db.execute("SELECT count(*), count(DISTINCT pk) FROM _edgesql_outbox WHERE tbl = 'tags'")
ic = (await db.execute("PRAGMA integrity_check")).scalar()
json.dumps([list(rs.rows[0]), list(ob.rows[0]), ic])
""",
    )
    assert out == [[3000, 3000], [3000, 3000], "ok"]
    no_lock_errors(tabs)


def test_closing_the_owner_mid_write_loses_nothing(context: Any, server: Any) -> None:
    tabs = [open_tab(context, server) for _ in range(3)]
    assert [run_py(t, CONNECT.replace("tabs.db", "handoff.db"))["owner"] for t in tabs] == [
        True,
        False,
        False,
    ]
    for i, t in enumerate(tabs):
        run_py(t, WRITE_1000)
        start_py(t, f"await write_all('tab{i}')")
    # Let everyone get going, then close the owner's tab in the middle of it.
    deadline = time.monotonic() + 30
    while (
        run_py(tabs[1], "(await db.execute(\"SELECT count(*) FROM tags WHERE id LIKE 'tab1-%'\")).scalar()")
        < 200
    ):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    tabs[0].close(run_before_unload=False)
    b, c = wait_py_job(tabs[1]), wait_py_job(tabs[2])
    assert b[0] == 1000 and c[0] == 1000, (b, c)
    out = run_py(
        tabs[2],
        """
rows = {}
for prefix in ("tab0", "tab1", "tab2"):
    rs = await db.execute("SELECT count(*), count(DISTINCT id) FROM tags WHERE id LIKE ? || '-%'", (prefix,))
    rows[prefix] = list(rs.rows[0])
dup = (await db.execute("SELECT count(*) FROM (SELECT pk FROM _edgesql_outbox GROUP BY pk HAVING count(*) > 1)")).scalar()
missing = (await db.execute("SELECT count(*) FROM tags WHERE NOT EXISTS (SELECT 1 FROM _edgesql_outbox o "
                            "WHERE o.tbl = 'tags' AND o.pk = '[\\"t' || hex(tags.id) || '\\"]')")).scalar()
ic = (await db.execute("PRAGMA integrity_check")).scalar()
json.dumps([rows, dup, missing, ic, db.info.extra])
""",
    )
    rows, dup, missing, ic, _extra = out
    assert rows["tab1"] == [1000, 1000] and rows["tab2"] == [1000, 1000]
    assert rows["tab0"][0] == rows["tab0"][1] <= 1000  # what the closed tab committed, once each
    assert dup == 0 and missing == 0 and ic == "ok"
    no_lock_errors(tabs[1:])


def test_a_live_query_in_one_tab_sees_another_tabs_write_fast(context: Any, server: Any) -> None:
    tabs = [open_tab(context, server) for _ in range(3)]
    for t in tabs:
        run_py(t, CONNECT.replace("tabs.db", "live.db"))
    _a, b, c = tabs
    run_py(
        b,
        """
import time
w = db.watch("SELECT count(*) FROM tags WHERE name = 'live'")
await w.__anext__()
async def wait_change():
    rs = await asyncio.wait_for(w.__anext__(), 5)
    return json.dumps([rs.scalar(), time.time() * 1000])
""",
    )
    start_py(b, "await wait_change()")
    time.sleep(0.2)  # B is waiting on its live query
    written_at = run_py(
        c,
        """
import time
await db.execute("INSERT INTO tags (id, project_id, name) VALUES ('x', 'p', 'live')")
time.time() * 1000
""",
    )
    count, seen_at = wait_py_job(b)
    assert count == 1
    assert seen_at - written_at < 200, f"tab B saw tab C's write after {seen_at - written_at:.0f} ms"
    no_lock_errors(tabs)
