"""The CPython backend: the stdlib's :mod:`sqlite3`, in process.

It runs the same statements the browser worker runs and reports results and
errors the same way, so one test suite covers both. Statements run
synchronously inside the coroutine: a SQLite call takes microseconds, far
less than handing it to a thread would.

Durability: a file database uses WAL with ``synchronous=NORMAL``; a write is
durable once its ``await`` returns, against a crash of the process (a power
cut can lose the last transactions, never corrupt the file). With
``durability="full"`` every commit is flushed to disk (``synchronous=FULL``).

Long statements: because a statement runs inside the coroutine, the event
loop waits for it, so nothing on that loop can call ``db.interrupt()``
meanwhile; another thread or a signal handler can (SQLite's
``sqlite3_interrupt`` is made for that), and ``statement_timeout`` stops a
statement from within, through SQLite's progress handler.
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ._backend import BackendInfo, Statement
from ._cursor import Page
from ._exceptions import Error, ProgrammingError, error_for_code, interrupted_message
from ._result import ResultSet
from ._split import has_statement, split_statements

__all__ = ["NativeBackend", "open_native_backend", "translate_error"]

_STDLIB_KIND = {
    "IntegrityError": "IntegrityError",
    "ProgrammingError": "ProgrammingError",
    "OperationalError": "OperationalError",
    "DataError": "DataError",
    "InternalError": "InternalError",
    "NotSupportedError": "NotSupportedError",
    "InterfaceError": "ProgrammingError",
}


#: How long a statement waits for another connection's transaction before SQLITE_BUSY (as in the browser).
BUSY_TIMEOUT_MS = 5000
SQLITE_BUSY = 5
SQLITE_INTERRUPT = 9
SQLITE_MISUSE = 21
#: SQLite virtual-machine steps between two looks at the clock (statement_timeout):
#: a few microseconds of work, so a statement stops within well under a millisecond.
PROGRESS_STEPS = 1000
#: EXPLAIN opcodes of a statement that changes the database (what sqlite3_stmt_readonly
#: tells the browser's worker; the stdlib has no such call). OP_Transaction with p2 != 0 too.
_WRITE_OPCODES = frozenset(
    {
        "OpenWrite",
        "CreateBtree",
        "Destroy",
        "Clear",
        "ParseSchema",
        "SetCookie",
        "VUpdate",
        "Vacuum",
        "IncrVacuum",
        "JournalMode",
        "VCreate",
        "VDestroy",
        "AutoCommit",
        "Savepoint",
    }
)
#: Transaction control runs at once in iterate(), as in the browser.
_TX_CONTROL = re.compile(r"\s*(BEGIN|COMMIT|END|ROLLBACK|SAVEPOINT|RELEASE)\b", re.IGNORECASE)


def _no_statement() -> ProgrammingError:
    # The words of the browser's engine, which refuses such SQL when it prepares it.
    return ProgrammingError(
        "the SQL holds no statement (only blanks or comments)",
        sqlite_errorcode=SQLITE_MISUSE,
        sqlite_errorname="SQLITE_MISUSE",
    )


def translate_error(e: Exception, context: str = "") -> Error:
    """Turn a stdlib sqlite3 exception into the edgesql exception of the same meaning."""
    from . import _exceptions

    code = getattr(e, "sqlite_errorcode", None)
    name = getattr(e, "sqlite_errorname", None)
    message = f"{context}{e}"
    if code is not None:
        cls = error_for_code(code)
        if code & 0xFF == SQLITE_BUSY:
            # SQLite only says "database is locked": say why, and what to do (as the browser does).
            message += (
                f": another connection has held a transaction open for more than {BUSY_TIMEOUT_MS // 1000} s; "
                "commit or roll it back (async with db.transaction() does this for you)"
            )
    else:
        cls = getattr(_exceptions, _STDLIB_KIND.get(type(e).__name__, "OperationalError"))
        if "closed" in str(e):
            code, name = 21, "SQLITE_MISUSE"
    return cls(message, sqlite_errorcode=code, sqlite_errorname=name)


def _unhex(value: str | bytes | None) -> bytes | None:
    # SQLite added unhex() in 3.41; the sync SQL uses it and Debian 12's
    # libsqlite3 is 3.40.1, so older engines get this stand-in.
    if value is None:
        return None
    try:
        return bytes.fromhex(value.decode() if isinstance(value, bytes) else str(value))
    except ValueError:
        return None


def _connect(
    path: str, durability: str = "normal", statement_timeout: float | None = None
) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, cached_statements=512)
    if sqlite3.sqlite_version_info < (3, 41, 0):
        conn.create_function("unhex", 1, _unhex, deterministic=True)
    # Waiting for another connection's lock counts against the statement's time limit too.
    busy_ms = (
        BUSY_TIMEOUT_MS if statement_timeout is None else min(BUSY_TIMEOUT_MS, int(statement_timeout * 1000))
    )
    conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
    # FOREIGN KEYs are kept, as in the browser's worker and on the primary (SQLite's default is off).
    conn.execute("PRAGMA foreign_keys = ON")
    if path != ":memory:" and not path.startswith("file::memory:"):
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {'FULL' if durability == 'full' else 'NORMAL'}")
    return conn


class NativeBackend:
    """One stdlib sqlite3 connection, speaking the :class:`Backend` protocol."""

    wire_tags = False  # values go to sqlite3 as they are

    def __init__(self, path: str, durability: str = "normal", statement_timeout: float | None = None) -> None:
        if durability not in ("normal", "full"):
            raise ProgrammingError(f'durability must be "normal" or "full", not {durability!r}')
        try:
            self._db: sqlite3.Connection | None = _connect(path, durability, statement_timeout)
        except sqlite3.Error as e:
            raise translate_error(e, f"cannot open {path!r}: ") from None
        # Stopping statements: why the running one was stopped, and when it must stop by.
        self._timeout = statement_timeout
        self._deadline: float | None = None
        self._stopped_by: str | None = None
        if statement_timeout is not None:
            self._db.set_progress_handler(self._progress, PROGRESS_STEPS)
        memory = path == ":memory:"
        self.info = BackendInfo(
            backend="sqlite3",
            storage="memory" if memory else "file",
            path=path if memory else os.path.abspath(path),
            persistent=not memory,
            sqlite_version=sqlite3.sqlite_version,
        )
        # SQL run just before a write is committed, in the same transaction
        # (the sync layer marks the end of a unit in the outbox with it).
        self.before_commit: list[str] = []
        self.replica: Any = None  # sync.replica.NativeReplica when connected with sync_url
        # Live queries: which tables statements read and write (SQLite's
        # authorizer, at compile time), and who to tell about changes.
        self._collect: tuple[set[str], set[str]] | None = None
        self._tables: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
        self._dirty: set[str] = set()
        self._listeners: set[Any] = set()
        self.db.set_authorizer(self._authorize)
        # Set when the app's transaction ends (sync waits for that: when_idle).
        self._idle: asyncio.Event | None = None

    @property
    def db(self) -> sqlite3.Connection:
        """The raw sqlite3 connection (for the sync engine)."""
        if self._db is None:
            raise ProgrammingError(
                "Cannot operate on a closed database", sqlite_errorcode=21, sqlite_errorname="SQLITE_MISUSE"
            )
        return self._db

    @property
    def in_transaction(self) -> bool:
        return self._db is not None and self._db.in_transaction

    # -- live queries ---------------------------------------------------------------

    def _authorize(self, action: int, arg1: str | None, *_rest: Any) -> int:
        c = self._collect
        if c is not None and arg1 and not arg1.startswith("sqlite_"):
            if action == sqlite3.SQLITE_READ:
                c[0].add(arg1)
            elif action in (sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE):
                c[1].add(arg1)
        return sqlite3.SQLITE_OK

    def tables_of(self, sql: str) -> tuple[frozenset[str], frozenset[str]]:
        """The tables ``sql`` reads and writes, from compiling it (nothing is run)."""
        known = self._tables.get(sql)
        if known is not None:
            return known
        self._collect = (set(), set())
        try:
            # EXPLAIN compiles the statement (the authorizer sees every table,
            # triggers included) without running it. Missing parameters make the
            # stdlib refuse to *bind* after compiling, which is all we need.
            self.db.execute("EXPLAIN " + sql).fetchall()
        except (sqlite3.ProgrammingError, sqlite3.OperationalError):
            pass
        finally:
            reads, writes = self._collect
            self._collect = None
        out = (frozenset(reads), frozenset(writes))
        if len(self._tables) < 1024:
            self._tables[sql] = out
        return out

    async def tables(self, sql: str) -> tuple[list[str], list[str]]:
        reads, writes = self.tables_of(sql)
        return sorted(reads), sorted(writes)

    def subscribe(self, listener: Any) -> Any:
        self._listeners.add(listener)
        return lambda: self._listeners.discard(listener)

    def emit(self, tables: set[str] | frozenset[str]) -> None:
        """Tell live queries that ``tables`` changed (a commit, or pulled changes)."""
        for listener in list(self._listeners):
            listener(set(tables))

    def _wrote(self, sql: str) -> None:
        if self._listeners:
            self._dirty |= self.tables_of(sql)[1]

    def _flush(self) -> None:
        if self.in_transaction:
            return
        if self._idle is not None:
            self._idle.set()
            self._idle = None
        if self._dirty:
            dirty, self._dirty = self._dirty, set()
            self.emit(dirty)

    async def when_idle(self) -> None:
        """Return once no transaction of the app is open on this connection.

        The sync engine shares this connection: it must neither read the outbox rows
        of a transaction that may still roll back, nor begin its own inside it.
        """
        while self.in_transaction:
            if self._idle is None:
                self._idle = asyncio.Event()
            await self._idle.wait()

    # -- stopping statements ----------------------------------------------------------

    def _progress(self) -> int:
        # Called by SQLite every PROGRESS_STEPS steps of any statement on this connection;
        # only the app's calls have a deadline (the sync engine's work has none).
        deadline = self._deadline
        if deadline is not None and time.monotonic() > deadline:
            self._stopped_by = "timeout"
            return 1
        return 0

    def interrupt(self) -> None:
        """Stop the statement running now (thread-safe, like sqlite3's interrupt)."""
        db = self._db
        if db is not None:
            self._stopped_by = "interrupt"
            db.interrupt()

    @contextmanager
    def _app_call(self) -> Iterator[None]:
        """One call of the app's: bounded by statement_timeout; an interrupt says why it came."""
        had_tx = self.in_transaction
        self._stopped_by = None
        if self._timeout is not None:
            self._deadline = time.monotonic() + self._timeout
        try:
            yield
        except Error as e:
            code = e.sqlite_errorcode
            if code is None or code & 0xFF != SQLITE_INTERRUPT:
                raise
            why = self._stopped_by or "interrupt"
            message = interrupted_message(
                why, self._timeout, started=True, lost_tx=had_tx and not self.in_transaction
            )
            prefix = str(e).removesuffix("interrupted")
            raise type(e)(
                prefix + message, sqlite_errorcode=code, sqlite_errorname="SQLITE_INTERRUPT"
            ) from None
        finally:
            self._deadline = None

    def _run(self, sql: str, params: list[Any] | dict[str, Any]) -> ResultSet:
        db = self.db
        if not has_statement(sql):
            raise _no_statement()
        before = db.total_changes
        try:
            cur = db.execute(sql, params)
            raw = cur.fetchall()
        except sqlite3.Error as e:
            raise translate_error(e) from None
        except (OverflowError, UnicodeEncodeError) as e:  # already filtered by _params; belt and braces
            raise ProgrammingError(str(e)) from None
        columns = tuple(d[0] for d in cur.description) if cur.description else ()
        if db.total_changes == before:
            return ResultSet(columns, raw, 0, None)
        self._wrote(sql)
        changes, rowid = db.execute("SELECT changes(), last_insert_rowid()").fetchone()
        return ResultSet(columns, raw, changes, rowid)

    def _atomic(self, work: Any) -> Any:
        """Run ``work()`` all or nothing: a transaction, or a savepoint inside one."""
        db = self.db
        outer = not db.in_transaction
        try:
            db.execute("BEGIN" if outer else "SAVEPOINT edgesql_atomic")
            result = work()
            if outer:
                self._commit()
            else:
                db.execute("RELEASE edgesql_atomic")
            return result
        except BaseException:
            if outer:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                self._dirty.clear()
            else:
                db.execute("ROLLBACK TO edgesql_atomic")
                db.execute("RELEASE edgesql_atomic")
            raise

    def _commit(self) -> None:
        db = self.db
        for sql in self.before_commit:
            db.execute(sql)
        db.execute("COMMIT")
        if self.replica is not None:
            self.replica.wrote()

    async def execute(self, sql: str, params: list[Any] | dict[str, Any]) -> ResultSet:
        try:
            with self._app_call():
                if self.before_commit and not self.in_transaction and _may_write(sql):
                    done: ResultSet = self._atomic(lambda: self._run(sql, params))
                    return done
                return self._run(sql, params)
        finally:
            self._flush()

    async def executemany(self, sql: str, seq: list[list[Any] | dict[str, Any]]) -> ResultSet:
        def work() -> ResultSet:
            db = self.db
            if not has_statement(sql):
                raise _no_statement()
            before = db.total_changes
            total = 0
            columns: tuple[str, ...] = ()
            for n, params in enumerate(seq):
                try:
                    cur = db.execute(sql, params)
                    cur.fetchall()
                except sqlite3.Error as e:
                    raise translate_error(e, f"row {n} of executemany: ") from None
                if cur.description:
                    columns = tuple(d[0] for d in cur.description)
                if cur.rowcount > 0:
                    total += cur.rowcount
            if db.total_changes != before:
                self._wrote(sql)
            rowid = db.execute("SELECT last_insert_rowid()").fetchone()[0]
            return ResultSet(columns, [], total, rowid if db.total_changes != before else None)

        try:
            with self._app_call():
                return self._atomic(work)  # type: ignore[no-any-return]
        finally:
            self._flush()

    async def batch(self, statements: list[Statement]) -> list[ResultSet]:
        def work() -> list[ResultSet]:
            out = []
            for n, (sql, params) in enumerate(statements):
                try:
                    out.append(self._run(sql, params))
                except Error as e:
                    raise type(e)(
                        f"statement {n} of the batch failed, nothing was applied: {e}",
                        sqlite_errorcode=e.sqlite_errorcode,
                        sqlite_errorname=e.sqlite_errorname,
                    ) from None
            return out

        try:
            with self._app_call():
                return self._atomic(work)  # type: ignore[no-any-return]
        finally:
            self._flush()

    async def script(self, sql: str) -> None:
        def work() -> None:
            for stmt in split_statements(sql):
                self._run(stmt, [])

        try:
            with self._app_call():
                self._atomic(work)
        finally:
            self._flush()

    async def tx(self, action: str, name: str = "", mode: str = "") -> None:
        db = self.db
        try:
            if action == "begin":
                db.execute(f"BEGIN {mode.upper()}")
            elif action == "commit":
                self._commit()
            elif action == "rollback":
                db.execute("ROLLBACK")
                self._dirty.clear()
            elif action == "savepoint":
                db.execute(f'SAVEPOINT "{name}"')
            elif action == "release":
                db.execute(f'RELEASE "{name}"')
            elif action == "rollback_to":
                db.execute(f'ROLLBACK TO "{name}"')
            else:
                raise ProgrammingError(f"unknown transaction action {action!r}")
        except sqlite3.Error as e:
            raise translate_error(e) from None
        finally:
            self._flush()

    # -- cursors (db.iterate) ----------------------------------------------------------

    def _readonly(self, sql: str, params: list[Any] | dict[str, Any]) -> bool:
        if _TX_CONTROL.match(sql):
            return False
        try:
            program = self.db.execute("EXPLAIN " + sql, params).fetchall()
        except sqlite3.Error as e:
            raise translate_error(e) from None
        for row in program:
            opcode = row[1]
            if opcode in _WRITE_OPCODES or (opcode == "Transaction" and row[3]):
                return False
        return True

    async def cursor_open(self, sql: str, params: list[Any] | dict[str, Any], page: int) -> tuple[Any, Page]:
        if not has_statement(sql):
            raise _no_statement()
        if not self._readonly(sql, params):
            # A write runs at once, as execute() runs it (atomic, captured for sync); its rows are paged.
            rs = await self.execute(sql, params)
            rows = iter(rs._raw)
            first = _take(rows, page)
            done = len(first) < page
            return (None if done else rows), Page(
                rs.columns, first, done, rs.rows_affected, rs.last_insert_rowid
            )
        try:
            with self._app_call():
                try:
                    cur = self.db.execute(sql, params)
                    first = cur.fetchmany(page)
                except sqlite3.Error as e:
                    raise translate_error(e) from None
        finally:
            self._flush()
        columns = tuple(d[0] for d in cur.description) if cur.description else ()
        done = len(first) < page
        if done:
            cur.close()
        return (None if done else cur), Page(columns, first, done)

    async def cursor_next(self, handle: Any, page: int) -> Page:
        if not isinstance(handle, sqlite3.Cursor):
            rows = _take(handle, page)
            return Page((), rows, len(rows) < page)
        try:
            with self._app_call():
                try:
                    rows = handle.fetchmany(page)
                except sqlite3.Error as e:
                    handle.close()
                    raise translate_error(e) from None
        finally:
            self._flush()
        done = len(rows) < page
        if done:
            handle.close()
        return Page((), rows, done)

    async def cursor_close(self, handle: Any) -> None:
        self.cursor_discard(handle)

    def cursor_discard(self, handle: Any) -> None:
        if isinstance(handle, sqlite3.Cursor) and self._db is not None:
            handle.close()

    async def sync(self) -> Any:
        return await self._sync_replica().sync()

    async def sync_status(self) -> Any:
        return self._sync_replica().status()

    def _sync_replica(self) -> Any:
        if self.replica is None:
            raise ProgrammingError(
                "this database does not sync: connect with sync_url=... to sync with a primary"
            )
        return self.replica

    async def close(self) -> None:
        if self.replica is not None:
            await self.replica.close()
        if self._db is not None:
            db, self._db = self._db, None
            if db.in_transaction:
                db.execute("ROLLBACK")
            db.close()
        if self._idle is not None:
            self._idle.set()


def _take(rows: Iterator[Any], n: int) -> list[Any]:
    out = []
    for row in rows:
        out.append(row)
        if len(out) == n:
            break
    return out


def _may_write(sql: str) -> bool:
    head = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
    return head not in ("SELECT", "PRAGMA", "EXPLAIN", "VALUES")


async def open_native_backend(path: str, **options: Any) -> NativeBackend:
    """Open ``path`` with the stdlib's sqlite3 (``":memory:"`` for a throwaway database).

    With ``sync_url`` the database becomes a replica of that primary: its
    schema comes from the primary, and writes sync in the background every
    ``sync_interval`` seconds and soon after each write (``None``: only on
    ``await db.sync()``). ``auth`` is the app's token provider: a function (or
    coroutine function) giving the user's current token, asked at start and
    again when the primary refuses a token (``auth_token`` is a fixed one).
    ``transport`` replaces the HTTP client (tests use it to inject faults).
    """
    known = {
        "schema",
        "sync_url",
        "auth_token",
        "auth",
        "sync_interval",
        "transport",
        "durability",
        "statement_timeout",
    }
    unknown = set(options) - known
    if unknown:
        raise ProgrammingError(f"connect() got unknown options {sorted(unknown)}")
    backend = NativeBackend(path, options.get("durability", "normal"), options.get("statement_timeout"))
    sync_url = options.get("sync_url")
    if sync_url:
        from .sync.replica import NativeReplica

        replica = NativeReplica(
            backend.db,
            sync_url,
            auth_token=options.get("auth_token"),
            transport=options.get("transport"),
            interval=options.get("sync_interval", 30.0),
            on_change=backend.emit,
            when_idle=backend.when_idle,
            auth=options.get("auth"),
        )
        try:
            await replica.start()
        except BaseException:
            await backend.close()
            raise
        backend.replica = replica
        backend.before_commit = replica.txend_sql
    return backend
