"""An HTTP proxy on 127.0.0.1 that injects network faults into a browser's sync requests.

A browser's sync loop runs in its DB worker and talks to the primary with
``fetch``, which no Python seam can wrap. So the page is opened *through*
this proxy: it forwards every request to ``serve.py`` (the whole origin:
pages, Pyodide, the worker, ``/sync``), and the page's origin is the
proxy's, so ``sync_url="/sync"`` goes through it with no CORS in the way.
Requests to ``/sync`` (POST) get the faults a :class:`FaultPlan` picks, the
same seeded decisions :class:`FaultyTransport` applies to CPython replicas:

* ``drop_request``   the connection is reset and the request never forwarded;
* ``drop_response``  forwarded (the primary commits), then the connection is reset;
* ``duplicate``      forwarded twice, the second answer returned;
* ``reorder``        held back (connection reset), forwarded after the next request;
* ``delay``          forwarded late;
* ``error_500``      answered 500, not forwarded;
* ``rate_limited``   answered 429 with ``Retry-After``, not forwarded.

Each POST is logged with its replica id (read from the JSON body), so a test
can check that the browser waited out every ``Retry-After``.

The change stream (``GET /sync/stream``) is passed on as it comes, event by
event, like a proxy that does not buffer; with ``buffer_streams`` it is held
back until the stream ends, like one that does (the browser then never sees a
first event, and polls).

It is built on asyncio, h11 (the HTTP/1.1 state machine uvicorn uses) and
httpx, because resetting a connection on purpose needs the socket itself,
which an ASGI framework does not hand out. It runs on its own thread and
event loop, so sync Playwright tests can use it.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from typing import Any

import h11
import httpx

from .faults import FaultPlan

__all__ = ["FaultProxy"]

#: Hop-by-hop headers (RFC 9110 7.6.1) and the ones recomputed for the body we send.
_DROP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
    "host",
    "accept-encoding",
    "content-encoding",
}


class FaultProxy:
    """Forwards 127.0.0.1:<port> to ``upstream``; faults POSTs to ``fault_path``."""

    def __init__(
        self, upstream: str, plan: FaultPlan, fault_path: str = "/sync", buffer_streams: bool = False
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.plan = plan
        self.fault_path = fault_path
        self.buffer_streams = buffer_streams
        self._loop = asyncio.new_event_loop()
        self._sock = socket.socket(socket.AF_INET)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(256)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._held: list[tuple[str, str, list[tuple[str, str]], bytes]] = []
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)

    # -- lifetime -----------------------------------------------------------------------

    def start(self) -> FaultProxy:
        """Serve on a thread of its own; returns once it accepts connections."""
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        """Stop serving and close every connection."""
        if self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        self._stopped = asyncio.Event()
        self._client = httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=32))
        server = await asyncio.start_server(self._serve, sock=self._sock)
        self._ready.set()
        await self._stopped.wait()
        server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()
        await self._client.aclose()
        for _ in range(3):  # let the aborted transports run their connection_lost callbacks
            await asyncio.sleep(0)

    # -- one connection -------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        self._writers.add(writer)
        try:
            while True:
                request = await self._read_request(conn, reader)
                if request is None:
                    return
                method, target, headers, body = request
                if (
                    method == "GET"
                    and target.split("?")[0] == self.fault_path + "/stream"
                    and not self.buffer_streams
                ):
                    try:
                        await self._pass_stream(conn, writer, target, headers)
                    except httpx.HTTPError:
                        pass  # the primary went away: the connection is reset, as it would be
                    return
                answer = await self._handle(method, target, headers, body)
                if answer is None:  # a fault that resets the connection
                    writer.transport.abort()
                    return
                status, out_headers, data = answer
                bodiless = method == "HEAD" or status in (204, 304)
                if not bodiless:
                    out_headers.append(("content-length", str(len(data))))
                writer.write(conn.send(h11.Response(status_code=status, headers=out_headers)))
                if not bodiless and data:
                    writer.write(conn.send(h11.Data(data=data)))
                writer.write(conn.send(h11.EndOfMessage()))
                await writer.drain()
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except (ConnectionError, h11.RemoteProtocolError, asyncio.IncompleteReadError):
            return
        finally:
            self._writers.discard(writer)
            if not writer.transport.is_closing():
                writer.transport.abort()

    async def _pass_stream(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, target: str, headers: list[tuple[str, str]]
    ) -> None:
        """Forward a stream chunk by chunk, until either side ends it (then the connection closes)."""
        sent = [(k, v) for k, v in headers if k.lower() not in _DROP] + [("accept-encoding", "identity")]
        client = httpx.AsyncClient(timeout=httpx.Timeout(10, read=None))
        async with client, client.stream("GET", self.upstream + target, headers=sent) as resp:
            out = [(k, v) for k, v in resp.headers.multi_items() if k.lower() not in _DROP]
            out.append(("connection", "close"))
            writer.write(conn.send(h11.Response(status_code=resp.status_code, headers=out)))
            await writer.drain()
            async for chunk in resp.aiter_raw():
                writer.write(conn.send(h11.Data(data=chunk)))
                await writer.drain()
            writer.write(conn.send(h11.EndOfMessage()))
            await writer.drain()

    async def _read_request(
        self, conn: h11.Connection, reader: asyncio.StreamReader
    ) -> tuple[str, str, list[tuple[str, str]], bytes] | None:
        head: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                conn.receive_data(data)
                if not data and conn.their_state is h11.IDLE:
                    return None
                continue
            if isinstance(event, h11.ConnectionClosed):
                return None
            if isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in head.headers]
                return head.method.decode(), head.target.decode("latin-1"), headers, bytes(body)

    # -- forwarding and faults ----------------------------------------------------------------

    async def _forward(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        sent = [(k, v) for k, v in headers if k.lower() not in _DROP] + [("accept-encoding", "identity")]
        resp = await self._client.request(method, self.upstream + target, headers=sent, content=body)
        out = [(k, v) for k, v in resp.headers.multi_items() if k.lower() not in _DROP]
        return resp.status_code, out, resp.content

    async def _handle(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes] | None:
        if method != "POST" or target.split("?")[0] != self.fault_path:
            return await self._forward(method, target, headers, body)
        ev = self.plan.choose(_replica_of(body))
        if ev.fault == "drop_request":
            return None
        if ev.fault == "error_500":
            return 500, [("content-type", "application/json")], b'{"error":"internal","message":"injected"}'
        if ev.fault == "rate_limited":
            return (
                429,
                [("content-type", "application/json"), ("retry-after", f"{ev.retry_after:.0f}")],
                b'{"error":"rate_limited","message":"too many requests (injected)"}',
            )
        if ev.fault == "reorder":
            self._held.append((method, target, headers, body))
            return None
        if ev.fault == "delay":
            await asyncio.sleep(self.plan.delay())
        answer = await self._forward(method, target, headers, body)
        if ev.fault == "duplicate":
            answer = await self._forward(method, target, headers, body)
        held, self._held = self._held, []
        for h in held:  # older requests arrive after this newer one
            await self._forward(*h)
        if ev.fault == "drop_response":
            return None
        if answer[0] == 429:  # the primary's own rate limit: log what it asked for
            retry = dict((k.lower(), v) for k, v in answer[1]).get("retry-after")
            ev.retry_after = float(retry) if retry else None
        return answer

    def flush(self) -> None:
        """Deliver the requests still held back (from the test's thread)."""

        async def deliver() -> None:
            held, self._held = self._held, []
            for h in held:
                await self._forward(*h)

        asyncio.run_coroutine_threadsafe(deliver(), self._loop).result(60)


def _replica_of(body: bytes) -> str:
    try:
        doc: Any = json.loads(body)
        return str(doc.get("replica", "?")) if isinstance(doc, dict) else "?"
    except ValueError:
        return "?"
