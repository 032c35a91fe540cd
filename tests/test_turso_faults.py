"""Turso's failures, on a real sqld behind ``serve.py --primary turso-local``: a sqld that stops
answering (SIGSTOP: a wedged server, as seen under heavy write contention) and a database
whose write lock someone else holds (`database is locked`).

What a user must see: 503 with Retry-After (their replica backs off and keeps its outbox),
never a request that hangs; no page half-applied; and sync working again, every change
stored once, as soon as the database is back.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from tests.conftest import start_server
from tests.sync.primaries import CONTRACT_SCHEMA, TOKEN, PrimaryServer, insert, key, replica_id, sync
from tests.sync.turso import sqld_pid

#: The Worker's timeout on each call to sqld, shortened for the test (10 s by default).
TIMEOUT_MS = 1500
PAGE = 50


@pytest.fixture(scope="module")
def primary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrimaryServer]:
    base = tmp_path_factory.mktemp("turso-faults")
    schema = base / "schema.sql"
    schema.write_text(CONTRACT_SCHEMA)
    server = start_server(
        base / "data",
        *("--primary", "turso-local", "--schema", str(schema), "--auth-token", TOKEN),
        timeout=90,
        env={"EDGESQL_TURSO_TIMEOUT_MS": str(TIMEOUT_MS)},
    )
    yield PrimaryServer("turso-local", server, None)
    server.stop()


def page(tag: str) -> list[Any]:
    """PAGE inserts of rows named after ``tag``, one transaction."""
    return [insert(i + 1, "items", key(f"{tag}-{i:03d}"), txend=int(i == PAGE - 1), b=i) for i in range(PAGE)]


def stored(primary: PrimaryServer, tag: str) -> int:
    return primary.query("SELECT count(*) FROM items WHERE id LIKE ?", (f"{tag}-%",))[0][0]


def assert_unavailable(answer: Any) -> None:
    """503 primary_unavailable, Retry-After, and a message saying which database and what to do."""
    assert answer.status == 503, answer.body
    assert answer.json["error"] == "primary_unavailable"
    assert answer.headers["retry-after"] == "1"
    assert answer.json["message"].startswith("the database (Turso) could not run this request: retry later")


def test_a_stopped_sqld_gives_503s_then_sync_resumes_with_nothing_half_applied(
    primary: PrimaryServer,
) -> None:
    pid = sqld_pid(primary.server)
    tags = [replica_id("stop") for _ in range(12)]
    pages = {t: page(t) for t in tags}
    before = sync(primary.sync_url, replica_id("warm"), [], limit=0)
    assert before.status == 200, before.body
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        # More requests at once than the Worker keeps in flight to sqld: the rest wait in line.
        with ThreadPoolExecutor(len(tags)) as pool:
            answers = list(pool.map(lambda t: sync(primary.sync_url, t, pages[t]), tags))
        took = time.monotonic() - started
        for a in answers:
            assert_unavailable(a)
        # Every request got its answer within the timeout (a little over, for the queue and HTTP).
        assert took < 3 * TIMEOUT_MS / 1000 + 2, took
    finally:
        os.kill(pid, signal.SIGCONT)
    # Back: whatever sqld took before it stopped is whole pages, never part of one.
    deadline = time.monotonic() + 10
    while (
        time.monotonic() < deadline and sync(primary.sync_url, replica_id("probe"), [], limit=0).status != 200
    ):
        time.sleep(0.1)
    for t in tags:
        assert stored(primary, t) in (0, PAGE), t
    # The replicas push again (as they do after a 503): every page is stored, each row once.
    for t in tags:
        again = sync(primary.sync_url, t, pages[t])
        assert again.status == 200, again.body
        assert again.json["acked"] == PAGE and again.json["rejected"] == []
        assert stored(primary, t) == PAGE
    sums = primary.query("SELECT count(*), sum(b) FROM items WHERE id LIKE 'stop-%'")
    assert sums == [(PAGE * len(tags), len(tags) * sum(range(PAGE)))]


def test_a_locked_database_gives_503_and_changes_nothing_until_it_is_free(primary: PrimaryServer) -> None:
    tag = replica_id("locked")
    # Someone else holds sqld's write lock (another process on the same file, as a long
    # migration or a backup tool would): sqld answers `database is locked`.
    holder = sqlite3.connect(primary.db_path(), isolation_level=None, timeout=0)
    holder.execute("BEGIN IMMEDIATE")
    try:
        answer = sync(primary.sync_url, tag, page(tag))
        assert_unavailable(answer)
        assert stored(primary, tag) == 0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    again = sync(primary.sync_url, tag, page(tag))
    assert again.status == 200, again.body
    assert again.json["acked"] == PAGE and stored(primary, tag) == PAGE
