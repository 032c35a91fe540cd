"""The public connection API, the same on CPython and in the browser.

``await edgesql.connect("app.db")`` picks the backend for the running
interpreter: SQLite-Wasm on OPFS when running in Pyodide, the stdlib's
sqlite3 on CPython. Everything here is backend-agnostic; the backends live
in ``_native.py`` and ``_browser.py``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Generator, Iterable
from types import TracebackType
from typing import Any

from ._backend import Backend, BackendInfo, Statement
from ._cursor import DEFAULT_PAGE_SIZE, Cursor
from ._exceptions import ProgrammingError
from ._params import Params, check_many, check_params
from ._result import ResultSet
from ._split import split_statements
from ._transaction import Transaction
from ._watch import Watch

__all__ = ["Connection", "connect"]

SQLITE_MISUSE = 21
#: The longest statement_timeout accepted: a day (a typo in milliseconds rather than seconds stands out).
MAX_STATEMENT_TIMEOUT_S = 86_400.0


class Connection:
    """An open edgesql database. Create it with :func:`edgesql.connect`."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._closed = False
        self._tx_depth = 0
        # The task that opened the transaction: db.sync() from it would wait for itself.
        self._tx_task: asyncio.Task[Any] | None = None

    # -- state -------------------------------------------------------------
    @property
    def info(self) -> BackendInfo:
        """Where this database lives (backend, storage, persistence, warnings)."""
        return self._backend.info

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._closed

    @property
    def in_transaction(self) -> bool:
        """True while a transaction is open on this connection."""
        return not self._closed and self._backend.in_transaction

    def _check_open(self) -> None:
        if self._closed:
            raise ProgrammingError(
                "Cannot operate on a closed database: connect again with edgesql.connect()",
                sqlite_errorcode=SQLITE_MISUSE,
                sqlite_errorname="SQLITE_MISUSE",
            )

    # -- statements --------------------------------------------------------
    async def execute(self, sql: str, params: Params | None = None) -> ResultSet:
        """Run one SQL statement with ``params`` (a sequence for ``?``, a mapping for ``:name``)."""
        self._check_open()
        _check_sql(sql)
        return await self._backend.execute(sql, check_params(params, self._backend.wire_tags))

    async def executemany(self, sql: str, seq_of_params: Iterable[Params]) -> ResultSet:
        """Run one statement once per parameter set, all or nothing, in one round trip.

        ``rows_affected`` is the total over all parameter sets.
        """
        self._check_open()
        _check_sql(sql)
        return await self._backend.executemany(sql, check_many(seq_of_params, self._backend.wire_tags))

    async def batch(self, statements: Iterable[str | tuple[str, Params] | list[Any]]) -> list[ResultSet]:
        """Run several statements atomically, in one round trip.

        Each item is ``sql`` or ``(sql, params)``. If any statement fails,
        none of them has any effect and the error names the failing one.
        """
        self._check_open()
        stmts: list[Statement] = []
        for n, item in enumerate(statements):
            if isinstance(item, str):
                sql, params = item, None
            elif isinstance(item, tuple | list) and len(item) == 2 and isinstance(item[0], str):
                sql, params = item[0], item[1]
            else:
                raise ProgrammingError(
                    f"batch item {n} must be an SQL string or a (sql, params) pair, got {item!r:.80}"
                )
            stmts.append((sql, check_params(params, self._backend.wire_tags)))
        if not stmts:
            return []
        return await self._backend.batch(stmts)

    async def executescript(self, sql: str) -> None:
        """Run a script of ``;``-separated statements (no parameters), atomically."""
        self._check_open()
        _check_sql(sql)
        await self._backend.script(sql)

    def iterate(
        self, sql: str, params: Params | None = None, *, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Cursor:
        """The rows of ``sql``, fetched ``page_size`` at a time: ``async for row in db.iterate(sql):``.

        Memory stays bounded by one page however big the result; the rows
        and their types are exactly those ``execute`` would return. The
        :class:`Cursor` also has ``await cur.fetchmany(n)`` and ``await cur.close()``.
        """
        self._check_open()
        _check_sql(sql)
        if not isinstance(page_size, int) or isinstance(page_size, bool) or page_size < 1:
            raise ProgrammingError(f"page_size must be a positive int, not {page_size!r}")
        return Cursor(self, sql, check_params(params, self._backend.wire_tags), page_size)

    def interrupt(self) -> None:
        """Stop what this connection is running now: that call raises ``OperationalError`` (SQLITE_INTERRUPT).

        Calls made after this one run normally, and nothing else is undone:
        other connections and tabs, earlier statements, and this
        connection's open transaction — except that SQLite itself rolls the
        transaction back when the interrupted statement was a write inside
        it (the error then says so). Safe to call from any task, from
        another thread on CPython, and when nothing is running (it then
        does nothing).
        """
        if not self._closed:
            self._backend.interrupt()  # type: ignore[attr-defined]

    def transaction(self, mode: str = "deferred") -> Transaction:
        """An interactive transaction: ``async with db.transaction() as tx: ...``.

        Commits when the block ends normally, rolls back when it raises;
        nested blocks become SAVEPOINTs. ``mode`` is ``deferred``,
        ``immediate`` or ``exclusive`` (SQLite's BEGIN modes).
        """
        self._check_open()
        return Transaction(self, mode)

    # -- live queries --------------------------------------------------------
    def watch(
        self,
        sql: str,
        params: Params | None = None,
        *,
        callback: Callable[[ResultSet], Any] | None = None,
        distinct: bool = True,
    ) -> Watch:
        """A live query: a fresh :class:`ResultSet` now and whenever a table it reads changes.

        Iterate it with ``async for``, or pass ``callback`` (a function or
        coroutine function) to have it called with each result. Bursts of
        changes are coalesced; with ``distinct`` an unchanged result is not
        delivered again. ``await watch.close()`` stops it.
        """
        self._check_open()
        _check_sql(sql)
        w = Watch(self, sql, params, distinct)
        if callback is not None:
            w._run_callback(callback)
        return w

    # -- sync --------------------------------------------------------------
    async def sync(self) -> Any:
        """Push pending local changes and pull new ones now; returns ``SyncResult(pushed, pulled)``.

        Raises :class:`edgesql.SyncError` when the primary cannot be reached or
        refuses; nothing local is lost, the changes stay pending.
        """
        self._check_open()
        if self._tx_depth and self._tx_task is asyncio.current_task():
            from .sync.replica import refuse_sync_in_transaction

            raise refuse_sync_in_transaction()
        return await self._backend.sync()  # type: ignore[attr-defined]

    async def sync_status(self) -> Any:
        """Where sync stands: ``pending``, ``last_synced_at``, ``last_error``, ``online``, ``progress``."""
        self._check_open()
        return await self._backend.sync_status()  # type: ignore[attr-defined]

    async def conflicts(self, include_dismissed: bool = False) -> list[Any]:
        """This device's edits that lost: overwritten by a later write elsewhere, erased by a
        delete that won, or rejected by the primary (``edgesql.sync.conflicts.Conflict``),
        oldest first. Mark them seen with :meth:`dismiss_conflicts`."""
        from .sync.conflicts import conflicts_sql, from_row

        self._check_open()
        try:
            rs = await self.execute(conflicts_sql(include_dismissed))
        except ProgrammingError:
            raise
        except Exception as e:
            if "no such table" in str(e):
                return []  # a database that does not sync has no conflicts
            raise
        return [from_row(r) for r in rs.rows]

    async def dismiss_conflicts(self, ids: Iterable[int]) -> None:
        """Mark conflicts seen: :meth:`conflicts` leaves them out from now on."""
        import json

        from .sync.conflicts import dismiss_sql

        await self.execute(dismiss_sql(), (json.dumps([int(i) for i in ids]),))

    async def _apply_local_schema(self, statements: list[str]) -> None:
        # For databases without a primary: run the schema steps not yet run, in order.
        await self.execute("CREATE TABLE IF NOT EXISTS _edgesql_local_schema (version INTEGER NOT NULL)")
        done = (await self.execute("SELECT max(version) FROM _edgesql_local_schema")).scalar() or 0
        if done > len(statements):
            raise ProgrammingError(
                f"this database is at local schema step {done}, but only {len(statements)} steps were given: "
                "schema steps are append-only"
            )
        for version, sql in enumerate(statements[done:], start=done + 1):
            async with self.transaction("immediate"):
                for stmt in split_statements(sql):
                    await self.execute(stmt)
                await self.execute("INSERT INTO _edgesql_local_schema (version) VALUES (?)", (version,))

    # -- lifetime ----------------------------------------------------------
    async def close(self) -> None:
        """Close the database; an uncommitted transaction is rolled back."""
        if self._closed:
            return
        self._closed = True
        self._tx_depth = 0
        await self._backend.close()

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else self.info.storage
        return f"<edgesql.Connection {self.info.path!r} ({state})>"


def _check_timeout(value: object) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 < value <= MAX_STATEMENT_TIMEOUT_S
    ):
        raise ProgrammingError(
            f"statement_timeout must be a number of seconds above 0 and at most {MAX_STATEMENT_TIMEOUT_S:.0f} "
            f"(or None for no limit), not {value!r}"
        )
    return float(value)


