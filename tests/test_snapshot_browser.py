"""Python from a memory snapshot kept on the device (web/snapshot.js), and without one.

One browser profile, as a person's: the first visit starts Python the slow
way and makes no snapshot; a returning visit (served by the service worker)
makes one in a worker once the page is ready; the visit after starts from
it. A snapshot of another app version is never used, and one that cannot be
restored is deleted and the page starts without it. Either way edgesql
works the same, and each start draws fresh random numbers.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.conftest import WAIT_ACTIVATED, open_console, run_py

pytestmark = pytest.mark.browser

HOW = "globalThis.edgesqlStart.how"
WORKS = """
import edgesql, json, random, inspect
probe = await edgesql.connect("snapshot.db")
await probe.execute("CREATE TABLE IF NOT EXISTS visits (n INTEGER)")
await probe.execute("INSERT INTO visits VALUES (1)")
n = (await probe.execute("SELECT count(*) FROM visits")).scalar()
await probe.close()
json.dumps([n, random.getrandbits(64), "def iterate(" in inspect.getsource(edgesql.Connection)])
"""


def snapshot_entries(page: Any) -> list[str]:
    return list(
        page.evaluate(
            """async () => {
                const { snapshotDir } = await import('/snapshot.js');
                const dir = await snapshotDir(false);
                const names = [];
                if (dir) for await (const name of dir.keys()) names.push(name);
                return names;
            }"""
        )
    )


def returning_visit(page: Any) -> None:
    """Make the page's next load come from the service worker (the installed app)."""
    page.evaluate(WAIT_ACTIVATED)
    page.wait_for_function("navigator.serviceWorker.controller !== null")


def test_the_console_starts_without_then_from_its_snapshot(persistent_context: Any, server: Any) -> None:
    page = open_console(persistent_context().new_page(), server.url)
    assert page.evaluate(HOW) == "no-snapshot"
    assert page.evaluate("globalThis.edgesqlStart.snapshot") is None  # a first visit makes none
    first = run_py(page, WORKS)
    returning_visit(page)

    page.reload()
    open_console(page, server.url)
    assert page.evaluate(HOW) == "no-snapshot"
    made = page.evaluate("globalThis.edgesqlStart.snapshot")  # made in a worker, once the page is ready
    assert made and made.startswith("snapshot-")
    assert snapshot_entries(page) == [made]

    page.reload()
    open_console(page, server.url)
    assert page.evaluate(HOW) == "snapshot"
    second = run_py(page, WORKS)
    page.reload()
    open_console(page, server.url)
    assert page.evaluate(HOW) == "snapshot"
    third = run_py(page, WORKS)
    # The database is the same one, edgesql's source is on the file system (tracebacks show
    # it), and each start from the same snapshot draws different random numbers.
    assert [first[0], second[0], third[0]] == [1, 2, 3]
    assert first[2] is second[2] is third[2] is True
    assert len({first[1], second[1], third[1]}) == 3


def test_a_snapshot_that_cannot_be_restored_is_replaced(persistent_context: Any, server: Any) -> None:
    page = open_console(persistent_context().new_page(), server.url)
    returning_visit(page)
    # Another version's snapshot is not even read; this version's, damaged, fails to restore.
    current = page.evaluate(
        """async () => {
            const { snapshotDir, snapshotName } = await import('/snapshot.js');
            const wheel = await (await fetch('/wheels/edgesql.json')).json();
            const dir = await snapshotDir(true);
            const put = async (name, bytes) => {
                const w = await (await dir.getFileHandle(name, { create: true })).createWritable();
                await w.write(bytes);
                await w.close();
            };
            await put('snapshot-0.0.1-0000-0.bin', new Uint8Array(64));
            await put(snapshotName(wheel), new Uint8Array(1 << 20).fill(7));
            return snapshotName(wheel);
        }"""
    )
    page.reload()
    open_console(page, server.url)
    assert page.evaluate(HOW) == "bad-snapshot"
    assert run_py(page, WORKS)[0] == 1
    assert page.evaluate("globalThis.edgesqlStart.snapshot") == current
    assert snapshot_entries(page) == [current]  # the other version's is gone too
    page.reload()
    open_console(page, server.url)
    assert page.evaluate(HOW) == "snapshot"
    assert run_py(page, WORKS)[0] == 2


def test_the_app_starts_from_its_snapshot(persistent_context: Any, server: Any) -> None:
    page = persistent_context().new_page()

    def open_app() -> None:
        page.goto(f"{server.url}/")
        page.wait_for_function("document.documentElement.dataset.ready", timeout=90_000)
        assert page.evaluate("document.documentElement.dataset.ready") == "true", page.inner_text("body")

    open_app()
    returning_visit(page)
    open_app()
    assert page.evaluate("globalThis.edgesqlStart.snapshot")
    open_app()
    assert page.evaluate(HOW) == "snapshot"
    assert run_py(page, "(await db.execute('SELECT count(*) FROM projects')).scalar()") == 0
