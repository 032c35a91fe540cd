"""The sync protocol's constants and the transport-level checks of a request.

``POST /sync`` carries JSON (docs/protocol.md)::

    request  {"v": 1, "replica": "<id>", "schema": <int>, "cursor": <int>,
              "changes": [[seq, table, key, "hlc", {column: value}, txend], ...],
              "limit": <int>}
    response {"v": 1, "acked": <seq>, "rejected": [{"seq", "code", "reason"}],
              "changes": [[server_seq, replica, table, key, "hlc", {...}, txend], ...],
              "cursor": <int>, "more": <bool>, "remaining": <int>,
              "server_hlc": "<hlc>", "schema": <int>}

Errors are ``{"error": <code>, "message": <what to do>}`` with a 4xx status.
Every primary runs these checks before any SQL; the rest of validation is
the shared SQL (serversql.CHECK).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .serversql import MAX_CELLS_BYTES

__all__ = [
    "MAX_PAGE_CHANGES",
    "MAX_PULL_LIMIT",
    "MAX_REQUEST_BYTES",
    "PROTOCOL_VERSION",
    "ProtocolError",
    "SyncRequest",
    "parse_request",
]

PROTOCOL_VERSION = 1
#: The largest request body accepted (one page of changes and its envelope).
MAX_REQUEST_BYTES = 4_000_000
#: A page of changes is bound as ONE parameter: D1 takes up to 2,000,000 bytes.
MAX_PAGE_BYTES = 1_900_000
#: Changes per pushed page.
MAX_PAGE_CHANGES = 5_000
#: Changes per pulled page, and the default.
MAX_PULL_LIMIT = 5_000
DEFAULT_PULL_LIMIT = 2_000
#: Bytes per pulled page (about; cut at a change boundary).
PULL_PAGE_BYTES = 1_000_000
_REPLICA = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


class ProtocolError(Exception):
    """A request the primary refuses as a whole: status, code and message for the client."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, str]:
        """The JSON error body."""
        return {"error": self.code, "message": self.message}


@dataclass
class SyncRequest:
    """A request that passed the transport checks."""

    replica: str
    schema: int
    cursor: int
    changes: list[list[Any]]
    limit: int
    too_large: list[dict[str, Any]]


def _int(d: dict[str, Any], key: str, lo: int, hi: int) -> int:
    v = d.get(key)
    if type(v) is not int or not lo <= v <= hi:
        raise ProtocolError(
            400, "bad_request", f"{key!r} must be an integer from {lo} to {hi}, got {v!r:.40}"
        )
    return v


def parse_request(body: Any) -> SyncRequest:
    """Check a decoded request body; raise :class:`ProtocolError` saying what is wrong."""
    if not isinstance(body, dict):
        raise ProtocolError(400, "bad_request", "the body must be a JSON object")
    if body.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(
            400,
            "unsupported_version",
            f"this primary speaks protocol v{PROTOCOL_VERSION}, not {body.get('v')!r}: update edgesql",
        )
    replica = body.get("replica")
    if not isinstance(replica, str) or not _REPLICA.match(replica):
        raise ProtocolError(400, "bad_request", "'replica' must be 8-64 characters of [A-Za-z0-9_-]")
    schema = _int(body, "schema", 0, 2**31)
    cursor = _int(body, "cursor", 0, 2**53)
    limit = body.get("limit", DEFAULT_PULL_LIMIT)
    if type(limit) is not int or not 0 <= limit <= MAX_PULL_LIMIT:
        raise ProtocolError(400, "bad_request", f"'limit' must be an integer from 0 to {MAX_PULL_LIMIT}")
    changes = body.get("changes", [])
    if not isinstance(changes, list) or any(not isinstance(c, list) for c in changes):
        raise ProtocolError(400, "bad_request", "'changes' must be an array of arrays")
    if len(changes) > MAX_PAGE_CHANGES:
        raise ProtocolError(
            413, "page_too_large", f"at most {MAX_PAGE_CHANGES} changes per page, got {len(changes)}"
        )
    too_large = []
    kept = []
    for c in changes:
        cells = c[4] if len(c) > 4 else None
        size = (
            len(json.dumps(cells, separators=(",", ":"), ensure_ascii=False).encode())
            if cells is not None
            else 0
        )
        if size > MAX_CELLS_BYTES:
            too_large.append(
                {
                    "seq": c[0] if c and type(c[0]) is int else None,
                    "code": "too_large",
                    "reason": f"the change is {size} bytes; a primary stores at most {MAX_CELLS_BYTES} "
                    "per change (D1 refuses values over 2 MB): store large files elsewhere and keep a reference",
                }
            )
        else:
            kept.append(c)
    return SyncRequest(replica, schema, cursor, kept, limit, too_large)
