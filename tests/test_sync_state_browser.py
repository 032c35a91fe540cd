"""The app's sync indicator tells the truth, and edits leave as soon as the server is back.

The demo app in Chromium against a serve.py of the test's own, which the tests
stop and start again on the same port and data:

* the server stopped while the network is fine: the header says "Server
  unreachable", not "Offline" (``status.state == "unreachable"``); the edit made
  meanwhile reaches the primary within a few seconds of serve.py accepting
  connections again (the page is visible and the device online, so the worker
  probes about every second instead of backing off to a minute), and the header
  goes back to "Synced";
* the device offline (Playwright's offline emulation): "Offline", and the edit
  goes out when the device is back online;
* a sync that fails for a reason someone must fix (issue 16: ``DROP TABLE tags``
  on the device, then another device adds a tag, and every pull fails): the
  header turns red with the error's message, and back to "Synced" once fixed.

Screenshots of each state go to test-results/ (looked at when the test was written).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from tests.aio import run
from tests.conftest import ROOT, Server, run_py, start_server, wait_py

import edgesql

pytestmark = pytest.mark.browser

SHOTS = ROOT / "test-results"
READY_MS = 90_000
#: From serve.py accepting connections again to the edit acknowledged: the worker probes
#: every ~1 s (RULES.probe_ms, jittered up to 1.25 s), plus the round itself.
BACK_WITHIN_S = 3.0


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Server]:
    server = start_server(tmp_path / "data")
    yield server
    server.stop()


def restart(server: Server) -> Server:
    port = int(server.url.rsplit(":", 1)[1])
    return start_server(server.data, *server.args, port=port)


def open_app(page: Any, base_url: str) -> Any:
    page.goto(f"{base_url}/")
    page.wait_for_function("document.documentElement.dataset.ready", timeout=READY_MS)
    state = page.evaluate("document.documentElement.dataset.ready")
    assert state == "true", f"the app did not start ({state}): {page.inner_text('body')}"
    expect(page.locator("#sync")).to_have_attribute("data-state", "on", timeout=15_000)
    return page


#: Is element `id` drawn in `color` (a CSS colour, resolved the same way)?
SAME_COLOR = """([id, color]) => {
    const probe = document.createElement('span');
    probe.style.color = color;
    document.body.append(probe);
    const want = getComputedStyle(probe).color;
    probe.remove();
    return getComputedStyle(document.getElementById(id)).color === want;
}"""


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"sync-state-{name}.png"))


def status(page: Any) -> dict[str, Any]:
    return run_py(
        page,
        "import json\nst = await db.sync_status()\n"
        "json.dumps(dict(state=st.state, device_online=st.device_online, online=st.online, "
        "pending=st.pending, last_error=st.last_error, error_code=st.error_code))",
    )


def primary_has(server: Server, sql: str) -> list[Any]:
    async def read() -> list[Any]:
        async with edgesql.connect(":memory:", sync_url=server.url + "/sync", sync_interval=None) as db:
            await db.sync()
            return [list(r) for r in (await db.execute(sql)).rows]

    return run(read())


def test_server_stopped_says_unreachable_and_edits_leave_soon_after_it_returns(
    browser: Any, own_server: Server, outside: Any
) -> None:
    server = own_server
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    outside.watch(ctx)
    try:
        page = open_app(ctx.new_page(), server.url)
        server.stop()
        run_py(
            page, "await db.execute(\"INSERT INTO projects (id, name) VALUES ('down', 'Made while down')\")"
        )
        label = page.locator("#sync-label")
        expect(label).to_contain_text("Server unreachable", timeout=10_000)
        expect(page.locator("#sync")).to_have_attribute("data-state", "off")
        st = status(page)
        assert st["state"] == "unreachable" and st["device_online"] is True and st["pending"] >= 1, st
        assert "cannot reach the primary" in st["last_error"] and st["error_code"] == "offline", st
        shot(page, "unreachable")
        # Long enough for an exponential backoff to reach many seconds (0.5, 1, 2, 4, 8 s...).
        time.sleep(10)
        assert status(page)["state"] == "unreachable"

        server = restart(server)  # returns once serve.py accepts connections
        back = time.monotonic()
        wait_py(page, "(await db.sync_status()).pending", 0, timeout=BACK_WITHIN_S)
        took = time.monotonic() - back
        expect(label).to_contain_text("Synced", timeout=5_000)
        expect(page.locator("#sync")).to_have_attribute("data-state", "on")
        assert status(page)["state"] == "synced"
        shot(page, "back")
        assert primary_has(server, "SELECT name FROM projects WHERE id = 'down'") == [["Made while down"]]
        assert took < BACK_WITHIN_S
    finally:
        ctx.close()
        server.stop()


def test_the_device_offline_says_offline_and_syncs_when_back(
    browser: Any, own_server: Server, outside: Any
) -> None:
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    outside.watch(ctx)
    try:
        page = open_app(ctx.new_page(), own_server.url)
        ctx.set_offline(True)  # navigator.onLine false, and every request fails
        run_py(page, "await db.execute(\"INSERT INTO projects (id, name) VALUES ('away', 'Made offline')\")")
        expect(page.locator("#sync-label")).to_have_text("Offline", timeout=10_000)
        expect(page.locator("#sync")).to_have_attribute("data-state", "off")
        st = status(page)
        assert st["state"] == "offline" and st["device_online"] is False and st["pending"] == 1, st
        shot(page, "offline")
        ctx.set_offline(False)  # the 'online' event syncs at once
        wait_py(page, "(await db.sync_status()).pending", 0, timeout=BACK_WITHIN_S)
        expect(page.locator("#sync-label")).to_contain_text("Synced", timeout=5_000)
        assert status(page)["state"] == "synced"
    finally:
        ctx.close()


def test_a_sync_that_keeps_failing_shows_its_error_in_red_until_fixed(
    browser: Any, own_server: Server, outside: Any
) -> None:
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    outside.watch(ctx)
    try:
        page = open_app(ctx.new_page(), own_server.url)
        tags_sql = run_py(
            page, "(await db.execute(\"SELECT sql FROM sqlite_schema WHERE name = 'tags'\")).scalar()"
        )
        run_py(page, 'await db.execute("DROP TABLE tags")')
        # Another device adds a tag: this device can no longer apply what it pulls.
        run(other_device_adds_a_tag(own_server))
        page.click("#sync-button")
        expect(page.locator("#sync")).to_have_attribute("data-state", "error", timeout=10_000)
        label = page.locator("#sync-label")
        expect(label).to_contain_text("Sync error")
        expect(label).to_contain_text("tags")
        assert page.evaluate(SAME_COLOR, ["sync-label", "var(--danger)"]), "the error is shown in red"
        st = status(page)
        assert st["state"] == "error" and "tags" in st["last_error"] and st["error_code"], st
        shot(page, "error")

        run_py(page, f"await db.execute({tags_sql!r})")  # fixed: the table is back
        page.click("#sync-button")
        expect(page.locator("#sync")).to_have_attribute("data-state", "on", timeout=10_000)
        expect(label).to_contain_text("Synced")
        assert status(page)["state"] == "synced"
        assert run_py(
            page, "(await db.execute(\"SELECT name FROM tags WHERE id = 'elsewhere'\")).scalar()"
        ) == ("From elsewhere")
    finally:
        ctx.close()


async def other_device_adds_a_tag(server: Server) -> None:
    async with edgesql.connect(":memory:", sync_url=server.url + "/sync", sync_interval=None) as db:
        await db.sync()
        await db.execute("INSERT INTO projects (id, name) VALUES ('p-elsewhere', 'Elsewhere')")
        cols = [r[1] for r in (await db.execute("PRAGMA table_info(tags)")).rows]
        values = {"id": "elsewhere", "name": "From elsewhere", "project_id": "p-elsewhere"}
        names = [c for c in values if c in cols]
        await db.execute(
            f"INSERT INTO tags ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})",
            [values[c] for c in names],
        )
        await db.sync()
