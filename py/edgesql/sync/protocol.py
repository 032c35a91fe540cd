"""The sync protocol's constants and the transport-level checks of a request.

``POST /sync`` carries JSON (docs/protocol.md)::

    request  {"v": 2, "replica": "<id>", "key": "<the replica's secret>", "schema": <int>,
              "cursor": <int>, "high": <int>, "limit": <int>,
              "snapshot": {"at": <int>, "tbl": "<table>", "pk": "<key>"}  (only while taking one),
              "changes": [[seq, table, key, "hlc", {column: value}, txend], ...]}
    response {"v": 2, "acked": <seq>, "rejected": [{"seq", "code", "reason"}],
              "changes": [[server_seq, replica, table, key, "hlc", {...}, txend], ...],
              "cursor": <int>, "more": <bool>, "remaining": <int>,
              "snapshot": {"at", "tbl", "pk", "done"}  (only while a snapshot is taken),
              "server_hlc": "<hlc>", "schema": <int>}

Errors are ``{"error": <code>, "message": <what to do>}`` with a 4xx status.
Every primary runs these checks before any SQL; the rest of validation is
the shared SQL (serversql.CHECK).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from .serversql import MAX_CELLS_BYTES

__all__ = [
    "KEY_HASH",
    "MAX_PAGE_CHANGES",
    "MAX_PULL_LIMIT",
    "MAX_REQUEST_BYTES",
    "PROTOCOL_VERSION",
    "REPLICA_CONFLICT",
    "ProtocolError",
    "Snapshot",
    "SyncRequest",
    "change_problem",
    "check_replica",
    "check_schema",
    "check_user",
    "parse_request",
    "snapshot_json",
]

#: v2: replica keys (an id belongs to the device that first used it), the replica's
#: highest seq (a restored copy is told), snapshots, and pushes only on the primary's
#: schema version.
PROTOCOL_VERSION = 2
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
#: Seqs and cursors are safe integers (below 2^53), so JavaScript (the DB worker, the D1 Worker) holds them exactly.
MAX_SEQ = 2**53 - 1
#: A replica id (fullmatch: ``$`` alone would also accept a trailing newline).
_REPLICA = re.compile(r"[A-Za-z0-9_-]{8,64}")
#: A replica's key: its secret, sent with every request, of which the primary keeps a digest.
_KEY = re.compile(r"[A-Za-z0-9_-]{16,128}")
#: A snapshot position's table name and key: what a key or table name can be, with room.
MAX_POSITION_CHARS = 8_192
#: How the primary stores a replica key: the SHA-256 of its UTF-8, in hex.
KEY_HASH = "sha256-hex"


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
class Snapshot:
    """Where a snapshot stands: started at log seq ``at`` (None: starting now), sent up to
    key (``tbl``, ``pk``)."""

    at: int | None
    tbl: str
    pk: str
    #: With access rules, snapshots go bucket by bucket: the position's bucket.
    bucket: str = ""


@dataclass
class SyncRequest:
    """A request that passed the transport checks."""

    replica: str
    key: str
    schema: int
    cursor: int
    high: int
    changes: list[list[Any]]
    limit: int
    too_large: list[dict[str, Any]]
    #: ``changes`` as one JSON text, as CHECK and PUSH bind it (encoded once, here).
    page: str
    snapshot: Snapshot | None = None

    @property
    def key_hash(self) -> str:
        """The digest of the replica's key, as the primary stores it."""
        return hashlib.sha256(self.key.encode()).hexdigest()


#: Why a replica must take a new id: another copy of its database pushed under it.
REPLICA_CONFLICT = (
    "another copy of this database already pushed different changes under this replica id "
    "(a restored backup or a copied file): take a new replica id and push again"
)


def check_schema(replica_version: int, primary_version: int) -> None:
    """Refuse a request from another schema version: a push only ever lands on the primary's
    own schema, so an old replica's changes never meet columns it did not know of."""
    if replica_version > primary_version:
        raise ProtocolError(
            409,
            "schema_ahead",
            f"this replica is at schema version {replica_version}, the primary at {primary_version}: "
            "the primary was rolled back; restore its migrations",
        )
    if replica_version < primary_version:
        raise ProtocolError(
            409,
            "schema_behind",
            f"this replica is at schema version {replica_version}, the primary at {primary_version}: "
            "fetch the schema (GET <sync_url>/schema), migrate, and sync again (edgesql replicas do this themselves)",
        )


