"""The devtools console with long queries and big results, as a person uses it:
the first page of a result shows at once and more comes on request, and a
running query can be cancelled. Screenshots go to test-results/ (looked at
when the test was written; they show the table, its "Show more" line and the
cancelled query's error)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.cases.long_cases import LONG_READ
from tests.conftest import ROOT, open_console, run_py

pytestmark = pytest.mark.browser

SHOTS = ROOT / "test-results"
THREE_MILLION = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) "
    "SELECT x AS id, 'row ' || x AS label FROM c"
)


def shot(page: Any, name: str) -> Path:
    SHOTS.mkdir(exist_ok=True)
    path = SHOTS / f"console-{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


def run_sql(page: Any, sql: str) -> None:
    page.locator("#sql").fill(sql)
    page.click("#run")


def rows_shown(page: Any) -> int:
    return int(page.locator("#output table.result tbody tr").count())


def test_a_big_result_shows_its_first_page_and_more_on_request(context: Any, server: Any) -> None:
    page = open_console(context.new_page(), server.url)
    run_py(
        page,
        "import edgesql\n"
        "setup_db = await edgesql.connect('app.db')\n"
        "await setup_db.execute('CREATE TABLE IF NOT EXISTS paged (id INTEGER PRIMARY KEY, label TEXT)')\n"
        "await setup_db.executemany('INSERT INTO paged VALUES (?, ?)', [(i, f'label {i}') for i in range(2500)])\n"
        "'ok'",
    )
    run_sql(page, "SELECT id, label FROM paged ORDER BY id")
    page.wait_for_selector('#output [data-action="more"]')
    assert rows_shown(page) == 1000
    assert "1,000 row(s) shown, more to come" in page.inner_text("#output")
    page.locator('#output [data-role="more"]').scroll_into_view_if_needed()
    shot(page, "first-page")
    page.click('#output [data-action="more"]')
    page.wait_for_function("document.querySelectorAll('#output table.result tbody tr').length === 2000")
    page.click('#output [data-action="more"]')
    page.wait_for_function("document.querySelectorAll('#output table.result tbody tr').length === 2500")
    note = page.inner_text('#output [data-role="more"]')
    assert note.strip() == "2,500 row(s)."  # all of them: no button left
    last = page.locator("#output table.result tbody tr").last.inner_text()
    assert last.split() == ["2499", "label", "2499"]

    # Three million rows: the first page is on screen at once, nothing else is read.
    run_sql(page, THREE_MILLION)
    page.wait_for_selector('#output [data-action="more"]', timeout=5000)
    assert rows_shown(page) == 1000
    assert page.locator("#output table.result tbody tr").first.inner_text().split() == ["1", "row", "1"]
    page.locator('#output [data-role="more"]').scroll_into_view_if_needed()
    shot(page, "three-million")


def test_cancel_stops_a_running_query(context: Any, server: Any) -> None:
    page = open_console(context.new_page(), server.url)
    assert page.locator("#cancel").is_hidden()
    run_sql(page, LONG_READ)
    page.wait_for_selector("#cancel:not([hidden])")
    assert page.locator("#run").is_disabled()
    assert "Running" in page.inner_text("#status")
    shot(page, "running")
    page.click("#cancel")
    err = page.wait_for_selector("#output .error", timeout=10_000)
    text = err.inner_text()
    assert "OperationalError (SQLITE_INTERRUPT)" in text and "db.interrupt() stopped this call" in text
    assert page.locator("#cancel").is_hidden() and page.locator("#run").is_enabled()
    shot(page, "cancelled")
    # The console works on as before.
    run_sql(page, "SELECT 41 + 1 AS answer")
    page.wait_for_selector("#output table.result td.num")
    assert "42" in page.inner_text("#output")
