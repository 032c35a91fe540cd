"""Live queries in real Chromium: the shared cases, and changes pulled from the primary."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.aio import run
from tests.cases.watch_cases import CASES
from tests.conftest import install_test_modules, open_console, run_cases_code, run_py

import edgesql

pytestmark = pytest.mark.browser

RUN_ALL = run_cases_code("watch_cases", "watch")


@pytest.fixture(scope="module")
def results(browser: Any, server: Any) -> dict[str, str]:
    ctx = browser.new_context()
    page = open_console(ctx.new_page(), server.url)
    install_test_modules(page)
    out = run_py(page, RUN_ALL)
    ctx.close()
    return out if isinstance(out, dict) else json.loads(out)


@pytest.mark.parametrize("name", sorted(CASES))
def test_watch_case_in_browser(name: str, results: dict[str, str]) -> None:
    assert results[name] == "ok", f"in the browser:\n{results[name]}"


def test_pulled_changes_update_a_live_query(context: Any, server: Any) -> None:
    page = open_console(context.new_page(), server.url)
    run_py(
        page,
        """
import edgesql, json, asyncio
db = await edgesql.connect("watched.db", sync_url="/sync", sync_interval=0)
await db.sync()
w = db.watch("SELECT name FROM tags WHERE name LIKE 'pulled-%' ORDER BY name")
first = await w.__anext__()
json.dumps([list(r) for r in first.rows])
""",
    )

    async def elsewhere() -> None:
        async with edgesql.connect(":memory:", sync_url=server.url + "/sync", sync_interval=None) as db:
            await db.execute("INSERT INTO projects (id, name) VALUES ('p', 'Watched')")
            await db.executemany(
                "INSERT INTO tags (id, project_id, name) VALUES (?, 'p', ?)",
                [("x1", "pulled-a"), ("x2", "pulled-b")],
            )
            await db.sync()

    run(elsewhere())
    out = run_py(
        page,
        """
await db.sync()
rs = await asyncio.wait_for(w.__anext__(), 5)
json.dumps([r[0] for r in rs.rows])
""",
    )
    assert out == ["pulled-a", "pulled-b"]