def _check_sql(sql: object) -> None:
    if not isinstance(sql, str):
        raise ProgrammingError(
            f"sql must be a str, got {type(sql).__name__}; pass values as params, not in the SQL"
        )


class _Connector:
    """What :func:`connect` returns: await it, or use it with ``async with``."""

    def __init__(self, path: str, options: dict[str, Any]) -> None:
        self._path = path
        self._options = options
        self._conn: Connection | None = None

    async def _open(self) -> Connection:
        self._options["statement_timeout"] = _check_timeout(self._options.get("statement_timeout"))
        schema = self._options.pop("schema", None)
        if schema is not None:
            if self._options.get("sync_url"):
                raise ProgrammingError(
                    "schema= is for databases without a primary; with sync_url the primary's schema is used"
                )
            if isinstance(schema, str) or not all(isinstance(s, str) for s in schema):
                raise ProgrammingError("schema must be a list of SQL strings, one per schema step")
            schema = list(schema)
        if sys.platform == "emscripten":
            from ._browser import open_browser_backend

            backend: Backend = await open_browser_backend(self._path, **self._options)
        else:
            from ._native import open_native_backend

            backend = await open_native_backend(self._path, **self._options)
        self._conn = Connection(backend)
        if schema is not None:
            try:
                await self._conn._apply_local_schema(schema)
            except BaseException:
                await self._conn.close()
                raise
        return self._conn

    def __await__(self) -> Generator[Any, None, Connection]:
        return self._open().__await__()

    async def __aenter__(self) -> Connection:
        return await self._open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._conn is not None:
            await self._conn.close()


def connect(path: str, **options: Any) -> Awaitable[Connection] | _Connector:
    """Open the database ``path``: ``db = await edgesql.connect("app.db")``.

    In the browser the database lives in OPFS (or in memory, visibly, where
    OPFS is missing); on CPython ``path`` is a file (``":memory:"`` for an
    in-memory database). Also usable as ``async with edgesql.connect(...) as db``.

    ``statement_timeout`` (seconds, default ``None``: no limit) bounds every
    call of this connection, time spent waiting for the database included:
    a call that would take longer is stopped and raises
    ``OperationalError`` with SQLite's SQLITE_INTERRUPT code, and nothing
    else is undone (see :meth:`Connection.interrupt`). In the browser a
    call that cannot even start in time (another tab runs a long statement
    on the database) gives up after the limit, and does not run.
    """
    if not isinstance(path, str) or not path:
        raise ProgrammingError(f"path must be a non-empty str, got {path!r}")
    return _Connector(path, options)
