"""A transport that calls a real primary in this process: the full sync path without HTTP.

It runs exactly what ``POST /sync`` runs (SyncHandler), so the property
tests can do thousands of rounds a second. It is a transport, not a mock:
the primary, its SQL and the replica's SQL are the real ones.
"""

from __future__ import annotations

import json
from typing import Any

from edgesql.server.sync_routes import SyncHandler
from edgesql.sync.transport import Response


class InProcessTransport:
    """Routes a replica's requests straight to a SyncHandler."""

    def __init__(self, handler: SyncHandler) -> None:
        self.handler = handler
        self.requests = 0

    async def request(self, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> Response:
        self.requests += 1
        auth = headers.get("authorization")
        if method == "GET" and url.endswith("/schema"):
            status, out = self.handler.schema(auth)
        else:
            status, out = self.handler.sync(auth, body or b"")
        return Response(status, {"content-type": "application/json"}, out)


class UsersHandler:
    """A SyncHandler for tests of access rules: a bearer token names its user directly
    (``Bearer user:alice``), so tests need no JWT. The primary and its SQL are the real ones;
    only identity is the test's (the server's JWT checks have tests of their own)."""

    def __init__(self, primary: Any) -> None:
        self.primary = primary

    @staticmethod
    def user(authorization: str | None) -> str | None:
        token = (authorization or "").removeprefix("Bearer ")
        return token.removeprefix("user:") if token.startswith("user:") else None

    def schema(self, authorization: str | None) -> tuple[int, bytes]:
        return 200, self.primary.schema_doc.encode()

    def sync(self, authorization: str | None, raw: bytes) -> tuple[int, bytes]:
        from edgesql.sync.protocol import ProtocolError, parse_request

        try:
            result = self.primary.sync(parse_request(json.loads(raw)), self.user(authorization))
        except ProtocolError as e:
            return e.status, json.dumps(e.body()).encode()
        return 200, result.body.encode()
