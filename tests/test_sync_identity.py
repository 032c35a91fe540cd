"""Users over real HTTP, on both primaries: who may call /sync, and what one user can learn
of or do to another's data.

serve.py runs the users schema (tests/test_sync_users.py's tables and access rules) with
``--jwt-secret``; on d1-local the Worker on workerd checks the same tokens with `jose`
(cloudflare/src/jwt.js) and serve.py's door checks them first. Tokens are made here with
PyJWT, as an app's sign-in would: expired, signed with another secret, unsigned, without
a user, or good.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from tests import aio
from tests.conftest import start_server
from tests.sync.primaries import Answer, PrimaryServer, enc, hlc, http, insert, key, replica_id, worker_url
from tests.sync.wire import envelope
from tests.test_sync_users import ACCESS, SCHEMA

import edgesql

SECRET = "identity-tests-secret-0123456789abcdef"
PRIMARIES = ["sqlite", "d1-local"]


def token(user: str | None, expires_in: float = 300, secret: str = SECRET, **claims: Any) -> str:
    """A token the app's sign-in would give ``user``."""
    body: dict[str, Any] = {"exp": int(time.time() + expires_in), **claims}
    if user is not None:
        body["sub"] = user
    return pyjwt.encode(body, secret, "HS256")


def unsigned(user: str) -> str:
    """A token with alg "none": anyone can make one, so no primary may take it."""

    def part(d: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part({'sub': user, 'exp': int(time.time()) + 300})}."


@pytest.fixture(scope="module", params=PRIMARIES)
def primary(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrimaryServer]:
    base = tmp_path_factory.mktemp(f"identity-{request.param}")
    schema = base / "schema"
    schema.mkdir()
    (schema / "0001_init.sql").write_text(SCHEMA)
    (schema / "access.sql").write_text(ACCESS)
    server = start_server(
        base / "data", "--primary", request.param, "--schema", str(schema), "--jwt-secret", SECRET, timeout=90
    )
    yield PrimaryServer(request.param, server, worker_url(server))
    server.stop()


def call(
    p: PrimaryServer, as_token: str | None, replica: str, changes: list[Any] | None = None, **f: Any
) -> Answer:
    body = {**envelope(replica), "limit": 2000, **f}
    if changes is not None:
        body["changes"] = changes
    return http("POST", p.sync_url, json.dumps(body).encode(), token=as_token)


def urls(p: PrimaryServer) -> list[str]:
    """serve.py's /sync, and the Worker's own where it has one: both must check."""
    return [p.url] + ([p.worker_url] if p.worker_url else [])


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        (lambda: token("alice", expires_in=-300), "token_expired"),
        (lambda: token("alice", secret="not-the-secret-0123456789abcdefgh"), "bad_token"),
        (lambda: unsigned("alice"), "bad_token"),
        (lambda: token(None), "bad_token"),
        (lambda: "not-a-jwt", "bad_token"),
    ],
    ids=["expired", "forged", "alg-none", "no-sub", "not-a-jwt"],
)
def test_a_token_the_primary_cannot_trust_gets_401_with_a_code_the_client_acts_on(
    primary: PrimaryServer, bad: Any, code: str
) -> None:
    for base in urls(primary):
        for method, path in (("POST", "/sync"), ("GET", "/sync/schema")):
            body = json.dumps(envelope(replica_id("bad"))).encode() if method == "POST" else None
            answer = http(method, base + path, body, token=bad())
            assert answer.status == 401 and answer.json["error"] == code, (base, path, answer)
            assert answer.json["message"], answer


def test_a_token_within_the_clock_leeway_is_taken(primary: PrimaryServer) -> None:
    """Clocks differ: a token that expired 30 s ago by this clock is still taken (60 s leeway)."""
    assert call(primary, token("alice", expires_in=-30), replica_id("leeway")).status == 200


def test_without_a_token_the_primary_says_to_sign_in(primary: PrimaryServer) -> None:
    answer = call(primary, None, replica_id("anon"))
    assert answer.status == 401 and answer.json["error"] == "unauthorized", answer


def pull_all(p: PrimaryServer, as_token: str, replica: str) -> list[dict[str, Any]]:
    """A new replica's pulls until the primary says there is no more: every answer."""
    answers: list[dict[str, Any]] = []
    cursor, snapshot = 0, None
    for _ in range(20):
        answer = call(p, as_token, replica, cursor=cursor, snapshot=snapshot)
        assert answer.status == 200, answer
        r = answer.json
        answers.append(r)
        if not r["more"]:
            return answers
        cursor = r["cursor"]
        snap = r.get("snapshot")
        snapshot = (
            None if snap is None or snap["done"] else {k: snap[k] for k in ("at", "tbl", "pk", "bucket")}
        )
    raise AssertionError(f"no end of the pull: {answers}")


def seen(answers: list[dict[str, Any]]) -> list[Any]:
    """What a user learns from a pull, but for where the log stands (the cursor and the
    primary's clock, which move with anyone's writes: docs/sync.md says so)."""
    out = []
    for a in answers:
        a = {k: v for k, v in a.items() if k not in ("cursor", "server_hlc")}
        if a.get("snapshot"):
            a["snapshot"] = {k: v for k, v in a["snapshot"].items() if k != "at"}
        out.append(a)
    return out


