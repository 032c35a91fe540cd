"""The installable offline app in real Chromium: manifest, service worker, offline start, updates.

Tests that stop or change their server start their own serve.py, from a copy
of the checkout (``copy_app``): a test may change what it serves without
touching the real ``web/``, no test-only server option is needed, and what the
browser cached cannot drift from what the server lists while someone edits
the checkout.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from tests.conftest import (
    ROOT,
    WAIT_ACTIVATED,
    OutsideRequests,
    Server,
    open_console,
    run_py,
    start_server,
)

pytestmark = pytest.mark.browser

FIXTURES = Path(__file__).parent / "fixtures"

ACTIVE_VERSION = "import('/pwa.js').then((m) => m.activeVersion())"


def copy_app(dest: Path) -> Path:
    """A checkout a test may change: the served code copied, node_modules linked."""
    dest.mkdir(parents=True)
    shutil.copy2(ROOT / "serve.py", dest / "serve.py")
    for name in ("py", "web", "worker"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    (dest / "node_modules").symlink_to(ROOT / "node_modules", target_is_directory=True)
    return dest


def wait_ready(page: Any) -> None:
    """Wait for the page's contract (<html data-ready>) after a reload or navigation."""
    page.wait_for_function("document.documentElement.dataset.ready", timeout=90_000)
    state = page.evaluate("document.documentElement.dataset.ready")
    assert state == "true", f"page failed to start: {page.inner_text('body')}"


def reload_ready(page: Any) -> Any:
    response = page.reload()
    wait_ready(page)
    return response


def serve_from_worker(page: Any) -> Any:
    """Wait until the service worker is activated, then reload so that it serves the page."""
    assert page.evaluate(WAIT_ACTIVATED) == "activated"
    response = reload_ready(page)
    assert response.from_service_worker
    assert page.evaluate("navigator.serviceWorker.controller !== null")
    return response


@pytest.fixture
def own_context(browser: Any, outside: OutsideRequests) -> Iterator[Any]:
    ctx = browser.new_context()
    outside.watch(ctx)
    yield ctx
    ctx.close()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Servers a test starts; all stopped at the end, whatever happened."""
    started: list[Server] = []
    yield started
    for s in started:
        s.stop()


def test_first_visit_renders_and_is_installable(persistent_context: Any, server: Any) -> None:
    # A profile on disk: Chromium never offers to install from an incognito-like context.
    context = persistent_context()
    page = open_console(context.new_page(), server.url)
    assert page.inner_text("header h1") == "edgesql"
    page.wait_for_selector('link[rel="manifest"]', state="attached")
    cdp = context.new_cdp_session(page)
    manifest = cdp.send("Page.getAppManifest")
    assert manifest["url"] == f"{server.url}/manifest.webmanifest"
    assert manifest["errors"] == []
    assert cdp.send("Page.getInstallabilityErrors")["installabilityErrors"] == []


WRITE = """
import edgesql
notes = await edgesql.connect("pwa.db")
await notes.execute("CREATE TABLE IF NOT EXISTS notes (id TEXT PRIMARY KEY, body TEXT)")
await notes.executemany("INSERT INTO notes VALUES (?, ?)", [("a", "online 1"), ("b", "online 2")])
await notes.close()
'written'
"""


def read_and_write(new_id: str) -> str:
    return f"""
