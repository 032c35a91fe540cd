"""Fixtures: serve.py on a free loopback port, and real Chromium driven by Playwright.

Every browser context records the requests it makes; a request to any host
other than 127.0.0.1 fails the test (Chromium is also told to resolve no
other host, so such a request cannot leave the machine).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


def chromium_executable() -> str | None:
    """Debian's Chromium where it is installed, else Playwright's own download."""
    for candidate in (os.environ.get("EDGESQL_CHROMIUM"), "/usr/bin/chromium"):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slow", action="store_true", help="also run the long variants")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--slow"):
        return
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(pytest.mark.skip(reason="long variant: run with --slow"))


# -- serve.py ------------------------------------------------------------------------


@dataclass
class Server:
    """A running serve.py."""

    url: str
    data: Path
    proc: subprocess.Popen[str]
    args: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._close_pipe()

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up."""
        self.proc.kill()
        self.proc.wait(5)
        self._close_pipe()

    def _close_pipe(self) -> None:
        pump = getattr(self, "pump", None)
        if pump is not None:
            pump.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def single_user_schema(root: Path, data: Path) -> Path:
    """The demo's migrations without its access rules, beside ``data``: one shared database
    that any client may sync without signing in. Tests of users give the schema folder
    itself (web/app/schema, with access.sql) or their own."""
    out = data.parent / f"{data.name}-schema"
    out.mkdir(parents=True, exist_ok=True)
    for f in sorted((root / "web" / "app" / "schema").glob("[0-9]*.sql")):
        shutil.copyfile(f, out / f.name)
    return out


def start_server(
    data: Path,
    *args: str,
    port: int = 0,
    timeout: float = 30,
    root: Path = ROOT,
    env: dict[str, str] | None = None,
) -> Server:
    """Start serve.py and wait until it prints its URL.

    ``root`` is the checkout to serve: a test may pass a copy it has changed.
    ``env`` is added to serve.py's environment.
    """
    if "--schema" not in args:
        args = ("--schema", str(single_user_schema(root, data)), *args)
    cmd = [sys.executable, str(root / "serve.py"), "--port", str(port), "--data", str(data), *args]
    proc = subprocess.Popen(
        cmd,
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        env={**os.environ, **env} if env else None,
    )
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                raise RuntimeError(f"serve.py exited with {proc.returncode}:\n{''.join(lines)}")
            continue
        lines.append(line)
        if line.startswith("edgesql serving "):
            url = line.split()[2].rstrip("/")
            server = Server(url=url, data=data, proc=proc, args=list(args), log=lines)
            server.pump = _drain(proc, lines)  # type: ignore[attr-defined]
            return server
    proc.kill()
    raise RuntimeError(f"serve.py did not start within {timeout} s:\n{''.join(lines)}")


def _drain(proc: subprocess.Popen[str], lines: list[str]) -> Any:
    """Keep reading the server's output so its pipe never fills up."""
    import threading

    def pump() -> None:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                lines.append(line)
        except ValueError:  # the pipe was closed under us at teardown
            pass

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    return t


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("serve-data"))
    yield s
    s.stop()


# -- Chromium ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def playwright() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


def launch_options(headless: bool = True) -> dict[str, Any]:
    opts: dict[str, Any] = {"args": CHROMIUM_ARGS, "headless": headless}
    exe = chromium_executable()
    if exe:
        opts["executable_path"] = exe
    return opts


@pytest.fixture(scope="session")
def browser(playwright: Any) -> Iterator[Any]:
    b = playwright.chromium.launch(**launch_options())
    yield b
    b.close()


class OutsideRequests:
    """Requests a context made to hosts other than 127.0.0.1."""

    def __init__(self) -> None:
        self.urls: list[str] = []
        self.contexts: list[Any] = []

    def watch(self, context: Any) -> None:
        self.contexts.append(context)

        def on_request(request: Any) -> None:
            parsed = urlparse(request.url)
            if parsed.scheme in ("http", "https", "ws", "wss") and parsed.hostname != "127.0.0.1":
                self.urls.append(request.url)

        context.on("request", on_request)

    def check(self) -> None:
        assert not self.urls, f"requests left 127.0.0.1: {self.urls}"

    def close(self) -> None:
        """Close the test's contexts. One left open keeps its pages syncing (and streaming)
        with a server the test stopped, or with the next test's, which may get the same port."""
        for ctx in self.contexts:
            try:
                ctx.close()
            except Exception:  # closed already (by the test or the context fixture)
                pass


@pytest.fixture
def outside() -> Iterator[OutsideRequests]:
    o = OutsideRequests()
    yield o
    o.close()
    o.check()


