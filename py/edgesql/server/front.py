"""The door to ``POST /sync`` and ``GET /sync/schema``: serve.py's checks, the same on every primary.

serve.py answers these itself, before the primary — the embedded one
(``sync_routes.py``) or the Worker behind d1-local's proxy (``d1local.py``) —
sees anything, in this order and before a byte of the body is read (issue
12: the body used to be read first, so 50 tokenless clients with 4 MB bodies
cost 220 MB before anyone got a 401):

1. ``Origin`` not the server's own nor allowed: 403 ``forbidden_origin`` (``hosts.py``);
2. over the caller's rate: 429 ``rate_limited`` with ``Retry-After`` (``ratelimit.py``);
3. no token that matches: 401 ``unauthorized`` (``tokens.py``);
4. a POST whose ``Content-Type`` is not ``application/json``: 415
   ``unsupported_media_type`` (a page of another origin can send text/plain
   or a form without a preflight, never JSON);
5. a declared ``Content-Length`` over the limit: 413 ``too_large``;
6. :data:`MAX_ADMITTED` requests already reading a body or waiting for the
   primary: 503 ``busy`` with ``Retry-After`` (each may hold a 4 MB body).

``GET /sync/stream`` (the embedded primary's change stream, ``stream.py``)
passes checks 1 to 3, then gets 503 ``busy`` when the server holds as many
streams as it takes.

(The ``Host`` of every request, static files too, is checked before this by
``hosts.HostGuardMiddleware``.) Then the body is read against the deadline of
:class:`~.connections.ConnectionLimits` (408 ``request_timeout``) and the size
limit (413), and the primary's work runs on a thread pool of its own (an
anyio ``CapacityLimiter``), never on the one static files use: 80 slow pulls
once held every shared thread, and ``GET /index.html`` took 24 s.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import anyio
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from ..sync.protocol import MAX_REQUEST_BYTES, ProtocolError
from .connections import ConnectionLimits
from .hosts import origin_allowed
from .identity import Identity, StaticIdentity
from .ratelimit import RateLimiter, retry_after_header
from .stream import ChangeHub

__all__ = ["MAX_ADMITTED", "Answer", "FrontConfig", "SyncBackend", "front_routes", "is_json"]

#: /sync requests past the checks at once (reading a body, waiting for or holding a pool
#: thread): each may hold a 4 MB body, so this bounds their memory (~256 MB).
MAX_ADMITTED = 64

_JSON = "application/json"
_NO_STORE = {"cache-control": "no-store"}


@dataclass
class Answer:
    """What a primary answered: status, JSON body, and headers to pass on (e.g. Retry-After)."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class SyncBackend(Protocol):
    """A primary behind the door. Both calls block (they run on the sync pool) and never raise:
    every failure is an :class:`Answer` with a JSON error."""

    def schema(self, authorization: str | None) -> Answer: ...

    def sync(self, authorization: str | None, body: bytes) -> Answer: ...


@dataclass(frozen=True)
class FrontConfig:
    """What the door checks, and the pool the primary's work runs on."""

    tokens: Sequence[str] = ()
    #: Who may call, and as whom (identity.py): the static tokens unless JWTs are set up.
    identity: Identity | None = None
    limiter: RateLimiter | None = None
    allowed_origins: frozenset[str] = frozenset()
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    threads: int = 4
    max_admitted: int = MAX_ADMITTED
    max_body: int = MAX_REQUEST_BYTES


def is_json(content_type: str | None) -> bool:
    """Is this ``Content-Type`` JSON (``application/json``, any case, any parameters)?"""
    return (content_type or "").split(";", 1)[0].strip().lower() == _JSON


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps({"error": code, "message": message})
    return Response(body, status, media_type=_JSON, headers={**_NO_STORE, **(headers or {})})