def check_replica(req: SyncRequest, key_hash: str | None, high: int) -> None:
    """Refuse a replica id that belongs to another device, and a copy that is behind itself.

    ``key_hash`` is the digest bound to the id (None: never used), ``high`` the highest
    seq the primary holds from the id. A device that holds fewer seqs than the primary
    has from its id is a restored backup or a copy: its later changes are on the primary,
    and pulls skip a replica's own changes, so it would never see them again.
    """
    if key_hash is not None and key_hash != req.key_hash:
        raise ProtocolError(
            403,
            "replica_forbidden",
            "this replica id belongs to another device (its key does not match): take a new replica id "
            "(edgesql replicas do this themselves)",
        )
    if high > req.high:
        raise ProtocolError(
            409,
            "replica_conflict",
            f"the primary holds changes up to seq {high} from this replica id, and this copy of the "
            f"database knows of seqs up to {req.high} only: it is a restored backup or a copy. "
            "Take a new replica id and sync again (edgesql replicas do this themselves)",
        )


def check_user(user: str | None, bound: str | None) -> None:
    """With access rules: a request needs a user, and a replica id stays its first user's."""
    if user is None:
        raise ProtocolError(
            401,
            "sign_in",
            "this primary's data is per user: sign in (a token whose `sub` names the user; "
            "connect(..., auth=...))",
        )
    if bound is not None and bound != user:
        raise ProtocolError(
            403,
            "replica_user",
            "this replica belongs to another user: a device that signs in as another user starts a new "
            "replica (edgesql replicas do this themselves)",
        )


def snapshot_json(
    at: int, tbl: str | None, pk: str | None, done: bool, bucket: str | None = "", full: bool = True
) -> str:
    """The answer's ``snapshot`` field. ``full``: of everything the replica may read (it starts
    again from the primary's state), else of buckets it just gained (it keeps what it has)."""
    return json.dumps(
        {"at": at, "tbl": tbl or "", "pk": pk or "", "done": done, "bucket": bucket or "", "full": full},
        separators=(",", ":"),
        ensure_ascii=False,
    )


def _int(d: dict[str, Any], key: str, lo: int, hi: int) -> int:
    v = d.get(key)
    if type(v) is not int or not lo <= v <= hi:
        raise ProtocolError(
            400, "bad_request", f"{key!r} must be an integer from {lo} to {hi}, got {v!r:.40}"
        )
    return v


#: Why a change is refused before any SQL sees it (see :func:`change_problem`).
NESTED = "the change nests arrays or objects where edgesql's encoding has none"
NOT_UTF8 = "a TEXT value or key part given as hex is not valid UTF-8"


def _utf8_hex(h: str) -> bool:
    """False when ``h`` is hex whose bytes are not UTF-8 (text that is not hex is left to SQL)."""
    try:
        b = bytes.fromhex(h)
    except ValueError:
        return True
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def change_problem(c: list[Any]) -> str | None:
    """What the transport refuses in one change before SQL sees it, else ``None``.

    * Containers where the encoding has none (a change nests at most
      ``[.., {column: [str, ...]}, ..]``): nothing recurses into them, so a
      change nested a thousand levels deep is one malformed change, not a
      crash of the JSON encoder or of SQLite's JSON parser.
    * TEXT given as hex (a ``t`` key part, a ``T`` cell) that is not UTF-8:
      SQLite would store it, and every reader of that row would then fail to
      decode it (the primary's own, and every CPython replica's).

    Everything else about a change's shape is checked by the shared SQL (CHECK).
    The Worker in front of D1 runs the same function (``changeProblem`` in
    cloudflare/src/protocol.js).
    """
    for i, x in enumerate(c):
        if type(x) is list:
            return NESTED
        if type(x) is dict:
            if i != 4:
                return NESTED
            for v in x.values():
                if type(v) is dict:
                    return NESTED
                if type(v) is list:
                    for e in v:
                        if type(e) is list or type(e) is dict:
                            return NESTED
                    if len(v) == 2 and v[0] == "T" and type(v[1]) is str and not _utf8_hex(v[1]):
                        return NOT_UTF8
    pk = c[2] if len(c) > 2 else None
    if type(pk) is str and '"t' in pk:
        try:
            parts = json.loads(pk)
        except (ValueError, RecursionError):
            return None  # not a key at all: CHECK refuses it as malformed
        if type(parts) is list:
            for part in parts:
                if type(part) is str and part[:1] == "t" and not _utf8_hex(part[1:]):
                    return NOT_UTF8
    return None