import edgesql, json
notes = await edgesql.connect("pwa.db")
await notes.execute("INSERT INTO notes VALUES (?, 'offline')", ("{new_id}",))
rows = (await notes.execute("SELECT id FROM notes ORDER BY id")).rows
out = json.dumps([[r[0] for r in rows], notes.info.storage])
await notes.close()
out
"""


def test_app_starts_offline_after_one_visit(own_context: Any, servers: list[Server], tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", root=copy_app(tmp_path / "app"))
    servers.append(server)
    page = open_console(own_context.new_page(), server.url)
    serve_from_worker(page)
    assert page.evaluate("crossOriginIsolated") is True
    assert run_py(page, WRITE) == "written"

    server.stop()
    # Offline: everything below comes from the service worker's cache.
    response = reload_ready(page)
    assert response.from_service_worker
    assert page.evaluate("crossOriginIsolated") is True  # the worker added COOP/COEP
    assert run_py(page, read_and_write("c")) == [["a", "b", "c"], "opfs-sahpool"]
    assert "OPFS" in page.inner_text("#storage")
    # API routes are never answered from the cache.
    assert page.evaluate("fetch('/schema').then(() => 'answered', () => 'no network')") == "no network"

    # A new tab starts offline too. One tab owns an OPFS database at a time,
    # so the first tab lets go of the console's database first.
    run_py(page, "await db.close()\n'closed'")
    tab = open_console(own_context.new_page(), server.url)
    assert tab.evaluate("navigator.serviceWorker.controller !== null && crossOriginIsolated") is True
    assert run_py(tab, read_and_write("d")) == [["a", "b", "c", "d"], "opfs-sahpool"]


def test_pyscript_page_starts_offline(own_context: Any, servers: list[Server], tmp_path: Path) -> None:
    root = copy_app(tmp_path / "app")
    shutil.copy2(FIXTURES / "pyscript-offline.html", root / "web" / "pyscript-offline.html")
    server = start_server(tmp_path / "data", root=root)
    servers.append(server)
    # The list is generated: a page dropped into web/ is precached without more ado.
    urls = {e["url"] for e in httpx.get(server.url + "/precache-manifest.json").json()["entries"]}
    assert "/pyscript-offline.html" in urls

    page = own_context.new_page()
    page.goto(server.url + "/pyscript-offline.html")
    wait_ready(page)
    serve_from_worker(page)

    server.stop()
    response = reload_ready(page)
    assert response.from_service_worker
    assert page.inner_text("#out").startswith("Python 3.14")
    assert page.evaluate("crossOriginIsolated") is True


def test_new_version_is_offered_and_reload_activates_it(
    own_context: Any, servers: list[Server], tmp_path: Path
) -> None:
    root = copy_app(tmp_path / "app")
    for name in ("busy-tab.html", "busy-worker.js"):
        shutil.copy2(FIXTURES / name, root / "web" / name)
    server = start_server(tmp_path / "data", root=root)
    servers.append(server)
    worker_fetches: list[str] = []
    own_context.on(
        "request", lambda r: worker_fetches.append(urlparse(r.url).path) if r.service_worker else None
    )
    page = open_console(own_context.new_page(), server.url)
    serve_from_worker(page)
    old = page.evaluate(ACTIVE_VERSION)
    assert old and page.locator(".update-banner").count() == 0
    # A second tab whose dedicated worker fetches all the time, as the DB
    # worker's sync loop does: such fetches can keep the old version busy.
    busy = own_context.new_page()
    busy.goto(server.url + "/busy-tab.html")
    wait_ready(busy)
    assert busy.evaluate(ACTIVE_VERSION) == old

    # A file changes while the server runs: /sw.js now carries a new list.
    worker_fetches.clear()
    page.evaluate(
        "window.swMessages = [];"
        "navigator.serviceWorker.addEventListener('message', (e) => swMessages.push(e.data))"
    )
    css = root / "web" / "style.css"
    css.write_text(css.read_text() + "\n/* the new version */\n")
    page.evaluate("navigator.serviceWorker.getRegistration().then((reg) => reg.update())")

    banner = page.locator(".update-banner")
    banner.wait_for(state="visible")
    assert "New version ready" in banner.inner_text()
    new_version = httpx.get(server.url + "/precache-manifest.json").json()["version"]
    assert page.evaluate("swMessages") == [{"type": "edgesql:update-ready", "version": new_version}]
    # The new version downloaded only what changed; the rest came from the old cache.
    assert [p for p in worker_fetches if p != "/sw.js"] == ["/style.css"]

    # Reload: both tabs start again on the new version (each reloads, twice).
    banner.get_by_role("button", name="Reload").click()
    on_new_version = (
        "(v) => document.documentElement.dataset.swVersion === v"
        " && document.documentElement.dataset.ready === 'true'"
    )
    for tab in (page, busy):
        tab.wait_for_function(on_new_version, arg=new_version, timeout=90_000)
    assert new_version != old
    assert "/* the new version */" in page.evaluate("fetch('/style.css').then((r) => r.text())")
    assert page.evaluate("caches.keys()") == [f"edgesql-precache-{new_version}"]
    assert page.locator(".update-banner").count() == 0
    assert run_py(page, "import edgesql\n'python runs'") == "python runs"
