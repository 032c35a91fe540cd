"""Where the browser has no OPFS, edgesql opens the database in memory, visibly."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tests.conftest import OutsideRequests, launch_options, open_console, run_py

pytestmark = pytest.mark.browser


@pytest.fixture
def no_opfs_page(playwright: Any, outside: OutsideRequests, server: Any) -> Iterator[Any]:
    # A real Chromium with the origin private file system switched off, as in
    # browsers or modes that do not offer it.
    opts = launch_options()
    opts["args"] = [*opts["args"], "--disable-blink-features=FileSystemAccessOriginPrivate"]
    browser = playwright.chromium.launch(**opts)
    ctx = browser.new_context()
    outside.watch(ctx)
    page = ctx.new_page()
    logs: list[str] = []
    page.on("console", lambda m: logs.append(m.text))
    page.logs = logs
    yield open_console(page, server.url)
    browser.close()


def test_missing_opfs_falls_back_to_memory_visibly(no_opfs_page: Any) -> None:
    page = no_opfs_page
    out = run_py(
        page,
        """
import edgesql, json, logging
seen = []
class Keep(logging.Handler):
    def emit(self, record): seen.append(record.getMessage())
logging.getLogger("edgesql").addHandler(Keep())
db = await edgesql.connect("fallback.db")
await db.execute("CREATE TABLE t (id TEXT PRIMARY KEY)")
await db.execute("INSERT INTO t VALUES ('works')")
rows = (await db.execute("SELECT id FROM t")).rows
json.dumps([db.info.storage, db.info.persistent, db.info.warning, seen, [list(r) for r in rows]])
""",
    )
    storage, persistent, warning, seen, rows = out
    assert storage == "memory" and persistent is False
    assert "OPFS is not available" in warning and "lost on reload" in warning
    assert any("OPFS is not available" in s for s in seen), seen
    assert rows == [["works"]]
    assert any("OPFS is not available" in line for line in page.logs)
    # The console page shows it too.
    assert "in memory" in page.inner_text("#storage")
