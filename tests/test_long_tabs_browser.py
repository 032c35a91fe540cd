"""A long statement in one tab, the app in another (one browser profile, one database).

The tab that opened the database first owns it: its DB worker runs every
tab's statements. So a long query typed into the devtools of a second tab
runs in the app tab's worker, and nothing that worker is asked meanwhile is
read until the statement ends. These tests are the person's view of it: the
devtools tab can stop its query, and the app tab's own calls give up after
their time limit without running, instead of hanging until the query ends.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from tests.cases.long_cases import LONG_READ
from tests.conftest import OutsideRequests, launch_options, open_console, run_py

pytestmark = pytest.mark.browser

DB = "long-tabs.db"


def start_py(page: Any, code: str) -> None:
    """Start Python in the page without waiting for it; finish_py() collects its value."""
    page.evaluate(
        """(code) => {
            window.__job = pyodide.runPythonAsync(code).then(
                (r) => ({ok: true, value: String(r)}), (e) => ({ok: false, value: String(e)}));
        }""",
        code,
    )


def finish_py(page: Any, timeout_s: float = 30) -> Any:
    page.wait_for_function("window.__job !== undefined", timeout=timeout_s * 1000)
    out = page.evaluate(
        "async (ms) => await Promise.race([window.__job, new Promise((r) => setTimeout(() => r(null), ms))])",
        timeout_s * 1000,
    )
    assert out is not None, f"the page's Python did not finish within {timeout_s} s"
    assert out["ok"], out["value"]
    return json.loads(out["value"])


LONG_IN_DEVTOOLS = f"""
import json, time, edgesql
t0 = time.monotonic()
try:
    await devtools_db.execute({LONG_READ!r})
    outcome = ["finished", None, ""]
except edgesql.OperationalError as e:
    outcome = ["stopped", e.sqlite_errorcode, str(e)]
json.dumps(outcome + [time.monotonic() - t0])
"""


@pytest.fixture(scope="module")
def tabs(playwright: Any, server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    """The app's tab (it owns the database) and a devtools tab (it routes to the app's worker);
    one profile on disk for the module, as a person's browser."""
    outside = OutsideRequests()
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path_factory.mktemp("long-tabs") / "profile"), **launch_options()
    )
    outside.watch(context)
    app = open_console(context.new_page(), server.url)
    devtools = open_console(context.new_page(), server.url)
    owner = run_py(
        app,
        f"import edgesql, json\n"
        f"app_db = await edgesql.connect({DB!r}, statement_timeout=0.5)\n"
        "await app_db.execute('CREATE TABLE IF NOT EXISTS tasks (id INTEGER PRIMARY KEY, title TEXT)')\n"
        "json.dumps(app_db.info.extra['owner'])",
    )
    follower = run_py(
        devtools,
        f"import edgesql, json\ndevtools_db = await edgesql.connect({DB!r})\njson.dumps(devtools_db.info.extra['owner'])",
    )
    assert (owner, follower) == (True, False)
    yield app, devtools
    context.close()
    outside.check()


@pytest.fixture
def fresh_tasks(tabs: tuple[Any, Any]) -> tuple[Any, Any]:
    run_py(tabs[0], "await app_db.execute('DELETE FROM tasks'); 'ok'")
    return tabs


def test_devtools_tab_cancels_its_query_running_in_the_app_tabs_worker(fresh_tasks: tuple[Any, Any]) -> None:
    app, devtools = fresh_tasks
    start_py(devtools, LONG_IN_DEVTOOLS)
    time.sleep(0.5)  # the statement runs in the app tab's worker by now
    run_py(devtools, "devtools_db.interrupt(); 'ok'")
    outcome, code, message, took = finish_py(devtools)
    assert (outcome, code) == ("stopped", 9), message
    assert "db.interrupt() stopped this call" in message
    assert took < 5, took  # counting to two billion would take minutes
    # Both tabs go on as before.
    assert run_py(devtools, "(await devtools_db.execute('SELECT count(*) FROM tasks')).scalar()") == 0
    run_py(app, "await app_db.execute(\"INSERT INTO tasks (title) VALUES ('after')\"); 'ok'")


def test_app_tab_waits_at_most_its_time_limit_and_its_write_does_not_run(
    fresh_tasks: tuple[Any, Any],
) -> None:
    app, devtools = fresh_tasks
    start_py(devtools, LONG_IN_DEVTOOLS)
    time.sleep(0.5)
    waited = run_py(
        app,
        """
import json, time, edgesql
t0 = time.monotonic()
try:
    await app_db.execute("INSERT INTO tasks (title) VALUES ('added while busy')")
    got = ["written", None, ""]
except edgesql.OperationalError as e:
    got = ["gave up", e.sqlite_errorcode, str(e)]
json.dumps(got + [time.monotonic() - t0])
""",
    )
    outcome, code, message, took = waited
    assert (outcome, code) == ("gave up", 9), message
    assert "before it could start" in message and "it did not run" in message
    assert 0.4 < took < 3, took  # its 0.5 s, and a grace, not the devtools query's minutes
    run_py(devtools, "devtools_db.interrupt(); 'ok'")
    assert finish_py(devtools)[0] == "stopped"
    # The write that gave up never happens, even though the worker got to it in the end;
    # the app's next one does.
    run_py(app, "await app_db.execute(\"INSERT INTO tasks (title) VALUES ('after')\"); 'ok'")
    titles = run_py(app, "json.dumps([r[0] for r in (await app_db.execute('SELECT title FROM tasks')).rows])")
    assert titles == ["after"]