class _Door:
    def __init__(self, backend: SyncBackend, config: FrontConfig, hub: ChangeHub | None = None) -> None:
        self.backend = backend
        self.hub = hub
        self.config = config
        self.identity: Identity = config.identity or StaticIdentity(config.tokens)
        self.admitted = 0
        self._pool: anyio.CapacityLimiter | None = None

    @property
    def pool(self) -> anyio.CapacityLimiter:
        if self._pool is None:  # made in the event loop that uses it
            self._pool = anyio.CapacityLimiter(self.config.threads)
        return self._pool

    def refuse(self, request: Request) -> Response | None:
        """The answer to a request refused on its head alone (checks 1 to 3), or None."""
        h = request.headers
        if not origin_allowed(
            h.get("origin"),
            h.get("host"),
            request.url.scheme,
            self.config.allowed_origins,
            h.get("sec-fetch-site"),
        ):
            message = (
                f"pages of {h.get('origin', '')[:200]!r} may not call this server's /sync (cross-site requests "
                "are refused): serve the app from this server, or start serve.py with --allowed-origin ORIGIN"
            )
            return _error(403, "forbidden_origin", message, {"vary": "Origin"})
        try:
            caller: str | None = self.identity.caller(h.get("authorization")).id
            refused = None
        except ProtocolError as e:
            caller, refused = None, e
        if self.config.limiter is not None:
            ip = request.client.host if request.client else "?"
            wait = self.config.limiter.take(f"{caller or 'unauthorized'}@{ip}")
            if wait is not None:
                retry = retry_after_header(wait)
                message = f"too many requests from this client: retry in {retry} s (Retry-After)"
                return _error(429, "rate_limited", message, {"retry-after": retry})
        if refused is not None:
            return _error(refused.status, refused.code, refused.message)
        return None

    def too_large(self) -> Response:
        return _error(413, "too_large", f"a sync request is at most {self.config.max_body} bytes")

    def busy(self) -> Response:
        message = "the server is handling as many sync requests as it takes: retry in a second"
        return _error(503, "busy", message, {"retry-after": "1"})

    async def read_body(self, request: Request) -> bytes | Response:
        """The whole body, or the answer when it is too slow (408) or too long (413)."""
        limits = self.config.limits
        started = anyio.current_time()
        body = bytearray()
        while True:
            left = limits.body_deadline(started, len(body)) - anyio.current_time()
            try:
                with anyio.fail_after(max(0.0, left)):
                    message = await request.receive()
            except TimeoutError:
                return _error(
                    408,
                    "request_timeout",
                    f"the request body came too slowly (after {limits.body_timeout:g} seconds it must average "
                    f"{limits.body_min_rate:g} bytes a second): send it at once, then retry",
                    {"connection": "close"},
                )
            if message["type"] == "http.disconnect":
                raise ClientDisconnect
            body += message.get("body", b"")
            if len(body) > self.config.max_body:
                return self.too_large()
            if not message.get("more_body", False):
                return bytes(body)

    async def run(self, fn: object, *args: object) -> Response:
        answer: Answer = await anyio.to_thread.run_sync(fn, *args, limiter=self.pool)  # type: ignore[arg-type]
        return Response(answer.body, answer.status, media_type=_JSON, headers={**_NO_STORE, **answer.headers})

    async def schema(self, request: Request) -> Response:
        if (refused := self.refuse(request)) is not None:
            return refused
        if self.admitted >= self.config.max_admitted:
            return self.busy()
        self.admitted += 1
        try:
            return await self.run(self.backend.schema, request.headers.get("authorization"))
        finally:
            self.admitted -= 1

    async def sync(self, request: Request) -> Response:
        if (refused := self.refuse(request)) is not None:
            return refused
        if not is_json(request.headers.get("content-type")):
            given = request.headers.get("content-type")
            return _error(
                415,
                "unsupported_media_type",
                f"a sync request is JSON: send it with 'Content-Type: application/json' (it came as "
                f"{given[:100]!r})"
                if given
                else "a sync request is JSON: send 'Content-Type: application/json'",
            )
        try:
            declared = int(request.headers.get("content-length") or 0)
        except ValueError:
            declared = 0  # h11 refuses a malformed length before this runs
        if declared > self.config.max_body:
            return self.too_large()
        if self.admitted >= self.config.max_admitted:
            return self.busy()
        self.admitted += 1
        try:
            try:
                body = await self.read_body(request)
            except ClientDisconnect:
                return _error(400, "disconnected", "the client went away before its request was in")
            if isinstance(body, Response):
                return body
            return await self.run(self.backend.sync, request.headers.get("authorization"), body)
        finally:
            self.admitted -= 1

    async def stream(self, request: Request) -> Response:
        """``GET /sync/stream`` (stream.py): checks 1 to 3, then a stream while fewer than the cap are held."""
        assert self.hub is not None
        if (refused := self.refuse(request)) is not None:
            return refused
        if self.hub.full() or self.hub.closed:
            message = (
                f"the server holds as many change streams as it takes ({self.hub.max_streams}): "
                "sync by polling, and open the stream again later"
            )
            return _error(503, "busy", message, {"retry-after": "30"})
        headers = {**_NO_STORE, "x-accel-buffering": "no"}  # nginx: pass each event on at once
        return StreamingResponse(self.hub.events(), media_type="text/event-stream", headers=headers)


def front_routes(backend: SyncBackend, config: FrontConfig, hub: ChangeHub | None = None) -> list[BaseRoute]:
    """``POST /sync`` and ``GET /sync/schema`` for ``backend``, behind the checks of the module docstring;
    with ``hub`` (the embedded primary), ``GET /sync/stream`` too, behind checks 1 to 3."""
    door = _Door(backend, config, hub)
    routes: list[BaseRoute] = [
        Route("/sync", door.sync, methods=["POST"]),
        Route("/sync/schema", door.schema, methods=["GET"]),
    ]
    if hub is not None:
        routes.append(Route("/sync/stream", door.stream, methods=["GET"]))
    return routes
