"""The demo app with people (issues 15 and 17), as three people would use it, in Chromium.

serve.py runs the app's own schema folder, access rules included, on loopback: the
app asks who is using it and signs in with serve.py's development tokens. Alice
shares a project with Bob; Bob sees it and only it; Carol sees nothing of it. Bob
edits a task offline that Alice deletes meanwhile: when Bob is back online the task
is gone on his device too, and the app tells him what happened to his edit until he
dismisses it; his console's Conflicts tab keeps the record. Screenshots of each person's page go to test-results/ (look at them).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import ROOT, Server, open_console, start_server
from tests.sync.primaries import PrimaryServer

pytestmark = pytest.mark.browser

SHOTS = ROOT / "test-results"
README_SHOT = ROOT / "docs" / "screenshot-users.png"


def side_by_side(left: Path, right: Path, out: Path) -> None:
    """Two people's pages as one picture, for the README."""
    from PIL import Image

    a, b = Image.open(left), Image.open(right)
    both = Image.new("RGB", (a.width + b.width + 16, max(a.height, b.height)), "#d0d7de")
    both.paste(a, (0, 0))
    both.paste(b, (a.width + 16, 0))
    both.save(out, optimize=True)


@pytest.fixture(scope="module")
def people_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("people"), "--schema", str(ROOT / "web" / "app" / "schema"))
    yield s
    s.stop()


def py(page: Any, code: str) -> Any:
    """Run Python in the app's namespace (``db``, ``app``)."""
    return page.evaluate("(code) => pyodide.runPythonAsync(code).then((r) => r?.toJs ? r.toJs() : r)", code)


def sign_in(browser: Any, outside: Any, server: Server, name: str) -> tuple[Any, Any]:
    ctx = browser.new_context(viewport={"width": 1200, "height": 760})
    outside.watch(ctx)
    page = ctx.new_page()
    page.goto(server.url + "/")
    page.wait_for_selector("html[data-ready='error'][data-error='sign_in']", timeout=90_000)
    assert page.is_visible("#signin-form") and not page.is_visible("#retry")
    page.fill("#signin-input", name)
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("html[data-ready='true']", timeout=90_000)
    assert page.inner_text("#signed-in-name") == name
    return ctx, page


def wait_for(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def test_people_share_a_project_and_an_edit_that_lost_is_told(
    browser: Any, outside: Any, people_server: Server
) -> None:
    server = people_server
    primary = PrimaryServer("sqlite", server, None)
    SHOTS.mkdir(exist_ok=True)

    actx, alice = sign_in(browser, outside, server, "alice")
    alice.fill("#new-project", "Groceries")
    alice.press("#new-project", "Enter")
    alice.wait_for_selector("#view-project:not([hidden])")
    alice.fill("#new-task", "Buy milk")
    alice.press("#new-task", "Enter")
    alice.fill("#member-input", "bob")
    alice.press("#member-input", "Enter")
    alice.wait_for_selector("#member-list >> text=bob")
    py(alice, "await db.sync()")
    assert primary.query("SELECT owner FROM projects WHERE name = 'Groceries'") == [("alice",)]

    bctx, bob = sign_in(browser, outside, server, "bob")
    bob.wait_for_selector("#tasks >> text=Buy milk", timeout=30_000)
    assert bob.input_value("#project-name") == "Groceries"
    members = bob.inner_text("#member-list")
    assert "alice" in members and "owner" in members and "bob (you)" in members

    cctx, carol = sign_in(browser, outside, server, "carol")
    py(carol, "await db.sync()")
    assert carol.is_visible("#view-welcome")  # nothing shared with Carol: her own empty app
    assert py(carol, "(await db.execute('SELECT count(*) FROM tasks')).scalar()") == 0

    # Bob edits offline; Alice deletes the task meanwhile.
    bctx.set_offline(True)
    bob.click("#tasks >> text=Buy milk")
    bob.fill("#detail-title", "Buy oat milk")
    bob.press("#detail-title", "Enter")
    assert wait_for(lambda: py(bob, "(await db.sync_status()).pending") > 0)
    alice.click("#tasks >> text=Buy milk")
    alice.click("[data-action=delete-task]")
    alice.click("[data-action=delete-task]")  # (the second click confirms)
    py(alice, "await db.sync()")
    assert primary.query("SELECT count(*) FROM tasks") == [(0,)]

    # Back online, Bob's device syncs by itself (a sync called at once could still race
    # the network coming back in the worker: "Failed to fetch").
    bctx.set_offline(False)
    notice = bob.wait_for_selector("#notices .notice", timeout=30_000)
    text = notice.inner_text()
    assert "Buy oat milk" in text and "deleted on another device" in text, text
    assert py(bob, "(await db.execute('SELECT count(*) FROM tasks')).scalar()") == 0
    bob.screenshot(path=str(SHOTS / "app-users-bob-notice.png"))
    alice.screenshot(path=str(SHOTS / "app-users-alice.png"))
    side_by_side(SHOTS / "app-users-alice.png", SHOTS / "app-users-bob-notice.png", README_SHOT)
    bob.click("#notices [data-action=dismiss-conflict]")
    bob.wait_for_selector("#notices", state="hidden", timeout=10_000)
    assert py(bob, "len(await db.conflicts())") == 0
    # The console on Bob's device lists it too (dismissed, kept for the record).
    console = open_console(bctx.new_page(), server.url)
    console.click("#tab-conflicts")
    panel = console.locator("#panel-conflicts")
    panel.locator("td >> text=deleted").wait_for(timeout=30_000)
    assert "Buy oat milk" in panel.inner_text()
    for ctx in (actx, bctx, cctx):
        ctx.close()
