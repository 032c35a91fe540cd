"""Users in the browser: a page's replica with ``connect(auth=provider)`` against serve.py
with access rules and ``--jwt-secret`` (issue 15).

The page's token provider hands out tokens the test made (as an app's sign-in would):
the first has expired, so the worker's background sync gets 401 token_expired, asks the
page, and syncs with the provider's next token, without a reload. A CPython replica of
another user sees none of the page user's rows; another user signing in on the same
OPFS database starts it afresh, the previous user's rows gone from the device.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from tests.aio import run
from tests.conftest import Server, open_console, run_py, start_server, wait_py
from tests.sync.primaries import PrimaryServer
from tests.test_sync_users import ACCESS, SCHEMA

import edgesql

pytestmark = pytest.mark.browser

SECRET = "users-browser-secret-0123456789abcdef"


def token(user: str, expires_in: float = 600) -> str:
    return pyjwt.encode({"sub": user, "exp": int(time.time() + expires_in)}, SECRET, "HS256")


@pytest.fixture
def users_server(tmp_path: Path) -> Iterator[Server]:
    schema = tmp_path / "schema"
    schema.mkdir()
    (schema / "0001_init.sql").write_text(SCHEMA)
    (schema / "access.sql").write_text(ACCESS)
    s = start_server(tmp_path / "data", "--schema", str(schema), "--jwt-secret", SECRET)
    yield s
    s.stop()


#: The page's sign-in: tokens the test puts in `TOKENS`, the first one first; `ASKED` counts.
PROVIDER = """
import edgesql, json
TOKENS = json.loads({tokens!r})
ASKED = []
def sign_in():
    ASKED.append(1)
    return TOKENS[min(len(ASKED), len(TOKENS)) - 1]
udb = await edgesql.connect("users.db", sync_url="/sync", auth=sign_in, sync_interval=1)
"""


def test_the_page_renews_an_expired_token_and_sees_only_its_users_rows(
    browser: Any, users_server: Server, outside: Any
) -> None:
    server = users_server
    primary = PrimaryServer("sqlite", server, None)
    ctx = browser.new_context()
    outside.watch(ctx)
    page = open_console(ctx.new_page(), server.url)
    # The first token is within the primary's 60 s of leeway for 5 s more: taken at start,
    # refused (token_expired) by the time the page writes.
    tokens = [token("alice", expires_in=-55), token("alice")]
    started = time.monotonic()
    run_py(page, PROVIDER.format(tokens=json.dumps(tokens)))
    assert run_py(page, "len(ASKED)") == 1
    time.sleep(max(0.0, 7 - (time.monotonic() - started)))
    run_py(
        page,
        "await udb.execute(\"INSERT INTO notes VALUES ('from-page', 'alice', 'written in the browser')\")",
    )
    # Background sync: 401 token_expired, the page's provider asked again, the note on the primary.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not primary.query("SELECT 1 FROM notes WHERE id = 'from-page'"):
        time.sleep(0.2)
    assert primary.query("SELECT owner, body FROM notes WHERE id = 'from-page'") == [
        ("alice", "written in the browser")
    ]
    assert run_py(page, "len(ASKED)") == 2

    async def others() -> None:
        bob = await edgesql.connect(":memory:", sync_url=server.url + "/sync", auth=lambda: token("bob"))
        alice = await edgesql.connect(":memory:", sync_url=server.url + "/sync", auth=lambda: token("alice"))
        try:
            await bob.execute("INSERT INTO notes VALUES ('bobs', 'bob', 'bob only')")
            await bob.sync()
            await alice.sync()
            assert (await bob.execute("SELECT id FROM notes")).rows == [("bobs",)]
            assert (await alice.execute("SELECT id FROM notes")).rows == [("from-page",)]
        finally:
            await bob.close()
            await alice.close()

    run(others())
    run_py(page, "await udb.sync()")
    assert run_py(page, '[r[0] for r in (await udb.execute("SELECT id FROM notes ORDER BY id")).rows]') == [
        "from-page"
    ]

    # Bob signs in on this device: Alice's rows go, Bob's come.
    run_py(page, "await udb.close()")
    run_py(page, PROVIDER.format(tokens=json.dumps([token("bob")])))
    wait_py(
        page, '[r[0] for r in (await udb.execute("SELECT id FROM notes ORDER BY id")).rows]', ["bobs"], 30
    )
    ctx.close()
