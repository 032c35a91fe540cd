"""``POST /sync`` and ``GET /sync/schema`` on the embedded primary.

Authentication: when tokens are configured, a request without a matching
``Authorization: Bearer`` header gets 401 (tokens are compared in constant
time and never logged). Bad requests get a 4xx with a JSON error saying what
was wrong; nothing is changed by a refused request. With a
:class:`~.ratelimit.RateLimiter`, a caller over its rate gets 429
``rate_limited`` with ``Retry-After`` (see ``ratelimit.py`` for who a caller is).

:class:`SyncHandler` holds the logic without HTTP, so tests can also call
the primary in process (``tests/`` wraps it as a transport).
"""

from __future__ import annotations

import gc
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..sync.protocol import MAX_REQUEST_BYTES, ProtocolError, parse_request
from .primary import Primary
from .ratelimit import RateLimiter, retry_after_header

__all__ = ["SyncHandler", "sync_routes"]

_JSON = "application/json"
_NO_STORE = {"cache-control": "no-store"}


class SyncHandler:
    """The sync endpoints of one primary, as functions from request to (status, body)."""

    def __init__(self, primary: Primary, tokens: Sequence[str] = ()) -> None:
        self.primary = primary
        # Only digests are kept: equal lengths for compare_digest, and no token in memory dumps of this object.
        self._digests = [_digest(t.encode()) for t in tokens]

    def caller(self, authorization: str | None) -> str | None:
        """Who is calling: ``"token<i>"`` for the i-th token, ``"anyone"`` when none is
        required, ``None`` when the Authorization header carries no token that matches."""
        if not self._digests:
            return "anyone"
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            return None
        # Digests of equal length, compared with compare_digest against every token
        # (no early exit), so timing tells nothing about the token or which one matched.
        mine = _digest(given.encode(errors="surrogateescape"))
        found = None
        for i, digest in enumerate(self._digests):
            if hmac.compare_digest(mine, digest):
                found = i
        return None if found is None else f"token{found}"

    def authorized(self, authorization: str | None) -> bool:
        """Does the Authorization header carry one of the tokens (or are none required)?"""
        return self.caller(authorization) is not None

    def _unauthorized(self) -> tuple[int, bytes]:
        return _error(
            ProtocolError(
                401,
                "unauthorized",
                "send the app's token as 'Authorization: Bearer <token>' (connect(auth_token=...))",
            )
        )

    def schema(self, authorization: str | None) -> tuple[int, bytes]:
        """``GET /sync/schema``: the schema document."""
        if not self.authorized(authorization):
            return self._unauthorized()
        return 200, self.primary.schema_doc.encode()

    def sync(self, authorization: str | None, raw: bytes) -> tuple[int, bytes]:
        """``POST /sync``: apply a push, answer with a pull page."""
        if not self.authorized(authorization):
            return self._unauthorized()
        if len(raw) > MAX_REQUEST_BYTES:
            return _error(
                ProtocolError(413, "too_large", f"a sync request is at most {MAX_REQUEST_BYTES} bytes")
            )
        with _gc_paused():
            # _sync's frame, and with it the decoded body, is gone before the collector is back.
            return self._sync(raw)

    def _sync(self, raw: bytes) -> tuple[int, bytes]:
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            return _error(ProtocolError(400, "bad_json", f"the body is not JSON: {e}"))
        except RecursionError:
            # Python's parser stops near 1,000 levels; a sync request nests 5.
            return _error(
                ProtocolError(400, "bad_json", "the body is not JSON a primary reads: nested too deeply")
            )
        try:
            result = self.primary.sync(parse_request(body))
        except ProtocolError as e:
            return _error(e)
        return 200, result.body.encode()


_gc_lock = threading.Lock()
_gc_users = 0
_gc_was_enabled = False
_gc_paused_since = 0.0
#: Requests that overlap without end would keep the collector off for good: after this
#: long paused, a request on its way out collects anyway, so cyclic garbage stays bounded.
GC_MAX_PAUSE_S = 2.0


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a /sync request is decoded and applied.

    A page of 5,000 changes decodes into some 50,000 lists and dicts, none of them
    in a cycle, all freed by reference counting at the end of the request. With
    the collector on, they set off ~40 young collections, are promoted while still
    alive, and every third request or so pays a full collection of the whole
    heap (50-75 ms, measured). Paused, they die young and never count. Requests
    on other threads share the pause; the last one out turns the collector back on.
    """
    global _gc_users, _gc_was_enabled, _gc_paused_since
    with _gc_lock:
        if _gc_users == 0:
            _gc_was_enabled = gc.isenabled()
            _gc_paused_since = time.monotonic()
            gc.disable()
        _gc_users += 1
    try:
        yield
    finally:
        collect = False
        with _gc_lock:
            _gc_users -= 1
            if _gc_users == 0 and _gc_was_enabled:
                gc.enable()
            elif _gc_was_enabled and time.monotonic() - _gc_paused_since > GC_MAX_PAUSE_S:
                _gc_paused_since = time.monotonic()
                collect = True
        if collect:
            gc.collect()


def _digest(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def _error(e: ProtocolError) -> tuple[int, bytes]:
    return e.status, json.dumps(e.body()).encode()


def sync_routes(
    primary: Primary, tokens: Sequence[str] = (), limiter: RateLimiter | None = None
) -> list[BaseRoute]:
    """The routes of the sync protocol, bound to ``primary``, rate-limited by ``limiter`` if given."""
    handler = SyncHandler(primary, tokens)

    def over_limit(request: Request) -> Response | None:
        """429 when this caller (token and IP; see ratelimit.py) is over its rate, else None."""
        if limiter is None:
            return None
        ip = request.client.host if request.client else "?"
        caller = handler.caller(request.headers.get("authorization"))
        wait = limiter.take(f"{caller or 'unauthorized'}@{ip}")
        if wait is None:
            return None
        retry = retry_after_header(wait)
        body = ProtocolError(
            429, "rate_limited", f"too many requests from this client: retry in {retry} s (Retry-After)"
        ).body()
        return Response(json.dumps(body), 429, media_type=_JSON, headers={**_NO_STORE, "retry-after": retry})

    async def schema(request: Request) -> Response:
        if (refused := over_limit(request)) is not None:
            return refused
        status, body = handler.schema(request.headers.get("authorization"))
        return Response(body, status, media_type=_JSON, headers=_NO_STORE)

    async def sync(request: Request) -> Response:
        if (refused := over_limit(request)) is not None:
            return refused
        try:
            declared = int(request.headers.get("content-length") or 0)
        except ValueError:
            declared = 0
        raw = bytearray()
        if declared <= MAX_REQUEST_BYTES:
            async for chunk in request.stream():
                raw += chunk
                if len(raw) > MAX_REQUEST_BYTES:
                    break
        else:
            raw = bytearray(MAX_REQUEST_BYTES + 1)  # refused below without reading it
        status, body = await run_in_threadpool(handler.sync, request.headers.get("authorization"), bytes(raw))
        return Response(body, status, media_type=_JSON, headers=_NO_STORE)

    return [Route("/sync", sync, methods=["POST"]), Route("/sync/schema", schema, methods=["GET"])]
