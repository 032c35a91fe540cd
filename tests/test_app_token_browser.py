"""The demo app against a serve.py that needs a token, in real Chromium (issue 12, finding 8).

The app had no way to send a token, so anyone serving it beyond localhost
reached for ``--insecure-no-auth``. Now it asks for the token when the server
turns it away, keeps it on the device (localStorage), sends it on every sync,
and offers to change it in the sidebar.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect
from tests.conftest import OutsideRequests, Server, run_py, start_server
from tests.sync.primaries import PrimaryServer

pytestmark = pytest.mark.browser

TOKEN = "app token with spaces 0123456789"
READY_MS = 90_000


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("token-app"), "--auth-token", TOKEN)
    yield server
    server.stop()


def wait_ready(page: Any, state: str) -> None:
    """Wait until the app is on screen ("true") or has given up ("error"): each attempt to
    start clears <html data-ready> first, so this waits for the outcome of the latest one."""
    page.wait_for_function(f"document.documentElement.dataset.ready === {state!r}", timeout=READY_MS)


def test_the_app_asks_for_the_token_keeps_it_and_syncs_with_it(
    browser: Any, token_server: Server, outside: OutsideRequests
) -> None:
    context = browser.new_context()
    outside.watch(context)
    sent: list[str | None] = []
    context.on(
        "request",
        lambda r: (
            sent.append(r.headers.get("authorization")) if r.url.split("?")[0].endswith("/sync") else None
        ),
    )
    try:
        page = context.new_page()
        page.goto(token_server.url + "/")
        # No token yet: the server turns the device away, and the app asks for one.
        wait_ready(page, "error")
        assert page.evaluate("document.documentElement.dataset.error") == "unauthorized"
        expect(page.locator("#fatal-title")).to_have_text("This sync server needs a token")
        field = page.locator("#token-input")
        expect(field).to_be_visible()
        expect(field).to_be_focused()

        field.fill("not the token")
        field.press("Enter")
        expect(page.locator("#fatal-title")).to_have_text("The sync server refused this token")
        assert page.evaluate("document.documentElement.dataset.ready") == "error"

        field.fill(f"  {TOKEN}\n")  # pasted with the blanks around it
        page.locator("#token-form button[type=submit]").click()
        wait_ready(page, "true")
        expect(page.locator("#sync")).to_have_attribute("data-state", "on", timeout=15_000)
        assert page.evaluate("localStorage.getItem('edgesql-demo:sync-token')") == TOKEN

        # A write goes to the primary, with the token.
        page.click("#new-project")
        page.keyboard.type("Token project")
        page.keyboard.press("Enter")
        expect(page.locator('.project[aria-current="true"] .project-name')).to_have_text("Token project")
        primary = PrimaryServer("sqlite", token_server, None)
        deadline = time.monotonic() + 20
        while primary.query("SELECT name FROM projects") != [("Token project",)]:
            if time.monotonic() > deadline:
                why = run_py(page, "str(await db.sync_status())")
                rejected = run_py(page, "(await db.execute('SELECT * FROM _edgesql_rejected')).rows")
                raise AssertionError(f"the project did not reach the primary: {why}; rejected: {rejected}")
            time.sleep(0.2)
        assert sent and set(sent) == {f"Bearer {TOKEN}"}

        # The next start on this device needs no typing.
        page.reload()
        wait_ready(page, "true")
        expect(page.locator("#sync")).to_have_attribute("data-state", "on", timeout=15_000)

        # The sidebar says a token is kept, and changes it: a wrong one is refused at the next start.
        expect(page.locator("#sync-token")).to_have_attribute("placeholder", "saved on this device")
        page.fill("#sync-token", "a wrong one")
        with page.expect_navigation():
            page.locator("#sync-token-form button[type=submit]").click()
        wait_ready(page, "error")
        expect(page.locator("#fatal-title")).to_have_text("The sync server refused this token")
        page.fill("#token-input", TOKEN)
        page.press("#token-input", "Enter")
        wait_ready(page, "true")
        expect(page.locator("#sync")).to_have_attribute("data-state", "on", timeout=15_000)
    finally:
        context.close()
