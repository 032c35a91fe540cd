"""Interactive transactions as async context managers.

The outermost ``async with db.transaction()`` opens a real transaction
(``BEGIN``); one nested inside it opens a SAVEPOINT, so an inner block can
fail and roll back alone while the outer one carries on::

    async with db.transaction() as tx:
        await tx.execute("INSERT INTO t VALUES (1)")
        try:
            async with db.transaction():
                await db.execute("INSERT INTO t VALUES (2)")
                raise ValueError
        except ValueError:
            pass                                  # row 2 is gone, row 1 stays
    # committed here
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._exceptions import OperationalError, ProgrammingError
from ._params import Params

if TYPE_CHECKING:
    from ._connection import Connection
    from ._result import ResultSet

__all__ = ["Transaction"]

_MODES = ("deferred", "immediate", "exclusive")


class Transaction:
    """One level of an interactive transaction on a :class:`Connection`."""

    def __init__(self, conn: Connection, mode: str = "deferred") -> None:
        if mode.lower() not in _MODES:
            raise ProgrammingError(f"transaction mode must be one of {', '.join(_MODES)}, not {mode!r}")
        self._conn = conn
        self._mode = mode.lower()
        self._savepoint = ""
        self._active = False

    @property
    def active(self) -> bool:
        """True between entering the block and its commit or rollback."""
        return self._active

    async def __aenter__(self) -> Transaction:
        conn = self._conn
        conn._check_open()
        if self._active:
            raise ProgrammingError("this transaction is already open; create a new one")
        if conn._tx_depth == 0:
            await conn._backend.tx("begin", mode=self._mode)
            conn._tx_task = asyncio.current_task()
        else:
            self._savepoint = f"edgesql_sp{conn._tx_depth}"
            await conn._backend.tx("savepoint", name=self._savepoint)
        conn._tx_depth += 1
        self._active = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._active:
            return  # finished early by commit() or rollback()
        if self._conn.closed:
            self._active = False
            if exc_type is None:
                raise ProgrammingError(
                    "the connection was closed inside the transaction, so its changes were "
                    "rolled back; close it after the `async with` block",
                    sqlite_errorcode=21,
                    sqlite_errorname="SQLITE_MISUSE",
                )
            return
        if exc_type is None:
            await self.commit()
        else:
            # The block failed: undo its work and let the exception propagate.
            await self.rollback()

    async def commit(self) -> None:
        """Commit now (release the savepoint when nested); the block then ends."""
        self._finish()
        conn = self._conn
        if not conn._backend.in_transaction:
            raise OperationalError(
                "the transaction had already been rolled back (an error ended it, or the tab holding "
                "the database closed), so nothing was committed: run it again",
                sqlite_errorcode=4,
                sqlite_errorname="SQLITE_ABORT",
            )
        if self._savepoint:
            await conn._backend.tx("release", name=self._savepoint)
            return
        try:
            await conn._backend.tx("commit")
        except BaseException:
            # COMMIT can fail (a deferred constraint, I/O); SQLite may leave the
            # transaction open, and nothing may stay half-committed: roll back.
            if conn._backend.in_transaction:
                await conn._backend.tx("rollback")
            raise

    async def rollback(self) -> None:
        """Undo everything done in this block (only this savepoint when nested)."""
        self._finish()
        conn = self._conn
        if conn.closed:
            return  # close() already rolled the whole transaction back
        if not conn._backend.in_transaction:
            # The whole transaction is already gone (SQLite rolled it back after
            # an error, or the tab holding the database closed): nothing to undo.
            return
        if self._savepoint:
            # ROLLBACK TO keeps the savepoint on the stack; RELEASE pops it.
            await conn._backend.tx("rollback_to", name=self._savepoint)
            await conn._backend.tx("release", name=self._savepoint)
        else:
            await conn._backend.tx("rollback")

    def _finish(self) -> None:
        if not self._active:
            raise ProgrammingError("this transaction has already been committed or rolled back")
        self._active = False
        self._conn._tx_depth -= 1
        if self._conn._tx_depth == 0:
            self._conn._tx_task = None

    async def execute(self, sql: str, params: Params | None = None) -> ResultSet:
        """Run one statement inside this transaction."""
        return await self._conn.execute(sql, params)

    async def executemany(self, sql: str, seq_of_params: Any) -> ResultSet:
        """Run one statement per parameter set inside this transaction."""
        return await self._conn.executemany(sql, seq_of_params)

    async def batch(self, statements: Any) -> list[ResultSet]:
        """Run statements atomically inside this transaction."""
        return await self._conn.batch(statements)
