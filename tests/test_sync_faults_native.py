"""A CPython replica's sync loop under faults it must survive: each test pins a bug found while
injecting faults (docs/reliability.md), in process and fast."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from tests.aio import run
from tests.sync.faults import MIXED, FaultPlan, injected
from tests.sync.harness import URL, Cluster

import edgesql
from edgesql.sync.status import SyncError
from edgesql.sync.transport import HttpTransport, Response


def test_a_fault_plan_is_the_same_for_the_same_seed() -> None:
    def faults(seed: int) -> list[str]:
        plan = FaultPlan(seed, MIXED)
        return [plan.choose("x").fault for _ in range(500)]

    assert faults(7) == faults(7) != faults(8)
    assert set(faults(7)) > {"pass", "drop_request", "rate_limited", "reorder"}


class Scripted:
    """Answers the next POSTs as told (an exception to raise, or a Response), then passes through;
    logs when each POST was sent."""

    def __init__(self, inner: Any, script: list[Any]) -> None:
        self.inner = inner
        self.script = script
        self.posts: list[float] = []
        self.schema_answer: Response | None = None

    async def request(self, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> Response:
        if method == "GET" and self.schema_answer is not None:
            return self.schema_answer
        if method == "POST":
            self.posts.append(time.monotonic())
            if self.script:
                step = self.script.pop(0)
                if isinstance(step, BaseException):
                    raise step
                return step
        return await self.inner.request(method, url, body, headers)


async def wait_for(what: str, check: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)


def test_the_background_loop_outlives_an_unexpected_error() -> None:
    """Found: any exception but SyncError (a bug, a database locked by another process, a
    connection broken mid-answer) ended the background task for good, silently."""

    async def check() -> None:
        c = Cluster()
        t = Scripted(c.transport, [RuntimeError("boom (injected)")])
        db = await edgesql.connect(":memory:", sync_url=URL, transport=t, sync_interval=0.05)
        await db.execute("INSERT INTO items (id) VALUES ('kept')")

        async def pushed() -> bool:
            return (await db.sync_status()).pending == 0

        await wait_for("the write never synced after the loop's first failure", pushed)
        assert len(t.posts) >= 2 and c.primary.query("SELECT id FROM items") == [("kept",)]
        await db.close()
        c.primary.close()

    run(check())


def test_retry_after_is_waited_out_even_while_writes_come_in() -> None:
    """Found: a local write during the wait ended it at once, and jitter could shorten it to half."""

    async def check() -> None:
        c = Cluster()
        t = Scripted(c.transport, [injected(429, "rate_limited", "slow down", {"retry-after": "1"})])
        db = await edgesql.connect(":memory:", sync_url=URL, transport=t, sync_interval=0.05)
        await db.execute("INSERT INTO items (id) VALUES ('w0')")
        await wait_for("no first POST", lambda: _true(len(t.posts) >= 1))
        for i in range(10):  # writes keep asking for a sync during the wait
            await db.execute("INSERT INTO items (id) VALUES (?)", (f"w{i + 1}",))
            await asyncio.sleep(0.05)

        async def pushed() -> bool:
            return (await db.sync_status()).pending == 0

        await wait_for("the writes never synced", pushed)
        assert t.posts[1] - t.posts[0] >= 1.0, f"retried after {t.posts[1] - t.posts[0]:.3f} s"
        await db.close()
        c.primary.close()

    run(check())


async def _true(v: bool) -> bool:
    return v


@pytest.mark.parametrize("status", [429, 500, 503])
def test_a_replica_starts_on_its_cached_schema_when_the_primary_fails(status: int, tmp_path: Path) -> None:
    """Found: any answer but 200 to GET /sync/schema made connect() fail, though the database
    had its schema cached: a primary's outage kept apps from opening their own data."""

    async def check() -> None:
        c = Cluster()
        path = str(tmp_path / "r.db")
        t = Scripted(c.transport, [])
        db = await edgesql.connect(path, sync_url=URL, transport=t, sync_interval=None)
        await db.close()
        headers = {"retry-after": "2"} if status != 500 else {}
        t.schema_answer = injected(status, "down", "the primary is down", headers)
        db = await edgesql.connect(path, sync_url=URL, transport=t, sync_interval=None)
        await db.execute("INSERT INTO items (id) VALUES ('offline-ish')")
        assert (await db.sync_status()).pending == 1
        await db.close()
        # Never synced: nothing to start from; the error says why and, with 429/503, when to retry.
        with pytest.raises(SyncError) as err:
            await edgesql.connect(str(tmp_path / "new.db"), sync_url=URL, transport=t, sync_interval=None)
        assert err.value.status == status and err.value.code == "down"
        assert err.value.retry_after == (2.0 if status != 500 else None)
        c.primary.close()

    run(check())


def test_a_broken_answer_counts_as_no_answer() -> None:
    """Found: an answer cut short (http.client.IncompleteRead) escaped the transport, which
    promises OSError when no answer came, and so escaped the sync loop's handling."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def answer_short() -> None:
        conn, _ = server.accept()
        with conn:
            # The whole request first: closing with some of it unread would send a reset
            # (ECONNRESET on the client) instead of the short answer this test is about.
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            while len(body) < length:
                body += conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
            conn.shutdown(socket.SHUT_WR)

    threading.Thread(target=answer_short, daemon=True).start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/sync"
    try:
        with pytest.raises(OSError, match="broke during the answer"):
            run(HttpTransport(timeout=10).request("POST", url, b"{}", {}))
    finally:
        server.close()


def test_a_row_rebuilt_by_a_later_pull_keeps_the_pending_write() -> None:
    """Found by the network test on local D1 (3,000 writes, two browsers): a row deleted by one
    pulled page and inserted again by a later one was rebuilt from the clock alone, dropping
    this replica's newer pending write; the primary took that write, the replica never did."""

    async def check() -> None:
        c = Cluster()
        a, b, d = await c.replica(), await c.replica(), await c.replica()
        await a.execute("INSERT INTO items (id, c) VALUES ('r', 'a1')")
        await c.settle()
        await d.execute("DELETE FROM items WHERE id = 'r'")
        await d.sync()
        await asyncio.sleep(0.003)  # stamps carry milliseconds: each write is later than the last
        await b.sync()
        await b.execute("INSERT INTO items (id, c) VALUES ('r', 'b1')")
        await b.sync()
        await asyncio.sleep(0.003)
        await a.execute("UPDATE items SET c = 'a2' WHERE id = 'r'")  # pending, newer than b's insert
        replica = a._backend.replica  # type: ignore[attr-defined]
        await replica.round(push_limit=0, pull_limit=1)  # the delete alone: the row goes
        await replica.round(push_limit=0, pull_limit=1)  # b's insert: the row comes back
        assert (await a.execute("SELECT c FROM items")).rows == [("a2",)]
        await c.settle()
        states = await c.states("items", "id")
        assert all(s == states[-1] for s in states), states
        assert c.primary.query("SELECT c FROM items") == [("a2",)]
        await c.close()

    run(check())
