"""Data written in the browser survives a reload and a browser restart (OPFS)."""

from __future__ import annotations

from typing import Any

import pytest
from tests.conftest import open_console, run_py

pytestmark = pytest.mark.browser

WRITE = """
import edgesql
db = await edgesql.connect("persist.db")
await db.execute("CREATE TABLE IF NOT EXISTS notes (id TEXT PRIMARY KEY, body TEXT, n INTEGER, b BLOB)")
await db.executemany("INSERT INTO notes VALUES (?, ?, ?, ?)",
                     [(f"n{i}", f"note {i} ✓", 2**62 + i, bytes([i]) * 3) for i in range(100)])
async with db.transaction():
    await db.execute("UPDATE notes SET body = 'edited' WHERE id = 'n7'")
await db.close()
db.info.storage
"""

READ = """
import edgesql, json
db = await edgesql.connect("persist.db")
rs = await db.execute("SELECT count(*), max(n), (SELECT body FROM notes WHERE id = 'n7'), "
                      "(SELECT hex(b) FROM notes WHERE id = 'n9') FROM notes")
out = json.dumps([list(rs.rows[0]), db.info.storage])
await db.close()
out
"""


def test_rows_survive_reload(context: Any, server: Any) -> None:
    page = open_console(context.new_page(), server.url)
    assert run_py(page, WRITE) == "opfs-sahpool"
    page.reload()
    open_console(page, server.url)
    assert run_py(page, READ) == [[100, 2**62 + 99, "edited", "090909"], "opfs-sahpool"]


def test_rows_survive_browser_restart(persistent_context: Any, server: Any) -> None:
    ctx = persistent_context()
    page = open_console(ctx.new_page(), server.url)
    assert run_py(page, WRITE) == "opfs-sahpool"
    ctx.close()
    ctx = persistent_context()
    page = open_console(ctx.new_page(), server.url)
    assert run_py(page, READ) == [[100, 2**62 + 99, "edited", "090909"], "opfs-sahpool"]


def test_console_runs_sql_and_shows_errors(context: Any, server: Any) -> None:
    page = open_console(context.new_page(), server.url)
    sql = page.locator("#sql")
    sql.fill(
        "CREATE TABLE IF NOT EXISTS t (id TEXT PRIMARY KEY, v);\n"
        "INSERT INTO t VALUES ('a', 1.5);\nSELECT * FROM t;"
    )
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("table.result td.num")
    assert page.locator("table.result tbody tr").count() == 1
    assert "1.5" in page.inner_text("#output")
    sql.fill("INSERT INTO t VALUES ('a', 2)")
    page.click("#run")
    err = page.wait_for_selector("#output .error")
    text = err.inner_text()
    assert "IntegrityError" in text and "SQLITE_CONSTRAINT_PRIMARYKEY" in text
    assert "OPFS" in page.inner_text("#storage")
