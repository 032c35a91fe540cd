"""Live queries: ``db.watch(sql, params)``.

A watch runs its query now, and again whenever a table the query reads
changes — by a local write, by changes pulled from the primary, or (in the
browser) by another tab. Which tables a query reads, and which a write
touches, come from SQLite's authorizer while it compiles the statement, so
only queries whose tables changed re-run. Changes that arrive while the
query runs, or before the consumer asks for the next result, are coalesced
into one re-run; a result equal to the previous one is not yielded again::

    async for rs in db.watch("SELECT count(*) FROM tasks WHERE done = 0"):
        render(rs.scalar())

    handle = db.watch("SELECT * FROM tasks", callback=render)   # or a callback
    ...
    await handle.close()
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._params import Params

if TYPE_CHECKING:
    from ._connection import Connection
    from ._result import ResultSet

__all__ = ["Watch"]


class Watch:
    """A live query. Iterate it (``async for``), or pass ``callback=`` to ``db.watch``."""

    def __init__(self, conn: Connection, sql: str, params: Params | None, distinct: bool = True) -> None:
        self._conn = conn
        self.sql = sql
        self._params = params
        self._distinct = distinct
        self._reads: set[str] | None = None
        self._dirty = asyncio.Event()
        self._unsubscribe: Callable[[], None] | None = None
        self._last: list[Any] | None = None
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self.reruns = 0  # how many times the query ran again (tests and devtools read it)

    @property
    def tables(self) -> frozenset[str]:
        """The tables this query reads (known once it has run)."""
        return frozenset(self._reads or ())

    def _changed(self, tables: set[str]) -> None:
        if self._reads is not None and ("*" in tables or not self._reads.isdisjoint(tables)):
            self._dirty.set()

    async def _first(self) -> ResultSet:
        backend = self._conn._backend
        reads, _writes = await backend.tables(self.sql)  # type: ignore[attr-defined]
        self._reads = set(reads)
        self._unsubscribe = backend.subscribe(self._changed)  # type: ignore[attr-defined]
        return await self._conn.execute(self.sql, self._params)

    def __aiter__(self) -> Watch:
        return self

    async def __anext__(self) -> ResultSet:
        if self._closed or self._conn.closed:
            raise StopAsyncIteration
        if self._reads is None:
            rs = await self._first()
            self._last = rs._raw
            return rs
        while True:
            await self._dirty.wait()
            if self._closed or self._conn.closed:
                raise StopAsyncIteration
            self._dirty.clear()  # changes from here on cause another run
            rs = await self._conn.execute(self.sql, self._params)
            self.reruns += 1
            if self._distinct and rs._raw == self._last:
                continue
            self._last = rs._raw
            return rs

    async def close(self) -> None:
        """Stop watching (idempotent)."""
        self._closed = True
        self._dirty.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    aclose = close

    async def __aenter__(self) -> Watch:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _run_callback(self, callback: Callable[[ResultSet], Any]) -> None:
        async def pump() -> None:
            async for rs in self:
                out = callback(rs)
                if inspect.isawaitable(out):
                    await out

        self._task = asyncio.ensure_future(pump())
