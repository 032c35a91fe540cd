"""The shared API suite in real Chromium: SQLite-Wasm on OPFS, from the page's Pyodide."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from tests.cases.api_cases import CASES
from tests.conftest import (
    OutsideRequests,
    install_test_modules,
    open_console,
    run_cases_code,
    run_py,
    strip_isolation,
)

pytestmark = pytest.mark.browser

RUN_ALL = run_cases_code("api_cases", "api")


@pytest.fixture(scope="module", params=["fast-path", "postmessage"])
def browser_results(request: pytest.FixtureRequest, browser: Any, server: Any) -> Iterator[dict[str, str]]:
    outside = OutsideRequests()
    ctx = browser.new_context()
    outside.watch(ctx)
    if request.param == "postmessage":
        strip_isolation(ctx)
    page = open_console(ctx.new_page(), server.url)
    install_test_modules(page)
    out = run_py(page, RUN_ALL)
    results = out if isinstance(out, dict) else json.loads(out)
    fast = run_py(page, "import edgesql._browser as b; str(bool(b._bridge.fastPath))")
    results["__fast_path__"] = fast
    results["__path__"] = request.param
    ctx.close()
    outside.check()
    yield results


@pytest.mark.parametrize("name", sorted(CASES))
def test_api_case_in_browser(name: str, browser_results: dict[str, str]) -> None:
    outcome = browser_results[name]
    assert outcome == "ok", f"in the browser:\n{outcome}"


def test_suite_ran_on_the_intended_path(browser_results: dict[str, str]) -> None:
    # serve.py's headers make the page cross-origin isolated, so calls take the
    # SharedArrayBuffer path; without them they must fall back to postMessage.
    expected = "True" if browser_results["__path__"] == "fast-path" else "False"
    assert browser_results["__fast_path__"] == expected
