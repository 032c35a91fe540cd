"""An idle device sends (almost) no sync requests, with the devtools console open.

The console opens the app's database with the default ``sync_interval`` (30.0
seconds, a float), and Python's floats reach the worker as codec.js ``Real``
objects: ``interval * 1000`` was NaN, ``setTimeout(NaN)`` fires at once, and every
idle round started the next one — about 20 ``POST /sync`` a second per database,
forever (issue 16: 618 requests in 20 s with two databases open). The page is
opened through :class:`FaultProxy` with its faults off, which logs every
``POST /sync`` the worker sends: a browser's ``fetch`` from a worker is not seen
by Playwright's request events here (the service worker relays it).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from tests.conftest import Server, open_console, run_py
from tests.sync.faultproxy import FaultProxy
from tests.sync.faults import FaultPlan

pytestmark = pytest.mark.browser

#: How long the device idles while its requests are counted.
IDLE_S = 20
#: At most this many sync requests in that time: one round per 30 s interval per database,
#: and one more if an interval happens to end on each side of the window.
MOST = 2


def test_an_idle_console_with_two_databases_sends_almost_nothing(
    browser: Any, server: Server, outside: Any
) -> None:
    plan = FaultPlan(0, enabled=False)  # no faults: the proxy only forwards and logs
    proxy = FaultProxy(server.url, plan).start()
    ctx = browser.new_context()
    outside.watch(ctx)
    try:
        page = open_console(ctx.new_page(), proxy.url)
        # A second synced database in the same tab, with the default interval as well.
        run_py(page, 'import edgesql\nsecond = await edgesql.connect("second.db", sync_url="/sync")')
        time.sleep(2)  # the first rounds after opening (schema, first pull) are over
        before = len(plan.events)
        time.sleep(IDLE_S)  # the console refreshes its sync status every 0.5 s meanwhile
        sent = plan.events[before:]
        assert len(sent) <= MOST, (
            f"{len(sent)} POST /sync in {IDLE_S} s of idling, from "
            f"{len({e.client for e in sent})} replica(s): the sync loop spins"
        )
        # And it still syncs: a write goes out at once, not at the next interval.
        run_py(page, "await second.execute(\"INSERT INTO projects (id, name) VALUES ('idle', 'Idle')\")")
        deadline = time.monotonic() + 5
        while run_py(page, "(await second.sync_status()).pending") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert run_py(page, "(await second.sync_status()).pending") == 0
    finally:
        ctx.close()
        proxy.stop()
