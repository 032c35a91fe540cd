"""The contract suite (tests/test_sync_contract.py), every case, sent straight to the Worker
that fronts a real sqld — no serve.py in front of it, as a Worker deployed for Turso is reached.

serve.py --primary turso-local starts sqld and the Worker (on workerd, configured with the
sqld's URL as a Turso deployment is with its libsql:// URL); the requests then go to the
Worker's own address, so its own checks (token, content type, size, CORS) answer them, not
serve.py's door. The primary's file is still sqld's database, read by the cases that check
what was stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from tests.conftest import start_server
from tests.sync.primaries import CONTRACT_SCHEMA, TOKEN, PrimaryServer
from tests.sync.turso import worker_url as turso_worker_url
from tests.test_sync_contract import *  # noqa: F403  (the cases, collected here once more)


@pytest.fixture(scope="module")
def primary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrimaryServer]:  # (overrides the suite's)
    """The Worker in front of local sqld, reached at its own URL."""
    base = tmp_path_factory.mktemp("contract-turso-worker")
    schema = base / "schema.sql"
    schema.write_text(CONTRACT_SCHEMA)
    server = start_server(
        base / "data", "--primary", "turso-local", "--schema", str(schema), "--auth-token", TOKEN, timeout=90
    )
    worker = turso_worker_url(server)
    yield PrimaryServer("turso-worker", replace(server, url=worker), worker)
    server.stop()
