"""The demo app while a long query runs in the devtools of another tab.

The app's tab opened the database first, so its worker owns it and runs the
devtools tab's query too. Before, the app froze for the query's whole
length and rendered empty panels; now each of its calls gives up after the
app's time limit (``STATEMENT_TIMEOUT_S`` in web/app/main.py), its views say
they are waiting and ask again, and a write that gave up says it was not
saved. Cancelling the query in the devtools brings everything back.
The screenshot (test-results/app-waiting.png) shows the waiting banner.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect
from tests.cases.long_cases import LONG_READ
from tests.conftest import ROOT, OutsideRequests, Server, open_console, start_server

pytestmark = pytest.mark.browser

READY_MS = 90_000


@pytest.fixture
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("busy-data"))
    yield server
    server.stop()


def open_app(page: Any, base_url: str) -> Any:
    page.goto(f"{base_url}/")
    page.wait_for_function("document.documentElement.dataset.ready", timeout=READY_MS)
    assert page.evaluate("document.documentElement.dataset.ready") == "true", page.inner_text("body")
    return page


def test_the_app_says_it_waits_while_another_tab_runs_a_long_query(
    browser: Any, app_server: Server, outside: OutsideRequests
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    outside.watch(context)
    app = open_app(context.new_page(), app_server.url)
    app.get_by_role("button", name="Add sample projects").click()
    projects = app.locator("#projects .project")
    expect(projects.nth(1)).to_be_visible(timeout=15_000)
    expect(app.locator("#tasks .task").first).to_be_visible()
    assert app.evaluate("document.documentElement.dataset.dbWaiting ?? 'never'") == "never"

    devtools = open_console(context.new_page(), app_server.url)
    devtools.locator("#sql").fill(LONG_READ)
    devtools.click("#run")
    expect(devtools.locator("#cancel")).to_be_visible()

    # The app's tab: another project's tasks must wait for the query. The page says so.
    app.bring_to_front()
    app.locator('#projects .project:not([aria-current="true"])').first.click()
    banner = app.locator("#db-waiting")
    expect(banner).to_be_visible(timeout=10_000)
    expect(banner).to_contain_text("Waiting for the database")
    app.screenshot(path=str(ROOT / "test-results" / "app-waiting.png"))

    # A task added meanwhile is not saved, and says why, within the time limit (not the query's minutes).
    app.locator("#new-task").fill("Added while the database was busy")
    app.keyboard.press("Enter")
    expect(app.locator("#task-error")).to_contain_text("it did not run", timeout=10_000)

    devtools.bring_to_front()
    devtools.click("#cancel")
    expect(devtools.locator("#output .error")).to_contain_text("SQLITE_INTERRUPT")

    app.bring_to_front()
    expect(banner).to_be_hidden(timeout=10_000)
    expect(app.locator("#tasks .task").first).to_be_visible()
    expect(app.locator("#tasks")).not_to_contain_text("Added while the database was busy")
    # And the app works as before.
    app.locator("#new-task").fill("Added afterwards")
    app.keyboard.press("Enter")
    expect(app.locator("#tasks")).to_contain_text("Added afterwards")
    context.close()
