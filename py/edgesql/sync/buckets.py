"""Who sees what: the access rules of a schema (``access.sql`` in the schema folder).

Without an access file a primary is one shared database: every device that holds a
token reads and writes every row. With one, every row of every synced table is in
one *bucket*, and a user reads only the rows of the buckets their queries give them::

    -- Which bucket a row is in: an expression over the row's own columns.
    BUCKET projects AS 'project:' || id;
    BUCKET tasks AS 'project:' || project_id;

    -- The buckets a user may read, and those they may read and write: queries over
    -- the primary's tables; :user is the signed-in user (the token's `sub`).
    READ SELECT 'public';
    WRITE SELECT 'project:' || project_id FROM members WHERE user_id = :user;

Every synced table needs a BUCKET, computed from the row alone (so a row's bucket
changes only when that row changes). A pushed change is applied only when the
user may write the row's bucket before the change and after it (by the WRITE
queries as they stood when the request came). One more case makes new things
possible: a change may put a row into a bucket that holds no row yet when the
user's WRITE queries give them that bucket once the change is made — a new
project whose owner they are — and the user may then write that bucket for the
rest of the request (its first members, its first tasks). The rules run on the primary only;
replicas learn a hash of them, and start again from a snapshot when they change.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._split import split_statements
from .schema import SchemaError

__all__ = ["ACCESS_FILE", "Access", "check_access", "load_access", "parse_access"]

#: The access rules' file in a schema folder.
ACCESS_FILE = "access.sql"

_BUCKET = re.compile(
    r"^\s*BUCKET\s+(\"(?:[^\"]|\"\")+\"|[A-Za-z_][A-Za-z0-9_$]*)\s+AS\s+(.+?)\s*;?\s*$", re.I | re.S
)
_GRANT = re.compile(r"^\s*(READ|WRITE)\s+(SELECT\b.+?)\s*;?\s*$", re.I | re.S)
_COMMENT = re.compile(r"--[^\n]*|/\*.*?\*/", re.S)


@dataclass(frozen=True)
class Access:
    """Parsed access rules: each table's bucket expression, and the user's bucket queries."""

    buckets: tuple[tuple[str, str], ...]
    read: tuple[str, ...]
    write: tuple[str, ...]

    def bucket_of(self, table: str) -> str:
        """The bucket expression of ``table``."""
        return dict(self.buckets)[table]

    @property
    def digest(self) -> str:
        """A short hash of the rules: equal digests, equal rules."""
        text = repr((self.buckets, self.read, self.write))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        return {
            "buckets": [list(b) for b in self.buckets],
            "read": list(self.read),
            "write": list(self.write),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Access:
        return cls(tuple((t, e) for t, e in d["buckets"]), tuple(d["read"]), tuple(d["write"]))


def _unquote(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') else name


def parse_access(text: str, where: str = ACCESS_FILE) -> Access:
    """Read the rules' text (see the module docstring); raise SchemaError saying what is wrong."""
    buckets: list[tuple[str, str]] = []
    read: list[str] = []
    write: list[str] = []
    for stmt in split_statements(text):
        body = _COMMENT.sub(" ", stmt).strip()
        if not body.strip(";").strip():
            continue
        if m := _BUCKET.match(body):
            table = _unquote(m.group(1))
            if any(t == table for t, _ in buckets):
                raise SchemaError(f"{where}: table {table!r} has two BUCKET rules; a row is in one bucket")
            buckets.append((table, m.group(2).strip()))
        elif m := _GRANT.match(body):
            (read if m.group(1).upper() == "READ" else write).append(m.group(2).strip())
        else:
            raise SchemaError(
                f"{where}: cannot read {body[:60]!r}: each rule is `BUCKET <table> AS <expression>;`, "
                "`READ SELECT ...;` or `WRITE SELECT ...;` (see docs/sync.md, Who sees what)"
            )
    return Access(tuple(buckets), tuple(read), tuple(write))


def load_access(schema_path: Any) -> Access | None:
    """The rules in ``<schema folder>/access.sql``, or None (a schema given as one file has none)."""
    p = Path(schema_path)
    f = p / ACCESS_FILE if p.is_dir() else None
    if f is None or not f.exists():
        return None
    return parse_access(f.read_text(), str(f))


def check_access(conn: Any, tables: list[str], access: Access) -> None:
    """Check the rules against the migrated schema in ``conn`` (an apsw connection).

    Every synced table has a BUCKET; each expression reads only its own row; each
    query compiles and gives one column. Raises SchemaError with what to fix.
    """
    rules = dict(access.buckets)
    for t in tables:
        if t not in rules:
            raise SchemaError(
                f"{ACCESS_FILE}: synced table {t!r} has no BUCKET rule, so nobody could read its rows. "
                f"Add `BUCKET {t} AS <expression over its columns>;` (e.g. 'user:' || owner_id), or name "
                f"the table local_{t} to keep it on each device"
            )
    for t in rules:
        if t not in tables:
            raise SchemaError(f"{ACCESS_FILE}: BUCKET {t}: there is no synced table {t!r}")
    for t, expr in access.buckets:
        read: set[str] = set()

        def auth(action: int, a: str | None, *_: Any, _read: set[str] = read) -> int:
            if action == 20 and a:  # SQLITE_READ
                _read.add(a)
            return 0

        conn.set_authorizer(auth)
        try:
            conn.execute(f'EXPLAIN SELECT ({expr}) FROM "{t.replace(chr(34), chr(34) * 2)}"')
        except Exception as e:
            raise SchemaError(f"{ACCESS_FILE}: BUCKET {t} AS {expr}: {e}") from None
        finally:
            conn.set_authorizer(None)
        others = sorted(x for x in read if x != t and not x.startswith("sqlite_"))
        if others:
            raise SchemaError(
                f"{ACCESS_FILE}: BUCKET {t} reads {others}: a row's bucket must come from its own columns "
                "(else a change elsewhere would move it without a change to it); copy the column into "
                f"{t} (e.g. a project_id on each row)"
            )
    for kind, queries in (("READ", access.read), ("WRITE", access.write)):
        for q in queries:
            try:
                conn.execute(f"SELECT * FROM ({q}) LIMIT 0", {"user": ""}).fetchall()
            except Exception as e:
                raise SchemaError(f"{ACCESS_FILE}: {kind} {q}: {e}") from None
            try:  # one column, the bucket (a UNION with one column refuses any other width)
                conn.execute(f"SELECT * FROM ({q}) UNION ALL SELECT NULL LIMIT 0", {"user": ""}).fetchall()
            except Exception:
                raise SchemaError(
                    f"{ACCESS_FILE}: {kind} {q}: gives several columns; it must give one, the bucket"
                ) from None
