"""serve.py and headless Chromium for the benchmark, and one benchmark page.

The same way the browser tests run (tests/conftest.py is reused, so the
launch flags and the server start stay in one place): serve.py on a free
127.0.0.1 port, the system Chromium headless, and console.html, whose
contract is ``window.pyodide`` plus ``<html data-ready="true">``.

Chromium runs on a persistent profile in a temporary folder, not an
incognito context: incognito keeps OPFS in memory, and the point is to
measure the real, disk-backed OPFS. Service workers are blocked (see
open_browser). Every request is watched; one to any host but 127.0.0.1
fails the run.

The benchmark's own worker requests (bench/worker-ops.js: timers inside the
worker) are not part of the app: serve.py does not serve them and the
production worker does not import them. This profile's pages get them by
routing: /bench/worker-ops.js is served from bench/, and the DB worker's
script, /worker/db-worker.js, is the one serve.py serves with an import of it
put first (see add_worker_ops).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.conftest import OutsideRequests, launch_options, start_server, strip_isolation

__all__ = [
    "FAST_PATH",
    "PATHS",
    "POSTMESSAGE",
    "BenchPage",
    "Browser",
    "add_worker_ops",
    "open_browser",
    "open_second_page",
]

HERE = Path(__file__).resolve().parent

#: Bridge paths a page can take: the SharedArrayBuffer fast path (serve.py's
#: COOP/COEP headers make the page cross-origin isolated) and the postMessage
#: fallback (the same page served without those headers).
FAST_PATH = "fast-path"
POSTMESSAGE = "postmessage"
PATHS = (FAST_PATH, POSTMESSAGE)

#: How long a page may take to start Python and edgesql.
READY_TIMEOUT_MS = 120_000
#: A page load can find the previous page's worker still letting go of the
#: OPFS files; it is retried this many times.
OPEN_ATTEMPTS = 3


class BenchError(RuntimeError):
    """The benchmark page failed (not a slow figure: something broke)."""


class BenchPage:
    """One loaded console.html with the benchmark's Python and JavaScript installed."""

    def __init__(self, page: Any, path: str) -> None:
        self.page = page
        self.path = path
        #: What ``bench_inpage.open_db`` said about the bench database (set by the runner).
        self.info: dict[str, Any] = {}
        self.errors: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def js(self, expression: str, arg: Any = None) -> Any:
        """Evaluate a JavaScript function expression in the page with one argument."""
        return self.page.evaluate(expression, arg)

    def call(self, fn: str, /, **kwargs: Any) -> Any:
        """Await ``bench_inpage.<fn>(**kwargs)`` in the page's Pyodide; returns its JSON value."""
        return self._python(f"await bench_inpage.{fn}", kwargs)

    def call_sync(self, fn: str, /, **kwargs: Any) -> Any:
        """Call a plain (not async) function of ``bench_inpage``."""
        return self._python(f"bench_inpage.{fn}", kwargs)

    def _python(self, call: str, kwargs: dict[str, Any]) -> Any:
        code = (
            f"import json, bench_inpage\njson.dumps({call}(**json.loads({json.dumps(json.dumps(kwargs))})))"
        )
        return json.loads(self.page.evaluate("(code) => pyodide.runPythonAsync(code)", code))

    def set_keys(self, keys: list[int]) -> None:
        """Put the primary keys every layer will query on the page."""
        self.js("(keys) => { globalThis.edgesqlBenchKeys = keys; }", keys)

    def close(self) -> None:
        self.page.close()


@dataclass
class Browser:
    """A running serve.py and a Chromium profile to open benchmark pages in."""

    base_url: str
    context: Any
    outside: OutsideRequests

    def open_page(self, path: str) -> BenchPage:
        """Load console.html on the given bridge path and install the benchmark code."""
        return _open_page(self.context, self.base_url, path)

    def browser_version(self) -> str:
        """Chromium's full version, e.g. ``HeadlessChrome/156.0.8078.108`` (the user agent
        string hides all but the major version)."""
        page = self.context.new_page()
        try:
            cdp = self.context.new_cdp_session(page)
            product: str = cdp.send("Browser.getVersion")["product"]
        finally:
            page.close()
        return product


