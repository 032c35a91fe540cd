"""Many clients hammering /sync while another fetches a page: issue 12's "one client stalls everyone".

The hammer is a set of threads, each on its own keep-alive connection, each
pulling a full page (2,000 changes) from the start of the log again and
again, as many replicas doing their first sync at once would. Meanwhile
:func:`page_latencies` fetches a static page on fresh connections and times
each answer. Used by ``tests/test_http_hardening.py`` (a bound: pages are
served, not starved) and ``bench/static_under_sync.py`` (the figure).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from tests.sync.primaries import key
from tests.sync.wire import envelope

__all__ = ["HammerStats", "fill_log", "hammer", "page_latencies"]

#: Changes per pull: protocol.py's default page.
PULL_LIMIT = 2_000


def _conn(url: str, timeout: float = 120) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    return http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)


def _post(conn: http.client.HTTPConnection, body: bytes, token: str) -> int:
    conn.request(
        "POST", "/sync", body, {"content-type": "application/json", "authorization": f"Bearer {token}"}
    )
    resp = conn.getresponse()
    resp.read()
    return resp.status


def fill_log(url: str, token: str, changes: int, table: str = "items") -> None:
    """Push ``changes`` inserts into ``table`` (id TEXT PRIMARY KEY, c TEXT) in pages of 1,000."""
    stamp = int(time.time() * 1000) << 16
    conn = _conn(url)
    try:
        for start in range(0, changes, 1_000):
            page = [
                [
                    i + 1,
                    table,
                    key(f"fill-{i}"),
                    str(stamp + i),
                    {"c": ["t", "x" * 40], "_edgesql_exists": ["i", "1"]},
                    1,
                ]
                for i in range(start, min(changes, start + 1_000))
            ]
            req = envelope("fill-log-replica", changes=page)
            status = _post(conn, json.dumps(req).encode(), token)
            assert status == 200, f"filling the log: {status}"
    finally:
        conn.close()


@dataclass
class HammerStats:
    """What the hammering clients got: answers by status, and errors (no answer)."""

    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, status: int | None) -> None:
        with self.lock:
            if status is None:
                self.errors += 1
            else:
                self.statuses[status] = self.statuses.get(status, 0) + 1


@contextmanager
def hammer(url: str, token: str, clients: int = 50) -> Iterator[HammerStats]:
    """``clients`` threads pulling a full page of /sync back to back until the block ends."""
    stop = threading.Event()
    stats = HammerStats()

    def client(n: int) -> None:
        body = json.dumps(envelope(f"hammer-{n:04d}-replica", limit=PULL_LIMIT)).encode()
        conn = _conn(url)
        while not stop.is_set():
            try:
                stats.count(_post(conn, body, token))
                continue
            except (OSError, http.client.HTTPException):
                conn.close()
            # A kept-alive connection the server closed as the request went out: resend it on a new
            # one, as browsers and http clients do. Only a failure there is an error.
            conn = _conn(url)
            try:
                stats.count(_post(conn, body, token))
            except (OSError, http.client.HTTPException):
                stats.count(None)
                conn.close()
                conn = _conn(url)
        conn.close()

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for t in threads:
        t.start()
    try:
        yield stats
    finally:
        stop.set()
        for t in threads:
            t.join(150)


def page_latencies(url: str, path: str, count: int, interval: float = 0.05) -> list[float]:
    """Fetch ``path`` ``count`` times, each on a new connection as a browser opening a page might;
    the seconds each took to arrive whole (a failure counts as infinitely slow)."""
    out: list[float] = []
    for _ in range(count):
        t0 = time.perf_counter()
        try:
            conn = _conn(url, timeout=60)
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            conn.close()
            out.append(time.perf_counter() - t0 if resp.status == 200 else float("inf"))
        except (OSError, http.client.HTTPException):
            out.append(float("inf"))
        time.sleep(interval)
    return out
