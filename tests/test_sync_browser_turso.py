"""The browser test of two offline profiles converging (tests/test_sync_browser.py), run
once more with ``serve.py --primary turso-local``: the Worker on workerd in front of a
real libSQL server (sqld), over Hrana."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests import test_sync_browser
from tests.conftest import Server, start_server

pytestmark = pytest.mark.browser


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Server]:
    server = start_server(tmp_path / "data", "--primary", "turso-local", timeout=90)
    yield server
    server.stop()


def test_two_offline_browsers_converge_on_local_turso(browser: Any, own_server: Server, outside: Any) -> None:
    # The test restarts the server with the same arguments: turso-local again, whose sqld
    # keeps its database under data/turso.
    test_sync_browser.test_two_offline_browsers_converge(browser, own_server, outside)
