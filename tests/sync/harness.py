"""A primary and several CPython replicas in one process, for sync tests.

The primary is the real embedded primary (apsw, SQLite 3.54) and the
replicas are real edgesql connections (stdlib sqlite3); requests go through
:class:`InProcessTransport`, optionally wrapped in a faulty one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import edgesql
from edgesql.server.primary import Primary
from edgesql.server.sync_routes import SyncHandler
from edgesql.sync.schema import Migration

from .inprocess import InProcessTransport

TEST_SCHEMA = """
CREATE TABLE items (id TEXT PRIMARY KEY, a, b INTEGER, c TEXT, d REAL);
CREATE TABLE pairs (x TEXT NOT NULL, y INTEGER NOT NULL, v, PRIMARY KEY (x, y)) WITHOUT ROWID;
"""

URL = "http://primary.invalid/sync"


def exact(v: Any) -> tuple[str, Any]:
    """A comparison key that tells 1 from 1.0 and -0.0 from 0.0."""
    if isinstance(v, float):
        return ("float", v.hex() if not math.isnan(v) else "nan")
    return (type(v).__name__, v)


def table_state(rows: Sequence[Sequence[Any]]) -> list[tuple[tuple[str, Any], ...]]:
    """Rows as sorted tuples of exact keys."""
    return sorted(tuple(exact(v) for v in r) for r in rows)


class Cluster:
    """One primary and its replicas."""

    def __init__(self, schema: str = TEST_SCHEMA, tokens: Sequence[str] = (), path: str = ":memory:") -> None:
        self.path = path
        self.tokens = tokens
        self.migrations: tuple[Migration, ...] = (Migration(1, "test", schema),)
        self.primary = Primary(path, self.migrations)
        self.handler = SyncHandler(self.primary, tokens)
        self.transport = InProcessTransport(self.handler)
        self.replicas: list[edgesql.Connection] = []

    def migrate(self, sql: str) -> None:
        """Restart the primary with one more migration (it needs a file: ``path``)."""
        assert self.path != ":memory:", "a primary in memory cannot restart"
        self.primary.close()
        self.migrations += (Migration(len(self.migrations) + 1, f"step{len(self.migrations) + 1}", sql),)
        self.primary = Primary(self.path, self.migrations)
        self.handler = SyncHandler(self.primary, self.tokens)
        self.transport.handler = self.handler

    async def replica(
        self, transport: Any = None, path: str = ":memory:", **options: Any
    ) -> edgesql.Connection:
        db = await edgesql.connect(
            path, sync_url=URL, transport=transport or self.transport, sync_interval=None, **options
        )
        self.replicas.append(db)
        return db

    async def settle(self) -> None:
        """Everyone syncs until nobody has anything left to push or pull."""
        for _ in range(3):
            for db in self.replicas:
                await db.sync()

    async def states(self, table: str, order: str) -> list[Any]:
        out = []
        for db in self.replicas:
            out.append(table_state((await db.execute(f"SELECT * FROM {table} ORDER BY {order}")).rows))
        out.append(table_state(self.primary.query(f"SELECT * FROM {table} ORDER BY {order}")))
        return out

    async def close(self) -> None:
        for db in self.replicas:
            await db.close()
        self.primary.close()