def test_another_user_cannot_read_a_bucket_or_learn_of_it(primary: PrimaryServer) -> None:
    """Alice's note: Bob's pull brings nothing of it, not in its changes, not in `remaining`,
    not in the buckets he is told about; it answers him exactly as before the note existed."""
    alice, bob = token("alice"), token("bob")
    bobs = replica_id("bob-before")
    before = pull_all(primary, bob, bobs)
    note = insert(1, "notes", key("secret-note"), owner="alice", body="alice's diary")
    a = call(primary, alice, replica_id("alice"), [note])
    assert a.status == 200 and a.json["acked"] == 1 and not a.json["rejected"], a
    assert primary.query("SELECT body FROM notes WHERE id = 'secret-note'") == [("alice's diary",)]
    after = pull_all(primary, bob, replica_id("bob-after"))
    assert seen(after) == seen(before)
    assert "alice" not in json.dumps(after), after
    # Bob's replica that was already up to date: its next pull is empty too.
    again = call(primary, bob, bobs, cursor=before[-1]["cursor"]).json
    assert again["changes"] == [] and again["remaining"] == 0 and not again["more"], json.dumps(
        [before, again]
    )
    # Alice herself reads it back on another device.
    mine = pull_all(primary, alice, replica_id("alice-2"))
    assert any(
        c[2] == "notes" and c[5].get("body") == enc("alice's diary") for r in mine for c in r["changes"]
    ), mine


def test_another_user_cannot_write_into_a_bucket(primary: PrimaryServer) -> None:
    """Bob writes a note as Alice's, and edits Alice's: both rejected `forbidden`, the primary unchanged."""
    alice, bob = token("alice"), token("bob")
    assert (
        call(
            primary, alice, replica_id("a"), [insert(1, "notes", key("n-a"), owner="alice", body="a")]
        ).status
        == 200
    )
    bob_replica = replica_id("bob-writes")
    forged = insert(1, "notes", key("n-b"), owner="alice", body="planted by bob")
    edit = [2, "notes", key("n-a"), hlc(), {"body": enc("edited by bob")}, 1]
    answer = call(primary, bob, bob_replica, [forged, edit])
    assert answer.status == 200, answer
    rejected = {r["seq"]: r for r in answer.json["rejected"]}
    assert set(rejected) == {1, 2} and {r["code"] for r in rejected.values()} == {"forbidden"}, answer
    assert all(r["reason"] for r in rejected.values()), answer
    assert primary.query("SELECT id, body FROM notes WHERE id IN ('n-a', 'n-b')") == [("n-a", "a")]


def test_a_replica_id_stays_its_first_users(primary: PrimaryServer) -> None:
    """Bob with Alice's replica id (and its key: a copied database) is refused 403 replica_user,
    and nothing of his push lands."""
    alice_replica = replica_id("alice-owned")
    assert call(primary, token("alice"), alice_replica).status == 200
    push = [insert(1, "notes", key("as-alice"), owner="bob", body="under alice's id")]
    answer = call(primary, token("bob"), alice_replica, push)
    assert answer.status == 403 and answer.json["error"] == "replica_user", answer
    assert primary.query("SELECT count(*) FROM notes WHERE id = 'as-alice'") == [(0,)]


def test_a_replica_renews_an_expired_token_and_a_new_user_starts_afresh(
    primary: PrimaryServer, tmp_path: Path
) -> None:
    """connect(auth=provider) over real HTTP: the first token has expired, so the primary says
    token_expired, the replica asks the provider again and syncs. Then Bob signs in on the same
    database file: Alice's rows leave the device, her unsent write is kept as rejected, and Bob
    syncs as a new replica."""
    path = str(tmp_path / "device.db")
    asked: list[str] = []

    def alice_sign_in() -> str:
        asked.append("alice")
        return token("alice", expires_in=-300 if len(asked) == 1 else 300)

    async def run() -> None:
        db = await edgesql.connect(path, sync_url=primary.sync_url, auth=alice_sign_in, sync_interval=None)
        try:
            await db.execute("INSERT INTO notes VALUES ('renewed', 'alice', 'after a refresh')")
            await db.sync()
            assert (await db.sync_status()).last_error is None
        finally:
            await db.close()
        assert len(asked) >= 2, asked  # expired at start (schema), asked again
        assert primary.query("SELECT owner FROM notes WHERE id = 'renewed'") == [("alice",)]

        db = await edgesql.connect(
            path, sync_url=primary.sync_url, auth=lambda: token("alice"), sync_interval=None
        )
        await db.execute("INSERT INTO notes VALUES ('unsent', 'alice', 'never synced')")
        await db.close()
        db = await edgesql.connect(
            path, sync_url=primary.sync_url, auth=lambda: token("bob"), sync_interval=None
        )
        try:
            assert (await db.execute("SELECT id FROM notes")).rows == []
            kept = (await db.execute("SELECT pk, code FROM _edgesql_rejected")).rows
            assert [code for _, code in kept] == ["signed_out"], kept
            await db.execute("INSERT INTO notes VALUES ('bobs', 'bob', 'bob on the same device')")
            await db.sync()
            assert sorted(r[0] for r in (await db.execute("SELECT id FROM notes")).rows) == ["bobs"]
        finally:
            await db.close()
        assert primary.query("SELECT owner FROM notes WHERE id IN ('bobs', 'unsent')") == [("bob",)]

    aio.run(run())