def _open_page(context: Any, base_url: str, path: str) -> BenchPage:
    if path not in PATHS:
        raise ValueError(f"unknown bridge path {path!r}; use one of {PATHS}")
    last = ""
    for attempt in range(OPEN_ATTEMPTS):
        page = context.new_page()
        if path == POSTMESSAGE:
            strip_isolation(page)  # Page.route has the same signature as BrowserContext.route
        bench = BenchPage(page, path)
        page.goto(f"{base_url}/console.html")
        page.wait_for_function("document.documentElement.dataset.ready", timeout=READY_TIMEOUT_MS)
        if page.evaluate("document.documentElement.dataset.ready") == "true":
            _install(bench)
            return bench
        last = f"{page.inner_text('main')} {bench.errors}"
        page.close()
        time.sleep(0.5 * (attempt + 1))
    raise BenchError(f"console.html did not start after {OPEN_ATTEMPTS} attempts: {last}")


def open_second_page(page: BenchPage) -> BenchPage:
    """Another console.html beside ``page``: same browser profile, origin and bridge path, with the
    benchmark code installed (a second tab of the same app, for the non-owner measurements)."""
    url = urlsplit(page.page.url)
    return _open_page(page.page.context, f"{url.scheme}://{url.netloc}", page.path)


#: Where this profile's pages find the benchmark's worker requests (never served by serve.py).
WORKER_OPS_URL = "/bench/worker-ops.js"
WORKER_SCRIPT = "/worker/db-worker.js"


def add_worker_ops(context: Any) -> None:
    """Give every DB worker started in ``context`` the benchmark's requests.

    The worker script is the one serve.py serves, headers included, with one
    line put first that imports bench/worker-ops.js, which adds its ops
    through worker/extra-ops.js before the worker answers anything.
    """
    ops = (HERE / "worker-ops.js").read_bytes()

    def worker_script(route: Any) -> None:
        response = route.fetch()
        headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "etag")}
        body = f"import {json.dumps(WORKER_OPS_URL)};\n".encode() + response.body()
        route.fulfill(status=response.status, headers=headers | {"cache-control": "no-store"}, body=body)

    def worker_ops(route: Any) -> None:
        headers = {"content-type": "text/javascript; charset=utf-8", "cache-control": "no-store"}
        route.fulfill(status=200, headers=headers, body=ops)

    context.route(lambda url: urlsplit(url).path == WORKER_SCRIPT, worker_script)
    context.route(lambda url: urlsplit(url).path == WORKER_OPS_URL, worker_ops)


INPAGE_DIR = "/home/pyodide/bench"
IMPORT_INPAGE = f"""
import importlib, sys
if {INPAGE_DIR!r} not in sys.path:
    sys.path.insert(0, {INPAGE_DIR!r})
importlib.invalidate_caches()
import bench_inpage
"""


#: Host file → module name in the page's Pyodide.
INPAGE_MODULES = {"inpage.py": "bench_inpage", "sqlite_ops.py": "bench_sqlite_ops"}


def _install(bench: BenchPage) -> None:
    """Copy inpage.py (and sqlite_ops.py, which it imports) into the page's Pyodide as
    ``bench_inpage`` (``bench_sqlite_ops``); inject inpage.js."""
    for file, module in INPAGE_MODULES.items():
        bench.js(
            """([dir, name, source]) => {
                pyodide.FS.mkdirTree(dir);
                pyodide.FS.writeFile(dir + '/' + name + '.py', source);
            }""",
            [INPAGE_DIR, module, (HERE / file).read_text()],
        )
    bench.js("(code) => pyodide.runPythonAsync(code)", IMPORT_INPAGE)
    bench.page.add_script_tag(content=(HERE / "inpage.js").read_text())


@contextmanager
def open_browser(playwright: Any = None, base_url: str | None = None) -> Iterator[Browser]:
    """Start what is not given: serve.py (its own data folder), Playwright, Chromium.

    Pass ``playwright`` and ``base_url`` to reuse ones already running (the
    pytest session's, in tests/test_bench_smoke.py).
    """
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="edgesql-bench-")))
        if base_url is None:
            server = start_server(tmp / "serve-data")
            stack.callback(server.stop)
            base_url = server.url
        if playwright is None:
            from playwright.sync_api import sync_playwright

            playwright = stack.enter_context(sync_playwright())
        # Service workers blocked: console.html registers one (the offline
        # shell) that adds COOP/COEP to what it serves, and Playwright's routing
        # cannot see requests a service worker answers, so the postMessage page
        # could not be served without isolation. The database calls measured
        # here never touch the network, so the benchmark loses nothing.
        context = playwright.chromium.launch_persistent_context(
            str(tmp / "profile"), service_workers="block", **launch_options()
        )
        stack.callback(context.close)
        add_worker_ops(context)
        outside = OutsideRequests()
        outside.watch(context)
        yield Browser(base_url=base_url, context=context, outside=outside)
        if outside.urls:
            raise BenchError(f"requests left 127.0.0.1: {outside.urls}")
