"""A transport that calls a real primary in this process: the full sync path without HTTP.

It runs exactly what ``POST /sync`` runs (SyncHandler), so the property
tests can do thousands of rounds a second. It is a transport, not a mock:
the primary, its SQL and the replica's SQL are the real ones.
"""

from __future__ import annotations

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
