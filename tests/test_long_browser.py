"""Long statements and big results (tests/cases/long_cases.py) in real Chromium:
SQLite-Wasm on OPFS in the DB worker, from the page's Pyodide, on both bridge paths.

On the fast path an interrupt reaches the running statement through the page's
SharedArrayBuffer; without cross-origin isolation, through the database's
signal file, written by the page's signal-writer worker.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from tests.cases.long_cases import CASES
from tests.conftest import (
    OutsideRequests,
    install_test_modules,
    open_console,
    run_cases_code,
    run_py,
    strip_isolation,
)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module", params=["fast-path", "postmessage"])
def browser_results(request: pytest.FixtureRequest, browser: Any, server: Any) -> Iterator[dict[str, str]]:
    outside = OutsideRequests()
    ctx = browser.new_context()
    outside.watch(ctx)
    if request.param == "postmessage":
        strip_isolation(ctx)
    page = open_console(ctx.new_page(), server.url)
    install_test_modules(page)
    out = run_py(page, run_cases_code("long_cases", "long"))
    results = out if isinstance(out, dict) else json.loads(out)
    results["__fast_path__"] = run_py(page, "import edgesql._browser as b; str(bool(b._bridge.fastPath))")
    results["__path__"] = request.param
    ctx.close()
    outside.check()
    yield results


@pytest.mark.parametrize("name", sorted(CASES))
def test_long_case_in_browser(name: str, browser_results: dict[str, str]) -> None:
    outcome = browser_results[name]
    assert outcome == "ok", f"in the browser ({browser_results['__path__']}):\n{outcome}"


def test_cases_ran_on_the_intended_path(browser_results: dict[str, str]) -> None:
    expected = "True" if browser_results["__path__"] == "fast-path" else "False"
    assert browser_results["__fast_path__"] == expected
