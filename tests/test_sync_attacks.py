"""A token holder attacking /sync with valid requests (issue 12), on both primaries.

Each test is a finding that held before: another spelling of a row's key that
overwrote it with an old stamp, a push under another device's replica id, and
requests whose work had no bound. Requests are built by hand (tests/sync/wire.py),
as an attacker would; the victims are real edgesql replicas.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from tests.aio import run
from tests.conftest import start_server
from tests.sync.harness import table_state
from tests.sync.primaries import (
    CONTRACT_SCHEMA,
    TOKEN,
    PrimaryServer,
    enc,
    hlc,
    http,
    key,
    replica_id,
    worker_url,
)
from tests.sync.wire import envelope, replica_key

import edgesql
from edgesql.sync.serversql import PULL_SCAN_ROWS

PRIMARIES = ["sqlite", "d1-local", "turso-local"]


@pytest.fixture(scope="module", params=PRIMARIES)
def primary(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrimaryServer]:
    base = tmp_path_factory.mktemp(f"attacks-{request.param}")
    schema = base / "schema.sql"
    schema.write_text(CONTRACT_SCHEMA)
    server = start_server(
        base / "data", "--primary", request.param, "--schema", str(schema), "--auth-token", TOKEN, timeout=90
    )
    yield PrimaryServer(request.param, server, worker_url(server))
    server.stop()


def post(primary: PrimaryServer, replica: str, changes: list[Any] | None = None, **fields: Any) -> Any:
    return http(
        "POST", primary.sync_url, json.dumps(envelope(replica, changes=changes or [], **fields)).encode()
    )


async def replica(primary: PrimaryServer) -> edgesql.Connection:
    return await edgesql.connect(":memory:", sync_url=primary.sync_url, auth_token=TOKEN, sync_interval=None)


async def state(db: edgesql.Connection, where: str) -> Any:
    return table_state((await db.execute(f"SELECT * FROM items WHERE {where} ORDER BY id")).rows)


def stored(primary: PrimaryServer, where: str) -> Any:
    return table_state(primary.query(f"SELECT * FROM items WHERE {where} ORDER BY id"))


# -- 1. one row, one key ---------------------------------------------------------------------


def spellings(text: str) -> list[str]:
    """Other texts that decode to the key of the TEXT id ``text``."""
    h = text.encode().hex().upper()
    canonical = f'["t{h}"]'
    escaped = '["' + "".join(f"\\u{ord(c):04x}" for c in "t" + h) + '"]'
    return [
        canonical + " ",
        f'["t{h}" ]',
        f'[\n"t{h}"]',
        f' ["t{h}"]',
        f'["t{h.lower()}"]' if h.lower() != h else f'["t{h}" \t]',
        escaped,
        f'["i{text}"]' if text.isdigit() else f'["t{h}"]\n',
    ]


def test_a_key_is_accepted_only_in_its_canonical_form(primary: PrimaryServer) -> None:
    """Found: '["tHEX"] ', '["tHEX" ]', '[\\n"tHEX"]' and an `i` part for a TEXT key were all
    the row's key to the table and another key to every clock. A change under one, stamped
    long ago, overwrote the row on the primary and every replica, reset its other columns
    on the primary only, or deleted it from the primary's table while its clock said it
    existed; replicas diverged without a word."""

    async def check() -> None:
        a, b = await replica(primary), await replica(primary)
        await a.execute("INSERT INTO items (id, a, b, c) VALUES ('123', 'A', 2, 'title')")
        await a.execute("INSERT INTO pairs (x, y, v) VALUES ('p', 1, 'pair')")
        await a.sync()
        await b.sync()
        before = stored(primary, "id = '123'")
        attacker = replica_id("respell")
        seq = 0
        for variant in spellings("123"):
            seq += 1
            over = [seq, "items", variant, "1", {"c": enc("owned"), "_edgesql_exists": ["i", "1"]}, 1]
            seq += 1
            delete = [seq, "items", variant, "2", {"_edgesql_exists": ["i", "0"]}, 1]
            answer = post(primary, attacker, [over, delete])
            assert answer.status == 200, answer.body
            codes = [(r["seq"], r["code"]) for r in answer.json["rejected"]]
            assert codes == [(seq - 1, "malformed"), (seq, "malformed")], (variant, codes)
            assert "canonical" in answer.json["rejected"][0]["reason"]
        # An INTEGER key column stores the text '1' as the integer 1: only `i1` is its key.
        for variant in ['["t70","t31"]', '["t70","i01"]', '["t70","i+1"]', '["t70","i1.0"]']:
            seq += 1
            answer = post(primary, attacker, [[seq, "pairs", variant, "1", {"v": enc("owned")}, 1]])
            assert [r["code"] for r in answer.json["rejected"]] == ["malformed"], variant
        # The canonical key still works, and text that merely looks numeric in a TEXT key too.
        seq += 1
        good = [seq, "items", key("0x10"), hlc(), {"a": enc("fine"), "_edgesql_exists": ["i", "1"]}, 1]
        assert post(primary, attacker, [good]).json["rejected"] == []
        assert stored(primary, "id = '123'") == before
        await a.sync()
        await b.sync()
        assert await state(a, "id = '123'") == before == await state(b, "id = '123'")
        assert primary.query("SELECT count(*) FROM _edgesql_clock WHERE pk LIKE '% %'") == [(0,)]
        await a.close()
        await b.close()

    run(check())


def test_a_column_given_twice_in_one_change_counts_once_the_same_everywhere(primary: PrimaryServer) -> None:
    """JSON lets an object name a key twice; every primary keeps the last (Python's and
    JavaScript's parsers both do), so every replica gets the same single cell."""
    body = json.dumps(envelope(replica_id("twice"))).encode()[:-1]
    change = f'[1, "items", {json.dumps(key("twice"))}, "{hlc()}", {{"c": ["t", "x"], "_edgesql_exists": ["i", "1"], "c": ["t", "y"]}}, 1]'
    answer = http("POST", primary.sync_url, body + f', "changes": [{change}]}}'.encode())
    assert answer.status == 200 and answer.json["rejected"] == []
    assert primary.query("SELECT c FROM items WHERE id = 'twice'") == [("y",)]
    cells = primary.query("SELECT cells FROM _edgesql_changes WHERE pk = ?", (key("twice"),))
    assert [json.loads(c)["c"] for (c,) in cells] == [["t", "y"]]


# -- 5. a replica id belongs to its device ----------------------------------------------------


def test_nobody_else_can_push_under_a_replicas_id(primary: PrimaryServer) -> None:
    """Found: every pull shows each change's writer; a change pushed under a victim's id
    (with an unused high seq) changed the row for everyone but the victim, who never pulled
    it back and reported nothing pending and no error."""

    async def check() -> None:
        victim, other = await replica(primary), await replica(primary)
        await victim.execute("INSERT INTO items (id, c) VALUES ('victim-row', 'mine')")
        await victim.sync()
        pulled = http("POST", primary.sync_url, json.dumps(envelope(replica_id("spy"), limit=5000)).encode())
        victim_id = (await victim.execute("SELECT replica FROM _edgesql_state")).scalar()
        assert victim_id in {c[1] for c in pulled.json["changes"]}  # the id is no secret
        forged = [10**6, "items", key("victim-row"), hlc(), {"c": enc("forged")}, 1]
        body = {**envelope(victim_id, changes=[forged]), "key": replica_key("attacker")}
        answer = http("POST", primary.sync_url, json.dumps(body).encode())
        assert answer.status == 403 and answer.json["error"] == "replica_forbidden"
        assert primary.query("SELECT c FROM items WHERE id = 'victim-row'") == [("mine",)]
        # An id nobody has used yet is the first user's: the attacker can have its own.
        fresh = replica_id("squatter")
        assert post(primary, fresh, []).status == 200
        assert (
            http(
                "POST",
                primary.sync_url,
                json.dumps({**envelope(fresh), "key": replica_key("x" + fresh)}).encode(),
            ).status
            == 403
        )
        await victim.execute("UPDATE items SET c = 'still mine' WHERE id = 'victim-row'")
        await victim.sync()
        await other.sync()
        assert await state(victim, "id = 'victim-row'") == await state(other, "id = 'victim-row'")
        assert stored(primary, "id = 'victim-row'") == await state(other, "id = 'victim-row'")
        await victim.close()
        await other.close()

    run(check())


def test_a_device_whose_id_was_taken_takes_a_new_one_and_converges(primary: PrimaryServer) -> None:
    """An attacker who registers an id before its device first syncs (an id seen nowhere, so
    only by guessing): the device is refused, takes a new id and key, and loses nothing."""

    async def check() -> None:
        a, b = await replica(primary), await replica(primary)
        taken = (await a.execute("SELECT replica FROM _edgesql_state")).scalar()
        assert (
            http(
                "POST",
                primary.sync_url,
                json.dumps({**envelope(taken), "key": replica_key("thief")}).encode(),
            ).status
            == 200
        )
        await a.execute("INSERT INTO items (id, c) VALUES ('renamed', 'kept')")
        await a.sync()
        assert (await a.execute("SELECT replica FROM _edgesql_state")).scalar() != taken
        await b.sync()
        assert (
            await state(b, "id = 'renamed'")
            == await state(a, "id = 'renamed'")
            == stored(primary, "id = 'renamed'")
        )
        await a.close()
        await b.close()

    run(check())


# -- 6. bounded work per request -------------------------------------------------------------


def end_of_log(primary: PrimaryServer) -> int:
    reader, cursor = replica_id("end"), 0
    while True:
        body = post(primary, reader, cursor=cursor, limit=5000).json
        cursor = body["cursor"]
        if not body["more"]:
            return int(cursor)


def test_a_pull_reads_a_bounded_part_of_the_log(primary: PrimaryServer) -> None:
    """Found: with a ~475k-change log, an 86-byte pull (cursor 0, limit 0) cost 0.7-0.9 s:
    `remaining` counted the whole log and PULL scanned past the replica's own changes.
    Now a pull reads at most PULL_SCAN_ROWS log rows, and `remaining` is an estimate."""
    writer = replica_id("own-run")
    start = end_of_log(primary)
    base = 0
    for _ in range(PULL_SCAN_ROWS // 5000 + 1):  # more of its own changes than one pull reads
        page = [[base + i + 1, "items", key(f"run-{base + i}"), hlc(), {"b": enc(i)}, 1] for i in range(5000)]
        assert post(primary, writer, page).json["acked"] == base + 5000
        base += 5000
    answer = post(primary, writer, cursor=start, limit=10)
    body = answer.json
    assert body["changes"] == [] and body["more"] is True
    assert start < body["cursor"] <= start + PULL_SCAN_ROWS
    assert body["remaining"] >= 0
    # Round after round, the writer's cursor still reaches the end of the log.
    cursor, rounds = body["cursor"], 1
    while True:
        body = post(primary, writer, cursor=cursor, limit=10).json
        cursor, rounds = body["cursor"], rounds + 1
        if not body["more"]:
            break
    assert rounds >= 2 and body["remaining"] == 0


def test_the_work_of_splitting_a_refused_page_is_bounded(primary: PrimaryServer) -> None:
    """Found: a push of 5,000 changes that each break a CHECK held the primary for ~1.9 s.
    A request now settles what its budget allows, acknowledges no further, and the
    replica sends the rest again; every change ends rejected, nothing applied twice."""
    writer = replica_id("refused")
    changes = [
        [i + 1, "checked", key(f"neg-{i}"), hlc(), {"n": enc(-1), "_edgesql_exists": ["i", "1"]}, 1]
        for i in range(600)
    ]
    pending, rejected, requests = changes, [], 0
    t0 = time.monotonic()
    while pending:
        requests += 1
        body = post(primary, writer, pending).json
        assert all(r["seq"] <= body["acked"] for r in body["rejected"])
        rejected += [r["seq"] for r in body["rejected"]]
        pending = [c for c in pending if c[0] > body["acked"]]
        assert requests < 50
    assert sorted(rejected) == list(range(1, 601))
    assert requests >= 2, "one request settled 600 refused changes: no budget"
    assert primary.query("SELECT count(*) FROM checked WHERE id IN (SELECT id FROM checked WHERE n < 0)") == [
        (0,)
    ]
    assert time.monotonic() - t0 < 120