@pytest.fixture
def context(browser: Any, outside: OutsideRequests) -> Iterator[Any]:
    """A fresh browser profile (its own OPFS), guarded against outside requests."""
    ctx = browser.new_context()
    outside.watch(ctx)
    yield ctx
    ctx.close()


@pytest.fixture
def persistent_context(
    playwright: Any, tmp_path: Path, outside: OutsideRequests
) -> Iterator[Callable[[], Any]]:
    """Open (and reopen) a browser on one profile folder, as a person restarting it."""
    profile = tmp_path / "profile"
    opened: list[Any] = []

    def launch() -> Any:
        ctx = playwright.chromium.launch_persistent_context(str(profile), **launch_options())
        outside.watch(ctx)
        opened.append(ctx)
        return ctx

    yield launch
    for ctx in opened:
        try:
            ctx.close()
        except Exception:
            pass


# -- Python in the page ------------------------------------------------------------


#: Resolves once the registration's worker is "activated" (ready already means "active").
WAIT_ACTIVATED = """async () => {
    const worker = (await navigator.serviceWorker.ready).active;
    if (worker.state !== 'activated') {
        await new Promise((resolve) => worker.addEventListener('statechange', () => {
            if (worker.state === 'activated') resolve();
        }));
    }
    return worker.state;
}"""


def open_console(page: Any, base_url: str, timeout: float = 90_000) -> Any:
    """Load console.html and wait for its contract: window.pyodide and data-ready."""
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{base_url}/console.html")
    page.wait_for_function("document.documentElement.dataset.ready", timeout=timeout)
    state = page.evaluate("document.documentElement.dataset.ready")
    assert state == "true", f"console failed to start: {page.inner_text('main')} {errors}"
    return page


def strip_isolation(context: Any) -> None:
    """Serve pages without COOP/COEP, as a host that cannot set headers would:
    no SharedArrayBuffer, so edgesql must use its postMessage path."""

    def handle(route: Any) -> None:
        response = route.fetch()
        headers = {
            k: v
            for k, v in response.headers.items()
            if k.lower() not in ("cross-origin-opener-policy", "cross-origin-embedder-policy")
        }
        route.fulfill(response=response, headers=headers)

    context.route("**/*.html", handle)


def run_py(page: Any, code: str) -> Any:
    """Run Python in the page; the value of its last expression comes back as JSON."""
    out = page.evaluate(
        """async (code) => {
            const r = await pyodide.runPythonAsync(code);
            return typeof r === 'string' ? r : JSON.stringify(r?.toJs ? r.toJs() : r);
        }""",
        code,
    )
    if isinstance(out, str):
        try:
            return json.loads(out)
        except ValueError:
            return out  # a plain string, not JSON
    return out


def wait_py(page: Any, expr: str, expected: Any, timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Evaluate Python ``expr`` in the page until it equals ``expected``; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        got = run_py(page, expr)
        if got == expected:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{expr} was {got!r}, not {expected!r}, after {timeout} s")
        time.sleep(interval)


_RUN_CASES = """
import json, traceback, itertools
import edgesql
from tests.cases.MODULE import CASES

results = {}
for name, fn in CASES.items():
    counter = itertools.count()
    def connect(_name=name, **options):
        return edgesql.connect(f"PREFIX_{_name}_{next(counter)}.db", **options)
    try:
        await fn(connect)
        results[name] = "ok"
    except BaseException:
        results[name] = traceback.format_exc()
json.dumps(results)
"""


def run_cases_code(module: str, prefix: str) -> str:
    """Python for the page: run every case of ``tests.cases.<module>`` (installed by
    :func:`install_test_modules`), each on fresh databases named ``<prefix>_...``;
    its value is the JSON of ``{case: "ok" or the traceback}``."""
    return _RUN_CASES.replace("MODULE", module).replace("PREFIX", prefix)


def install_test_modules(page: Any) -> None:
    """Copy tests/cases into the page's Pyodide so shared cases can run there."""
    files = {
        f"/home/pyodide/tests/{p.relative_to(ROOT / 'tests').as_posix()}": p.read_text()
        for p in (ROOT / "tests" / "cases").glob("*.py")
    }
    files["/home/pyodide/tests/__init__.py"] = ""
    page.evaluate(
        """(files) => {
            pyodide.FS.mkdirTree('/home/pyodide/tests/cases');
            for (const [path, text] of Object.entries(files)) pyodide.FS.writeFile(path, text);
        }""",
        files,
    )
    run_py(
        page,
        "import sys, importlib; sys.path.insert(0, '/home/pyodide'); importlib.invalidate_caches(); 'ok'",
    )


@pytest.fixture(scope="session")
def have_chromium() -> bool:
    return chromium_executable() is not None or shutil.which("chromium") is not None
