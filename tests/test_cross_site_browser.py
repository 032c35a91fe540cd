"""Pages of other origins against the default, token-less serve.py, in real Chromium (issue 12, finding 4).

Before the fix, a page on any other local origin wrote rows with a "simple"
request (``mode: "no-cors"``, ``text/plain``: no preflight, so the browser
sends it as is), and a page on an attacker's name that resolves to 127.0.0.1
(DNS rebinding) read and wrote everything, ``/sync/schema`` included. The
attacker's pages are fulfilled by Playwright at their own origins; their
requests to serve.py are real. Each attacker page comes from a real loopback
socket: Chromium's Local Network Access already stops a page from the public
internet (or one Playwright made up) from calling 127.0.0.1, but not a page
from another local server, nor a rebound name once it resolves to 127.0.0.1.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from tests.conftest import CHROMIUM_ARGS, launch_options, start_server
from tests.sync.primaries import CONTRACT_SCHEMA, PrimaryServer, insert, key, replica_id, worker_url
from tests.sync.wire import envelope

pytestmark = pytest.mark.browser

REBOUND = "rebound.test"  # the attacker's name, pointed at 127.0.0.1


@pytest.fixture(scope="module", params=["sqlite", "d1-local"])
def open_primary(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrimaryServer]:
    """The default server: 127.0.0.1 and no token."""
    base = tmp_path_factory.mktemp(f"cross-site-{request.param}")
    schema = base / "schema.sql"
    schema.write_text(CONTRACT_SCHEMA)
    server = start_server(base / "data", "--primary", request.param, "--schema", str(schema), timeout=90)
    yield PrimaryServer(request.param, server, worker_url(server))
    server.stop()


def push_body(tag: str) -> str:
    return json.dumps(envelope(replica_id(tag), changes=[insert(1, "items", key(tag), c=tag)]))


def stored(p: PrimaryServer, tag: str) -> int:
    return p.query("SELECT count(*) FROM items WHERE c = ?", (tag,))[0][0]


class _EvilPage(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><title>another local app</title>"
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def evil_origin() -> Iterator[str]:
    """Another web server on this machine (a dev server, a local tool): its own origin."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _EvilPage)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_page_of_another_origin_cannot_write(
    browser: Any, open_primary: PrimaryServer, evil_origin: str
) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{evil_origin}/evil.html")
        # Sent as is; the page never sees the answer (serve.py's Cross-Origin-Resource-Policy
        # even makes the browser fail the fetch), but the request reaches the server.
        page.evaluate(
            """async ([url, body]) => {
                try {
                    await fetch(url, {method: 'POST', mode: 'no-cors', body, headers: {'content-type': 'text/plain'}});
                } catch (e) { /* the answer is blocked, not the request */ }
            }""",
            [open_primary.sync_url, push_body("no-cors")],
        )
        preflighted = page.evaluate(
            """async ([url, body]) => {
                try {
                    await fetch(url, {method: 'POST', body, headers: {'content-type': 'application/json'}});
                    return 'answered';
                } catch (e) { return 'refused by the browser'; }
            }""",
            [open_primary.sync_url, push_body("cors")],
        )
        assert preflighted == "refused by the browser"  # no CORS for other origins
    finally:
        context.close()
    assert stored(open_primary, "no-cors") == 0
    assert stored(open_primary, "cors") == 0
    # The app's own page still syncs (its Origin is the server's own).
    own = browser.new_context()
    try:
        page = own.new_page()
        page.goto(open_primary.url + "/index.html")
        status = page.evaluate(
            """async ([url, body]) => (await fetch(url, {method: 'POST', body,
                                       headers: {'content-type': 'application/json'}})).status""",
            [open_primary.sync_url, push_body("own-page")],
        )
    finally:
        own.close()
    assert status == 200 and stored(open_primary, "own-page") == 1


@pytest.fixture(scope="module")
def rebinding_browser(playwright: Any) -> Iterator[Any]:
    """Chromium whose resolver sends REBOUND to 127.0.0.1, as the attacker's DNS would after the flip."""
    opts = launch_options()
    rules = f"--host-resolver-rules=MAP {REBOUND} 127.0.0.1, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
    opts["args"] = [a for a in CHROMIUM_ARGS if not a.startswith("--host-resolver-rules")] + [rules]
    b = playwright.chromium.launch(**opts)
    yield b
    b.close()


def test_dns_rebinding_reads_and_writes_nothing(rebinding_browser: Any, open_primary: PrimaryServer) -> None:
    port = open_primary.url.rsplit(":", 1)[1]
    context = rebinding_browser.new_context()
    try:
        # The attacker's page, once its name resolves to 127.0.0.1: a document of that origin
        # (whatever serve.py answers for it), in which the attacker's script runs.
        page = context.new_page()
        page.goto(f"http://{REBOUND}:{port}/evil.html")
        got = page.evaluate(
            """async (body) => {
                const schema = await fetch('/sync/schema');
                const write = await fetch('/sync', {method: 'POST', body,
                                                    headers: {'content-type': 'application/json'}});
                const page = await fetch('/console.html');
                return [schema.status, await schema.text(), write.status, page.status];
            }""",
            push_body("rebound"),
        )
    finally:
        context.close()
    schema_status, schema_text, write_status, page_status = got
    assert (schema_status, write_status, page_status) == (421, 421, 421), got
    assert "CREATE TABLE" not in schema_text
    assert stored(open_primary, "rebound") == 0
