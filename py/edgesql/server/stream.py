"""``GET /sync/stream``: the embedded primary tells connected replicas at once that the log grew.

The stream carries no data, only the log's end seq (Server-Sent Events, one
``event: change`` with ``data: {"seq": N}``); a replica whose cursor is behind
it runs an ordinary ``POST /sync`` round, which pulls from its cursor. So a
stream that drops, or an event that never arrives, loses nothing and applies
nothing twice: the cursor decides what is pulled, the stream only when.

Memory per connection is bounded: a listener holds one number (the latest end
it has not sent yet) and an event flag, never a queue; a burst of pushes while
a slow client reads becomes one event. A comment line (``: ping``) every
:data:`HEARTBEAT_S` seconds keeps proxies and NATs from closing an idle stream,
and tells the client the stream is alive. At most ``max_streams`` streams are
held; one more gets 503 ``busy`` with ``Retry-After`` (the replica polls
meanwhile). A stream ends after :data:`MAX_AGE_S` seconds (the replica
reconnects, and its token is checked again) and when the server shuts down.

With access rules every stream hears of every push, its user's buckets or
not: a replica learns that *something* changed (never what, nor whose), and
may run a round that pulls nothing. docs/sync.md says so.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator

__all__ = ["HEARTBEAT_S", "MAX_AGE_S", "MAX_STREAMS", "ChangeHub"]

#: Seconds between heartbeats on an idle stream (proxies commonly cut idle responses at 30-60 s).
HEARTBEAT_S = 25.0
#: Seconds after which the server ends a stream; the replica reconnects at once.
MAX_AGE_S = 15 * 60.0
#: Streams held at once (serve.py's connection cap, connections.MAX_CONNECTIONS, is 4,096).
MAX_STREAMS = 1_000


class _Listener:
    """One connected stream: the latest end seq not yet sent, and a flag that it changed."""

    __slots__ = ("latest", "wake")

    def __init__(self, latest: int) -> None:
        self.latest = latest
        self.wake = asyncio.Event()


class ChangeHub:
    """Fan-out of the primary's log end to the connected streams (one per primary)."""

    def __init__(
        self,
        end: int = 0,
        *,
        max_streams: int = MAX_STREAMS,
        heartbeat_s: float = HEARTBEAT_S,
        max_age_s: float = MAX_AGE_S,
    ) -> None:
        self.end = end
        self.max_streams = max_streams
        self.heartbeat_s = heartbeat_s
        self.max_age_s = max_age_s
        self.closed = False
        self._listeners: set[_Listener] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    @property
    def streams(self) -> int:
        """Streams held now."""
        return len(self._listeners)

    def full(self) -> bool:
        return len(self._listeners) >= self.max_streams

    def publish(self, end: int) -> None:
        """The log now ends at ``end``. Safe from any thread (the primary's pool calls it)."""
        with self._lock:
            if end <= self.end:
                return
            self.end = end
            loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake, end)

    def close(self) -> None:
        """End every stream (the server is shutting down). Call it on the event loop's thread."""
        self.closed = True
        for listener in self._listeners:
            listener.wake.set()

    def _wake(self, end: int) -> None:
        for listener in self._listeners:
            if end > listener.latest:
                listener.latest = end
                listener.wake.set()

    async def events(self) -> AsyncIterator[bytes]:
        """The body of one stream: the end now, then each later end, heartbeats between."""
        loop = asyncio.get_running_loop()
        with self._lock:
            self._loop = loop
            listener = _Listener(self.end)
        self._listeners.add(listener)
        try:
            # retry: what an EventSource would wait before reconnecting (the worker has its own rule).
            yield b"retry: 2000\n" + _event(listener.latest)
            sent = listener.latest
            ends_at = loop.time() + self.max_age_s
            while not self.closed:
                left = ends_at - loop.time()
                if left <= 0:
                    return
                try:
                    async with asyncio.timeout(min(self.heartbeat_s, left)):
                        await listener.wake.wait()
                except TimeoutError:
                    if loop.time() < ends_at:
                        yield b": ping\n\n"
                    continue
                listener.wake.clear()
                if listener.latest > sent and not self.closed:
                    sent = listener.latest
                    yield _event(sent)
        finally:
            self._listeners.discard(listener)


def _event(seq: int) -> bytes:
    return f"event: change\ndata: {json.dumps({'seq': seq})}\n\n".encode()
