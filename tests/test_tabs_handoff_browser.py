"""Requests in flight when the owner tab goes away, on both sides of the handoff.

The owner's worker is kept busy (a long query on another of its databases),
so the requests the other tabs send meanwhile are still unanswered when its
tab closes. The tab that takes over replays its own in-flight requests where
the database now is; the tab that follows the new owner sends its own again.
worker/request-log.js decides both with one rule: a COMMIT is looked up (here
it never ran, so it fails with SQLITE_ABORT and nothing of it stays), a write
outside a transaction runs exactly once.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from tests.conftest import open_console, run_py

pytestmark = pytest.mark.browser

SETUP = """
import edgesql, json
# Not `db`: console.py polls its own `db` global (sync status) every half second.
hdb = await edgesql.connect("handoff-tx.db")
await hdb.execute("CREATE TABLE IF NOT EXISTS items (id TEXT PRIMARY KEY)")
json.dumps(hdb.info.extra)
"""

#: Seconds of work in the owner's worker, during which it answers nothing; the page says when
#: the query is sent (the worker starts it at once: nothing else is queued there).
BUSY = """
import js
busy = await edgesql.connect("busy.db")
js.window.busySent = True
await busy.execute(
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 40000000) SELECT count(*) FROM c"
)
"""

RESULT = """
async def result(call):
    try:
        await call
        return json.dumps(["ok"])
    except edgesql.Error as e:
        return json.dumps([type(e).__name__, e.sqlite_errorname, str(e)])
"""


def start_py(page: Any, code: str) -> None:
    """Run Python in the page without waiting for it; finish() collects what it returned."""
    page.evaluate(
        "(code) => { window.__job = pyodide.runPythonAsync(code).then(String, (e) => 'error: ' + e); }", code
    )


def finish(page: Any) -> Any:
    out = page.evaluate("async () => await window.__job")
    assert not out.startswith("error: "), out
    return json.loads(out)


@pytest.fixture
def context(persistent_context: Any) -> Any:
    return persistent_context()


def test_a_commit_and_a_write_in_flight_when_the_owner_closes(context: Any, server: Any) -> None:
    owner, heir, follower = (open_console(context.new_page(), server.url) for _ in range(3))
    assert [run_py(p, SETUP)["owner"] for p in (owner, heir, follower)] == [True, False, False]
    for p in (heir, follower):
        run_py(p, RESULT)
    # The heir (first in line for the lock) holds a transaction with one write in it.
    run_py(
        heir,
        "tx = hdb.transaction()\nawait tx.__aenter__()\nawait hdb.execute(\"INSERT INTO items VALUES ('in-tx')\")",
    )
    start_py(owner, BUSY)
    owner.wait_for_function("window.busySent === true")
    time.sleep(0.2)  # the owner's worker is inside the long query now
    start_py(heir, "await result(tx.__aexit__(None, None, None))")  # COMMIT
    start_py(follower, "await result(hdb.execute(\"INSERT INTO items VALUES ('outside')\"))")
    time.sleep(0.5)  # both requests are with the owner, unanswered
    owner.close(run_before_unload=False)

    # The heir took over: its COMMIT never ran, and says so.
    kind, code, message = finish(heir)
    assert (kind, code) == ("OperationalError", "SQLITE_ABORT"), message
    assert "run the whole transaction again" in message
    # The follower's write went to the new owner and ran there, once.
    assert finish(follower) == ["ok"]
    rows = run_py(
        follower, 'json.dumps([r[0] for r in (await hdb.execute("SELECT id FROM items ORDER BY id")).rows])'
    )
    assert rows == ["outside"]
    # Both tabs go on: the transaction can be run again.
    run_py(
        heir, "async with hdb.transaction():\n    await hdb.execute(\"INSERT INTO items VALUES ('in-tx')\")"
    )
    assert run_py(follower, '(await hdb.execute("SELECT count(*) FROM items")).scalar()') == 2
