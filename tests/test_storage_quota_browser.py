"""A full storage quota gives a clear error and loses nothing that was acknowledged.

The origin's quota is set just above what it uses (CDP
``Storage.overrideQuotaForOrigin``, a real limit Chromium enforces on OPFS
writes), then rows are written until one fails:

* the failing write raises ``OperationalError`` with SQLite's ``SQLITE_FULL``
  and a message saying storage is full and what to do (before the fix: a bare
  "disk I/O error", SQLITE_IOERR), and changes nothing;
* reopened while still full, the database refuses to open with the same kind
  of error (before the fix: an empty database in memory, whose writes would be
  lost on reload), and the page shows it;
* with the quota back, every acknowledged write is there and
  ``PRAGMA integrity_check`` is ``ok``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.conftest import open_console, run_py

pytestmark = pytest.mark.browser

FILL = """
import edgesql, json
db = await edgesql.connect("quota.db")
await db.execute("CREATE TABLE IF NOT EXISTS big (id INTEGER PRIMARY KEY, body BLOB)")
acked = 0
err = None
for i in range(5000):
    try:
        await db.execute("INSERT INTO big (body) VALUES (randomblob(16000))")
        acked += 1
    except edgesql.Error as e:
        err = [type(e).__name__, e.sqlite_errorcode, e.sqlite_errorname, str(e)]
        break
batch_err = None
try:
    await db.batch(["INSERT INTO big (body) VALUES (randomblob(16000))"] * 20)
except edgesql.Error as e:
    batch_err = e.sqlite_errorname
count = (await db.execute("SELECT count(*) FROM big")).scalar()
json.dumps([acked, err, batch_err, count])
"""

READ = """
import edgesql, json
try:
    db = await edgesql.connect("quota.db")
    out = [db.info.storage, (await db.execute("SELECT count(*) FROM big")).scalar(),
           (await db.execute("PRAGMA integrity_check")).scalar()]
except edgesql.Error as e:
    out = [type(e).__name__, e.sqlite_errorname, str(e)]
json.dumps(out)
"""


def test_a_full_quota_is_a_clear_error_and_loses_no_acknowledged_write(
    browser: Any, server: Any, outside: Any
) -> None:
    # No service worker: its cache would count against the same quota while it fills in.
    ctx = browser.new_context(service_workers="block")
    outside.watch(ctx)
    page = open_console(ctx.new_page(), server.url)
    run_py(page, 'import edgesql\ndb0 = await edgesql.connect("quota.db")\nawait db0.close()')
    usage = page.evaluate("async () => (await navigator.storage.estimate()).usage")
    cdp = ctx.new_cdp_session(page)
    cdp.send("Storage.overrideQuotaForOrigin", {"origin": server.url, "quotaSize": usage + 1_500_000})
    try:
        acked, err, batch_err, count = run_py(page, FILL)
        assert 10 < acked < 5000, acked
        kind, code, name, message = err
        assert (kind, code, name) == ("OperationalError", 13, "SQLITE_FULL"), err
        assert "storage is full" in message and "Free space" in message, message
        assert batch_err == "SQLITE_FULL"
        assert count == acked  # the failing write and the failing batch changed nothing

        # Reopened while still full: a clear refusal, never an empty stand-in in memory.
        page.reload()
        page.wait_for_function("document.documentElement.dataset.ready")
        shown = page.inner_text("main")  # the console cannot open app.db either, and says why
        assert "OperationalError" in shown and "storage is full" in shown and "cannot be opened" in shown, (
            shown
        )
    finally:
        cdp.send("Storage.overrideQuotaForOrigin", {"origin": server.url})  # the quota back

    page.reload()
    open_console(page, server.url)
    assert run_py(page, READ) == ["opfs-sahpool", acked, "ok"]
    ctx.close()
    print("RELIABILITY", json.dumps({"quota": {"acked": acked, "error": name}}))
