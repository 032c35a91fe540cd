"""The browser test of two offline profiles converging (tests/test_sync_browser.py), run
once more with ``serve.py --primary d1-local``: the Cloudflare Worker on workerd's D1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests import test_sync_browser
from tests.conftest import Server, start_server

pytestmark = pytest.mark.browser


def start_d1(data: Path, port: int = 0) -> Server:
    return start_server(data, "--primary", "d1-local", port=port, timeout=90)


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Server]:
    server = start_d1(tmp_path / "data")
    yield server
    server.stop()


def test_two_offline_browsers_converge_on_local_d1(browser: Any, own_server: Server, outside: Any) -> None:
    # The test restarts the server with the same arguments: d1-local again, whose
    # local D1 persists under data/d1.
    test_sync_browser.test_two_offline_browsers_converge(browser, own_server, outside)