def parse_request(body: Any) -> SyncRequest:
    """Check a decoded request body; raise :class:`ProtocolError` saying what is wrong."""
    if not isinstance(body, dict):
        raise ProtocolError(400, "bad_request", "the body must be a JSON object")
    # type() too: in Python True == 1 and 1.0 == 1, and JavaScript (the D1
    # Worker runs this same check) cannot tell 1.0 from 1 after JSON.parse.
    if type(body.get("v")) is not int or body["v"] != PROTOCOL_VERSION:
        raise ProtocolError(
            400,
            "unsupported_version",
            f"this primary speaks protocol v{PROTOCOL_VERSION}, not {body.get('v')!r}: update edgesql",
        )
    replica = body.get("replica")
    if not isinstance(replica, str) or not _REPLICA.fullmatch(replica):
        raise ProtocolError(400, "bad_request", "'replica' must be 8-64 characters of [A-Za-z0-9_-]")
    schema = _int(body, "schema", 0, 2**31)
    cursor = _int(body, "cursor", 0, MAX_SEQ)
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
    key = body.get("key")
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ProtocolError(
            400, "bad_request", "'key' must be the replica's key, 16-128 characters of [A-Za-z0-9_-]"
        )
    high = _int(body, "high", 0, MAX_SEQ)
    snapshot = _snapshot(body.get("snapshot"))
    kept, refused = _screen(changes, measure=False)
    page = _page_json(kept)
    if page is None:
        # Some change may be over the size limit, or not Unicode: measure each one.
        kept, refused = _screen(changes, measure=True)
        page = _dumps(kept)
    return SyncRequest(replica, key, schema, cursor, high, kept, limit, refused, page, snapshot)


def _snapshot(v: Any) -> Snapshot | None:
    if v is None:
        return None
    at = v.get("at") if type(v) is dict else None
    if (
        type(v) is not dict
        or not (at is None or (type(at) is int and 0 <= at <= MAX_SEQ))
        or type(v.get("tbl")) is not str
        or type(v.get("pk")) is not str
        or type(v.get("bucket", "")) is not str
        or len(v["tbl"]) > MAX_POSITION_CHARS
        or len(v["pk"]) > MAX_POSITION_CHARS
        or len(v.get("bucket", "")) > MAX_POSITION_CHARS
        or not v["pk"].isascii()
        or not v["tbl"].isprintable()
        or not v.get("bucket", "").isprintable()
    ):
        raise ProtocolError(
            400,
            "bad_request",
            f'\'snapshot\' must be null or {{"at": seq or null, "tbl": text, "pk": text}} '
            f"(at most {MAX_POSITION_CHARS} characters each), as the primary's last answer gave it",
        )
    return Snapshot(at, v["tbl"], v["pk"], v.get("bucket", ""))


def _dumps(changes: list[list[Any]]) -> str:
    return json.dumps(changes, separators=(",", ":"), ensure_ascii=False)


def _page_json(changes: list[list[Any]]) -> str | None:
    """The changes as one JSON text (what CHECK and PUSH bind), or ``None`` when some change
    may be over :data:`MAX_CELLS_BYTES` or holds a lone surrogate.

    Each change's cells are a substring of the page's JSON, encoded the same way, so a
    page within the limit holds no change over it; and a page that encodes as UTF-8
    holds no lone surrogate.
    """
    page = _dumps(changes)
    if page.isascii():
        return page if len(page) <= MAX_CELLS_BYTES else None
    try:
        size = len(page.encode())
    except UnicodeEncodeError:
        return None
    return page if size <= MAX_CELLS_BYTES else None


