"""``POST /sync``, ``GET /sync/schema`` and ``GET /sync/stream`` on the embedded primary.

:class:`SyncHandler` holds the logic without HTTP, as functions from request
to (status, body), so tests can also call the primary in process
(``tests/`` wraps it as a transport): it checks the token (in constant time;
tokens are never logged) and the size itself, and answers a bad request with
a 4xx and a JSON error saying what was wrong; nothing is changed by a
refused request. Over HTTP, :func:`sync_routes` puts it behind serve.py's
door (``front.py``: origin, rate limit, token, content type and size, all
before the body is read; a thread pool of its own for the primary's work).
"""

from __future__ import annotations

import gc
import json
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from starlette.routing import BaseRoute

from ..sync.protocol import MAX_REQUEST_BYTES, ProtocolError, parse_request
from .front import Answer, FrontConfig, front_routes
from .identity import Caller, Identity, StaticIdentity
from .primary import Primary
from .stream import ChangeHub

__all__ = ["SYNC_THREADS", "SyncHandler", "sync_routes"]

#: Threads for the embedded primary's work. It applies one request at a time (one SQLite
#: writer), so more threads would only wait on its lock; a few let the next requests'
#: JSON be decoded meanwhile.
SYNC_THREADS = 4


class SyncHandler:
    """The sync endpoints of one primary, as functions from request to (status, body)."""

    def __init__(
        self, primary: Primary, tokens: Sequence[str] = (), identity: Identity | None = None
    ) -> None:
        self.primary = primary
        self.identity: Identity = identity or StaticIdentity(tokens)

    def caller(self, authorization: str | None) -> Caller:
        """Who is calling (identity.py); ProtocolError 401 when nobody the primary accepts."""
        return self.identity.caller(authorization)

    def authorized(self, authorization: str | None) -> bool:
        """Does the Authorization header carry a token the primary accepts (or is none required)?"""
        try:
            self.caller(authorization)
        except ProtocolError:
            return False
        return True

    def schema(self, authorization: str | None) -> tuple[int, bytes]:
        """``GET /sync/schema``: the schema document."""
        try:
            self.caller(authorization)
        except ProtocolError as e:
            return _error(e)
        return 200, self.primary.schema_doc.encode()

    def sync(self, authorization: str | None, raw: bytes) -> tuple[int, bytes]:
        """``POST /sync``: apply a push, answer with a pull page."""
        try:
            user = self.caller(authorization).user
        except ProtocolError as e:
            return _error(e)
        if len(raw) > MAX_REQUEST_BYTES:
            return _error(
                ProtocolError(413, "too_large", f"a sync request is at most {MAX_REQUEST_BYTES} bytes")
            )
        with _gc_paused():
            # _sync's frame, and with it the decoded body, is gone before the collector is back.
            return self._sync(raw, user)

    def _sync(self, raw: bytes, user: str | None = None) -> tuple[int, bytes]:
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
            result = self.primary.sync(parse_request(body), user)
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


def _error(e: ProtocolError) -> tuple[int, bytes]:
    return e.status, json.dumps(e.body()).encode()


class _Embedded:
    """:class:`SyncHandler` as front.py's backend."""

    def __init__(self, handler: SyncHandler) -> None:
        self.handler = handler

    def schema(self, authorization: str | None) -> Answer:
        return Answer(*self.handler.schema(authorization))

    def sync(self, authorization: str | None, body: bytes) -> Answer:
        return Answer(*self.handler.sync(authorization, body))


def sync_routes(primary: Primary, front: FrontConfig, hub: ChangeHub | None = None) -> list[BaseRoute]:
    """The routes of the sync protocol, bound to ``primary``, behind the door ``front`` describes,
    with the change stream (``GET /sync/stream``, stream.py) fed by ``hub`` or a new one."""
    if hub is None:
        hub = ChangeHub(primary.log_end)
    primary.on_log_end.append(hub.publish)
    return front_routes(_Embedded(SyncHandler(primary, front.tokens, front.identity)), front, hub)
