"""``GET /sync/stream`` on serve.py (stream.py): the same door as /sync, an event soon after a
push, a cap with a 503 that says what to do, heartbeats, and a shutdown that does not wait
for the streams."""

from __future__ import annotations

import asyncio
import json
import queue
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.aio import run
from tests.conftest import Server, start_server
from tests.sync.primaries import TOKEN, http, insert, key, replica_id
from tests.sync.wire import envelope

import edgesql
from edgesql.server.stream import ChangeHub

SCHEMA = "CREATE TABLE items (id TEXT PRIMARY KEY, n INTEGER);\n"


class Stream:
    """One ``GET /sync/stream`` read on a thread: its status, then each line as it comes.

    HTTP/1.0 over a plain socket, so the body comes unchunked and :meth:`close` really
    closes the connection (the server sees the client go)."""

    def __init__(self, url: str, token: str | None = TOKEN, headers: dict[str, str] | None = None) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.status: queue.Queue[tuple[int, dict[str, str], bytes]] = queue.Queue()
        parts = urllib.parse.urlsplit(url)
        h = {"host": parts.netloc, "accept": "text/event-stream", **(headers or {})}
        if token is not None:
            h["authorization"] = f"Bearer {token}"
        head = f"GET {parts.path} HTTP/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
        self._sock = socket.create_connection((parts.hostname, parts.port), timeout=120)
        self._sock.sendall(head.encode())
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            f = self._sock.makefile("rb")
            status = int(f.readline().split()[1])
            headers = {}
            while (line := f.readline().strip()) != b"":
                k, _, v = line.decode("latin-1").partition(":")
                headers[k.strip().lower()] = v.strip()
            if status != 200:
                self.status.put((status, headers, f.read()))
                return
            self.status.put((status, headers, b""))
            while raw := f.readline():
                self.lines.put(raw.decode().rstrip("\n"))
        except OSError:
            pass
        finally:
            self.lines.put(None)

    def answer(self) -> tuple[int, dict[str, str], bytes]:
        return self.status.get(timeout=10)

    def next_seq(self, timeout: float = 5) -> int:
        """The seq of the next change event (comments and other fields are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            assert line is not None, "the stream ended"
            if line.startswith("data:"):
                return int(json.loads(line[5:])["seq"])

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Server]:
    schema = tmp_path / "schema.sql"
    schema.write_text(SCHEMA)
    server = start_server(
        tmp_path / "data", "--schema", str(schema), "--auth-token", TOKEN, "--max-streams", "2"
    )
    yield server
    server.stop()


def push(server: Server, rid: str, seq: int) -> None:
    body = envelope(rid, changes=[insert(seq, "items", key(f"{rid}-{seq}"), n=seq)])
    assert http("POST", server.url + "/sync", json.dumps(body).encode()).status == 200


def test_the_stream_takes_the_same_token_and_origin_as_sync(served: Server) -> None:
    url = served.url + "/sync/stream"
    for token in (None, "wrong"):
        s = Stream(url, token=token)
        status, _, body = s.answer()
        assert status == 401 and json.loads(body)["error"] in ("unauthorized", "bad_token"), body
        s.close()
    s = Stream(url, headers={"origin": "https://evil.example"})
    status, _, body = s.answer()
    assert status == 403 and json.loads(body)["error"] == "forbidden_origin"
    s.close()


def test_a_push_reaches_a_connected_stream_at_once(served: Server) -> None:
    s = Stream(served.url + "/sync/stream")
    try:
        status, headers, _ = s.answer()
        assert status == 200 and headers["content-type"].startswith("text/event-stream")
        assert headers["cache-control"] == "no-store"
        first = s.next_seq()  # the log's end when the stream opened
        rid = replica_id("stream")
        waits = []
        for n in range(1, 6):
            t0 = time.perf_counter()
            push(served, rid, n)
            seq = s.next_seq(timeout=2)
            waits.append(time.perf_counter() - t0)
            assert seq > first
            first = seq
        # From the push's send to the event's arrival, the push's own round trip included.
        assert sorted(waits)[2] < 0.5, waits
        # A pull-only request changes nothing: no event.
        http("POST", served.url + "/sync", json.dumps(envelope(replica_id("reader"))).encode())
        with pytest.raises(queue.Empty):
            s.next_seq(timeout=0.5)
    finally:
        s.close()


def test_a_burst_becomes_at_most_one_event_per_wakeup_and_ends_at_the_last_seq(served: Server) -> None:
    s = Stream(served.url + "/sync/stream")
    try:
        assert s.answer()[0] == 200
        s.next_seq()
        rid = replica_id("burst")
        for n in range(1, 21):
            push(served, rid, n)
        seqs = []
        while not seqs or seqs[-1] < 20:
            seqs.append(s.next_seq(timeout=3))
        assert seqs == sorted(set(seqs)) and seqs[-1] == 20
    finally:
        s.close()


def test_streams_past_the_cap_get_503_and_a_closed_one_frees_its_place(served: Server) -> None:
    url = served.url + "/sync/stream"
    held = [Stream(url), Stream(url)]
    try:
        for s in held:
            assert s.answer()[0] == 200
            s.next_seq()
        extra = Stream(url)
        status, headers, body = extra.answer()
        assert status == 503 and headers.get("retry-after")
        doc = json.loads(body)
        assert doc["error"] == "busy" and "polling" in doc["message"]
        extra.close()
        held.pop().close()
        deadline = time.monotonic() + 5
        while True:  # the server notices the disconnect at once (it listens for it)
            again = Stream(url)
            status = again.answer()[0]
            again.close()
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert status == 200
        # /sync itself is not capped by the streams
        assert http("GET", served.url + "/sync/schema").status == 200
    finally:
        for s in held:
            s.close()


def test_serve_stops_promptly_with_streams_open(served: Server) -> None:
    s = Stream(served.url + "/sync/stream")
    assert s.answer()[0] == 200
    s.next_seq()
    t0 = time.monotonic()
    served.proc.terminate()
    served.proc.wait(10)
    assert time.monotonic() - t0 < 5
    line: Any = s.lines.get(timeout=5)
    while line is not None:  # the stream ends (not reset mid-event)
        line = s.lines.get(timeout=5)
    s.close()


def test_heartbeats_keep_an_idle_stream_talking() -> None:
    """A comment line every HEARTBEAT_S seconds (in process, with a short one)."""

    async def main() -> list[bytes]:
        hub = ChangeHub(7, heartbeat_s=0.05, max_age_s=0.3)
        got = []
        async for chunk in hub.events():
            got.append(chunk)
        return got

    got = run(main())
    assert got[0].endswith(b'event: change\ndata: {"seq": 7}\n\n')
    assert got[1:] and all(c == b": ping\n\n" for c in got[1:])
    assert 3 <= len(got) - 1 <= 6  # ~0.3 s / 0.05 s, then the stream ends at its max age


def test_a_cpython_replica_hears_of_another_replicas_write_at_once(served: Server) -> None:
    """NativeReplica holds the stream too (livestream.py): with a 300 s interval, only the
    stream explains B seeing A's row within a second."""

    async def main() -> tuple[float, str, str]:
        url = served.url + "/sync"
        a = await edgesql.connect(":memory:", sync_url=url, auth_token=TOKEN, sync_interval=300)
        b = await edgesql.connect(":memory:", sync_url=url, auth_token=TOKEN, sync_interval=300)
        try:
            deadline = time.monotonic() + 10
            while (await b.sync_status()).transport != "stream" and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            live = (await b.sync_status()).transport
            t0 = time.monotonic()
            await a.execute("INSERT INTO items (id, n) VALUES ('x', 1)")
            while not (await b.execute("SELECT n FROM items WHERE id = 'x'")).rows:
                if time.monotonic() - t0 > 5:
                    break
                await asyncio.sleep(0.01)
            return time.monotonic() - t0, live, (await a.sync_status()).transport
        finally:
            await a.close()
            await b.close()

    took, live, a_transport = run(main())
    assert live == "stream" and a_transport == "stream"
    assert took < 1.0, took
