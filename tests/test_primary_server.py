"""The embedded primary as a server: its WAL is checkpointed off the request, and a /sync
request leaves Python's garbage collector as it found it."""

from __future__ import annotations

import gc
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from tests.sync.primaries import insert, key, replica_id
from tests.sync.wire import envelope

from edgesql.server import primary as primary_module
from edgesql.server.primary import Primary
from edgesql.server.sync_routes import SyncHandler
from edgesql.sync.schema import Migration

SCHEMA = (Migration(1, "init", "CREATE TABLE items (id TEXT PRIMARY KEY, a TEXT);"),)


def push(handler: SyncHandler, replica: str, changes: list[Any]) -> dict[str, Any]:
    body = envelope(replica, changes=changes)
    status, out = handler.sync(None, json.dumps(body).encode())
    assert status == 200, out
    return json.loads(out)


def in_file(path: Path) -> int:
    """Changes in the database file itself, ignoring the WAL: what checkpoints have copied
    (-1 while the file holds no change log yet, or is caught mid-checkpoint)."""
    db = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        return db.execute("SELECT count(*) FROM _edgesql_changes").fetchone()[0]
    except sqlite3.DatabaseError:
        return -1
    finally:
        db.close()


def checkpointers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "edgesql-checkpoint"]


def wait_for(condition: Any, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_the_wal_is_copied_into_the_file_by_the_checkpointer_not_the_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(primary_module, "CHECKPOINT_PAGES", 1)
    monkeypatch.setattr(primary_module, "CHECKPOINT_BEHIND_PAGES", 10**9)  # requests never checkpoint
    before = set(checkpointers())
    path = tmp_path / "primary.db"
    p = Primary(path, SCHEMA)
    try:
        handler = SyncHandler(p)
        rid = replica_id("ckpt")
        push(handler, rid, [insert(i, "items", key(f"r{i}"), a=f"v{i}") for i in range(1, 51)])
        # SQLite's own autocheckpoint is off (the WAL hook replaces it): only the thread copies.
        assert wait_for(lambda: in_file(path) == 50)
        assert len(set(checkpointers()) - before) == 1
        push(handler, rid, [insert(51, "items", key("r51"), a="v51")])
        assert wait_for(lambda: in_file(path) == 51)
    finally:
        p.close()
    assert set(checkpointers()) - before == set()
    assert not (tmp_path / "primary.db-wal").exists()  # the last connection closed checkpoints it all
    assert in_file(path) == 51


def test_a_request_checkpoints_itself_when_the_wal_grows_past_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As when the thread falls behind: the committing request copies the WAL, as SQLite would.
    monkeypatch.setattr(primary_module, "CHECKPOINT_PAGES", 10**9)
    monkeypatch.setattr(primary_module, "CHECKPOINT_BEHIND_PAGES", 1)
    path = tmp_path / "primary.db"
    p = Primary(path, SCHEMA)
    try:
        push(SyncHandler(p), replica_id("behind"), [insert(1, "items", key("x"), a="y")])
        assert in_file(path) == 1  # already there when the answer came
    finally:
        p.close()


def test_a_memory_primary_starts_no_checkpointer() -> None:
    before = set(checkpointers())
    p = Primary(":memory:", SCHEMA)
    push(SyncHandler(p), replica_id("mem"), [insert(1, "items", key("x"), a="y")])
    assert set(checkpointers()) == before
    p.close()


@pytest.mark.parametrize("enabled", [True, False])
@pytest.mark.parametrize(
    "body",
    [
        None,  # a good push
        b"{not json",
        json.dumps({"v": 2, "replica": "short"}).encode(),
        json.dumps(envelope("gc-test-replica", schema=9)).encode(),
    ],
    ids=["push", "bad json", "bad request", "schema ahead"],
)
def test_a_sync_request_leaves_the_collector_as_it_found_it(enabled: bool, body: bytes | None) -> None:
    p = Primary(":memory:", SCHEMA)
    handler = SyncHandler(p)
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        if body is None:
            push(handler, replica_id("gc"), [insert(1, "items", key("x"), a="y")])
        else:
            status, _ = handler.sync(None, body)
            assert 400 <= status < 500
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()
        p.close()


def test_concurrent_requests_share_the_pause_and_the_last_one_out_turns_the_collector_back_on() -> None:
    p = Primary(":memory:", SCHEMA)
    handler = SyncHandler(p)
    assert gc.isenabled()
    errors: list[BaseException] = []

    def client(n: int) -> None:
        try:
            rid = replica_id(f"gc{n}")
            for i in range(1, 21):
                push(handler, rid, [insert(i, "items", key(f"{n}-{i}"), a="v")])
        except BaseException as e:  # reported below, in the test's thread
            errors.append(e)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    p.close()
    assert errors == []
    assert gc.isenabled()
