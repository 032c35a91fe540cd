"""A sync request that fails leaves the session's transaction as it was.

Every answer's `tx` tells Python whether the session holds a transaction.
Sync requests do not touch it, so their answers must not say: a failed
`sync_status()` inside a transaction used to answer `tx: false`, and Python
then refused to commit a transaction the worker still held open.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.conftest import open_console, run_py

pytestmark = pytest.mark.browser

CODE = """
import edgesql, json
# Not `db`: console.py polls its own `db` global (sync status) every half second.
local = await edgesql.connect("no-sync.db")
await local.execute("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY)")
await local.execute("DELETE FROM notes")
refused = None
async with local.transaction():
    await local.execute("INSERT INTO notes VALUES (1)")
    try:
        await local.sync_status()
    except edgesql.ProgrammingError as e:
        refused = str(e)
    inside = local.in_transaction
json.dumps([refused, inside, local.in_transaction, (await local.execute("SELECT count(*) FROM notes")).scalar()])
"""


def test_a_failed_sync_request_inside_a_transaction(context: Any, server: Any) -> None:
    page = open_console(context.new_page(), server.url)
    refused, inside, after, count = run_py(page, CODE)
    assert "does not sync" in refused
    assert (inside, after, count) == (True, False, 1)
