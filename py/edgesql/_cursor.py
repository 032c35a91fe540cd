"""Big results, page by page: ``db.iterate(sql, params)``.

``execute`` returns every row at once, which is right for the small results
an app mostly reads and wrong for a result of millions of rows: it would
sit whole in memory (in the browser twice: as the worker's answer and as
Python objects). A :class:`Cursor` keeps the statement open where it runs
and fetches the rows in pages of ``page_size``, so memory stays bounded by
one page whatever the size of the result::

    async for row in db.iterate("SELECT id, body FROM notes ORDER BY id"):
        handle(row)

    cur = db.iterate("SELECT * FROM events WHERE day = ?", (day,))
    first = await cur.fetchmany(100)      # the first rows, at once
    more = await cur.fetchmany(100)       # the next ones, when asked for
    await cur.close()                     # or `async with db.iterate(...) as cur:`

Rows are the same :class:`Row` objects, with exactly the same types, as
``execute`` returns. A read-only statement is stepped lazily, one page per
round trip; a statement that writes runs at once, as ``execute`` would run
it (all or nothing, captured for sync), and only its rows (``RETURNING``)
are handed out in pages. A cursor that is neither exhausted nor closed is
closed when it is garbage-collected; closing it explicitly frees its
statement sooner. ``statement_timeout`` and ``db.interrupt()`` apply to
each page's fetch.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from ._exceptions import ProgrammingError
from ._result import Row, _row_class

if TYPE_CHECKING:
    from ._connection import Connection

__all__ = ["DEFAULT_PAGE_SIZE", "Cursor", "CursorBackend", "Page"]

#: Rows per page unless ``page_size=`` says otherwise: large enough that the
#: round trip per page is a small share of a page's cost, small enough that a
#: page stays well under a megabyte (the worker also ends a page at 512 KiB).
DEFAULT_PAGE_SIZE = 1000


class Page:
    """One page of a cursor's rows, as a backend hands it over."""

    __slots__ = ("columns", "done", "last_insert_rowid", "rows", "rows_affected")

    def __init__(
        self,
        columns: Sequence[str],
        rows: list[Sequence[Any]],
        done: bool,
        rows_affected: int = 0,
        last_insert_rowid: int | None = None,
    ) -> None:
        self.columns = tuple(columns)
        self.rows = rows
        self.done = done
        self.rows_affected = rows_affected
        self.last_insert_rowid = last_insert_rowid


class CursorBackend(Protocol):
    """What a backend provides for cursors (both backends implement it)."""

    async def cursor_open(self, sql: str, params: list[Any] | dict[str, Any], page: int) -> tuple[Any, Page]:
        """Start the statement and return (a handle, its first page)."""
        ...

    async def cursor_next(self, handle: Any, page: int) -> Page:
        """The next page of an open cursor."""
        ...

    async def cursor_close(self, handle: Any) -> None:
        """Let go of the statement, in order with the connection's other calls."""
        ...

    def cursor_discard(self, handle: Any) -> None:
        """Let go of the statement without waiting (from ``__del__``)."""
        ...


class Cursor:
    """The rows of one statement, fetched page by page. Create it with :meth:`Connection.iterate`."""

    def __init__(
        self, conn: Connection, sql: str, params: list[Any] | dict[str, Any], page_size: int
    ) -> None:
        self._conn = conn
        self._sql = sql
        self._params = params
        self._page_size = page_size
        self._handle: Any = None
        self._started = False
        self._done = False
        self._closed = False
        self._buffer: deque[Sequence[Any]] = deque()
        self._row_cls: type[Row] | None = None
        self.columns: tuple[str, ...] = ()
        #: For a statement that writes: rows it changed, and the last rowid (else 0 and None).
        self.rows_affected = 0
        self.last_insert_rowid: int | None = None

    @property
    def closed(self) -> bool:
        """True once every row was handed out, or :meth:`close` ran (or an error ended it)."""
        return self._closed or (self._done and not self._buffer)

    def _take(self, page: Page) -> None:
        if not self._started:
            self._started = True
            self.columns = page.columns
            self._row_cls = _row_class(page.columns)
            self.rows_affected = page.rows_affected
            self.last_insert_rowid = page.last_insert_rowid
        self._buffer.extend(page.rows)
        if page.done:
            self._done = True
            self._handle = None  # the backend let go of the statement with the last page

    async def _fill(self) -> bool:
        """Fetch the next page; False when there is none."""
        if self._done:
            return False
        if self._closed:
            raise ProgrammingError(
                "this cursor is closed: iterate again with db.iterate()",
                sqlite_errorcode=21,
                sqlite_errorname="SQLITE_MISUSE",
            )
        self._conn._check_open()
        backend: CursorBackend = self._conn._backend  # type: ignore[assignment]
        try:
            if not self._started:
                self._handle, page = await backend.cursor_open(self._sql, self._params, self._page_size)
            else:
                page = await backend.cursor_next(self._handle, self._page_size)
        except BaseException:
            # An error ends the statement where it ran (a call given up on is let go of here).
            self._finish(discard=True)
            raise
        self._take(page)
        return True

    async def fetchmany(self, size: int | None = None) -> list[Row]:
        """Up to ``size`` more rows (default: ``page_size``); an empty list once there are none."""
        n = self._page_size if size is None else size
        if n < 1:
            raise ProgrammingError(f"fetchmany() needs a size of at least 1, not {size!r}")
        while len(self._buffer) < n and await self._fill():
            pass
        return [self._row(self._buffer.popleft()) for _ in range(min(n, len(self._buffer)))]

    async def fetchall(self) -> list[Row]:
        """Every remaining row (unbounded: prefer iterating for big results)."""
        while await self._fill():
            pass
        out = [self._row(r) for r in self._buffer]
        self._buffer.clear()
        return out

    def _row(self, raw: Sequence[Any]) -> Row:
        assert self._row_cls is not None
        return tuple.__new__(self._row_cls, raw)

    def __aiter__(self) -> Cursor:
        return self

    async def __anext__(self) -> Row:
        while not self._buffer:
            if self._closed or not await self._fill():
                raise StopAsyncIteration
        return self._row(self._buffer.popleft())

    def _finish(self, discard: bool = False) -> Any:
        """Mark the cursor closed; returns the statement's handle if it is still open."""
        self._buffer.clear()
        if self._closed:
            return None
        self._closed = True
        handle, self._handle = self._handle, None
        if handle is None or self._done or self._conn.closed:
            return None
        if discard:
            self._conn._backend.cursor_discard(handle)  # type: ignore[attr-defined]
            return None
        return handle

    async def close(self) -> None:
        """Stop reading: the statement is let go of before the connection's next call (idempotent)."""
        handle = self._finish()
        if handle is not None:
            await self._conn._backend.cursor_close(handle)  # type: ignore[attr-defined]

    aclose = close

    def __del__(self) -> None:
        try:
            self._finish(discard=True)
        except Exception:  # at interpreter exit, or with the backend half gone: nothing to free
            pass

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("open" if self._started else "not started")
        return f"<edgesql.Cursor {self._sql[:40]!r} ({state})>"
