"""``serve.py --primary turso --turso-url URL``: the Worker in front of a libSQL server it did not
start, with the database's token from ``$EDGESQL_TURSO_TOKEN`` — here a real sqld that demands
Ed25519 JWTs, as Turso Cloud does."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import ROOT, start_server
from tests.sync.primaries import CONTRACT_SCHEMA, TOKEN, insert, key, replica_id, sync
from tests.sync.turso import ed25519_token

from edgesql.server.sqld import Sqld


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sqld, str, Path]]:
    """sqld with JWT authentication; its token; a schema file."""
    base = tmp_path_factory.mktemp("turso-remote")
    pem, jwt = ed25519_token()
    (base / "key.pem").write_text(pem)
    sqld = Sqld.start(base / "sqld", extra_args=("--auth-jwt-key-file", str(base / "key.pem")))
    (base / "schema.sql").write_text(CONTRACT_SCHEMA)
    yield sqld, jwt, base / "schema.sql"
    sqld.stop()


def test_serve_py_syncs_through_a_turso_url_with_its_token(
    guarded: tuple[Sqld, str, Path], tmp_path: Path
) -> None:
    sqld, jwt, schema = guarded
    server = start_server(
        tmp_path / "data",
        *("--primary", "turso", "--turso-url", sqld.url, "--schema", str(schema), "--auth-token", TOKEN),
        timeout=90,
        env={"EDGESQL_TURSO_TOKEN": jwt},
    )
    try:
        assert not any(jwt in line for line in server.log), "the database's token was printed"
        rid = replica_id("remote")
        answer = sync(server.url + "/sync", rid, [insert(1, "items", key("remote-1"), b=7)])
        assert answer.status == 200 and answer.json["acked"] == 1, answer.body
    finally:
        server.stop()
    import sqlite3

    db = sqlite3.connect(f"file:{sqld.database_file}?mode=ro", uri=True)
    try:
        assert db.execute("SELECT b FROM items WHERE id = 'remote-1'").fetchall() == [(7,)]
    finally:
        db.close()


def serve_py_fails(data: Path, *args: str, token: str = "") -> str:
    """Run serve.py expecting it to refuse to start; what it said."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "serve.py"), "--port", "0", "--data", str(data), *args],
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "EDGESQL_TURSO_TOKEN": token},
        cwd=ROOT,
    )
    assert done.returncode != 0, done.stdout
    return done.stdout + done.stderr


@pytest.mark.parametrize("token", ["", "not-a-jwt"])
def test_without_the_database_token_serve_py_says_why_it_cannot_start(
    guarded: tuple[Sqld, str, Path], tmp_path: Path, token: str
) -> None:
    sqld, _, schema = guarded
    said = serve_py_fails(
        tmp_path / "data", "--primary", "turso", "--turso-url", sqld.url, "--schema", str(schema), token=token
    )
    assert "answered 401" in said


@pytest.mark.parametrize(
    ("url", "says"),
    [("ftp://db.example", "is not a database URL"), ("libsql://db.example?authToken=x", "credentials")],
)
def test_a_turso_url_serve_py_cannot_use_is_refused_with_what_to_give(
    tmp_path: Path, url: str, says: str
) -> None:
    assert says in serve_py_fails(tmp_path / "data", "--primary", "turso", "--turso-url", url)