#: A key whose ``t`` parts are hex of ASCII (so valid UTF-8) and whose other parts
#: hold no quote or escape: what :func:`change_problem` finds nothing in.
_PLAIN_PART = r'"(?:t(?:[0-7][0-9A-F])*|[ib][^"\\]*)"'
_PLAIN_KEY = re.compile(rf"\[(?:{_PLAIN_PART},)*{_PLAIN_PART}\]")


def _screen(changes: list[list[Any]], measure: bool) -> tuple[list[list[Any]], list[dict[str, Any]]]:
    """The changes the transport keeps, and those it refuses (in page order).

    Raises :class:`ProtocolError` for a change without a usable seq. With
    ``measure``, each change's size is checked too (see :func:`_page_json` for
    why that is rarely needed).
    """
    refused: list[dict[str, Any]] = []
    kept: list[list[Any]] = []
    seen: set[int] = set()
    for i, c in enumerate(changes):
        # The seq is what acknowledgements and rejections name: without one, a bad
        # change could not be rejected on its own, so the whole request is refused.
        seq = c[0] if c else None
        if type(seq) is not int or not 1 <= seq <= MAX_SEQ:
            raise ProtocolError(
                400,
                "bad_request",
                f"changes[{i}][0] must be the change's seq, an integer from 1 to {MAX_SEQ}",
            )
        # Twice in one page, a seq would name two changes: the second would be dropped
        # as a replay of the first, and acknowledged. No replica sends that.
        if seq in seen:
            raise ProtocolError(
                400,
                "bad_request",
                f"changes[{i}][0]: seq {seq} appears twice in the page; each change has its own",
            )
        seen.add(seq)
        if not _plain(c):
            problem = change_problem(c)
            if problem is not None:
                refused.append({"seq": seq, "code": "malformed", "reason": problem})
                continue
        if measure:
            rejection = _size_problem(c)
            if rejection is not None:
                refused.append({"seq": seq, **rejection})
                continue
        kept.append(c)
    return kept, refused


def _plain(c: list[Any]) -> bool:
    """True for the common shape, in which :func:`change_problem` would find nothing:
    ``[seq, "table", "key", "hlc", {"column": ["tag", "text", ...]}, txend]`` with scalars
    where the scalars go, no ``T`` cell and no key part of non-ASCII text.

    A quick test, not a check: False only means "ask change_problem".
    """
    if len(c) != 6:
        return False
    _seq, tbl, pk, hlc, cells, txend = c
    if type(cells) is not dict or type(pk) is not str:
        return False
    if type(tbl) is list or type(tbl) is dict or type(hlc) is list or type(hlc) is dict:
        return False
    if type(txend) is list or type(txend) is dict:
        return False
    for v in cells.values():
        if type(v) is not list or not v or v[0] == "T":
            return False
        for e in v:
            if type(e) is not str:
                return False
    return '"t' not in pk or _PLAIN_KEY.fullmatch(pk) is not None


def _size_problem(c: list[Any]) -> dict[str, str] | None:
    """The rejection of a change too large for a primary, or holding a lone surrogate."""
    try:
        # The whole change: a lone surrogate anywhere in it could not be bound.
        json.dumps(c, ensure_ascii=False).encode()
        cells = c[4] if len(c) > 4 else None
        size = (
            len(json.dumps(cells, separators=(",", ":"), ensure_ascii=False).encode())
            if cells is not None
            else 0
        )
    except UnicodeEncodeError:
        # JSON can carry a lone surrogate (\ud800); no SQLite TEXT can hold one.
        return {
            "code": "malformed",
            "reason": "a string in the change is not valid Unicode (it holds a lone surrogate)",
        }
    if size > MAX_CELLS_BYTES:
        return {
            "code": "too_large",
            "reason": f"the change is {size} bytes; a primary stores at most {MAX_CELLS_BYTES} "
            "per change (D1 refuses values over 2 MB): store large files elsewhere and keep a reference",
        }
    return None
