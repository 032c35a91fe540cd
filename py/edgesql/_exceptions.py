"""The exception tree of edgesql, PEP 249's names under one root.

::

    Exception
     ├── Warning
     └── Error                      edgesql.Error: catch this to catch everything
          ├── InterfaceError        the API was used wrongly (a closed database, ...)
          └── DatabaseError         the database refused or failed
               ├── DataError        a value out of range or too large
               ├── OperationalError SQL errors, locks, I/O, sync failures
               ├── IntegrityError   a constraint failed
               ├── InternalError    SQLite reports an internal error
               ├── ProgrammingError wrong SQL use: bad parameters, schema refused
               └── NotSupportedError

Every error carries ``sqlite_errorcode`` and ``sqlite_errorname`` like the
stdlib's :mod:`sqlite3` (``None`` when SQLite was not involved). Errors that
cross postMessage travel as data ``{code, name, message, kind}`` and are turned
back into the right class by :func:`error_from_data`.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "DataError",
    "DatabaseError",
    "Error",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "NotSupportedError",
    "OperationalError",
    "ProgrammingError",
    "Warning",
    "error_for_code",
    "error_from_data",
    "interrupted_message",
]


class Warning(Exception):  # noqa: A001, N818 - PEP 249 requires this name
    """An important warning, e.g. data truncated (PEP 249)."""


class Error(Exception):
    """The base class of every edgesql error."""

    def __init__(
        self,
        message: str,
        *,
        sqlite_errorcode: int | None = None,
        sqlite_errorname: str | None = None,
    ) -> None:
        super().__init__(message)
        self.sqlite_errorcode = sqlite_errorcode
        self.sqlite_errorname = sqlite_errorname


class InterfaceError(Error):
    """The API was used in a way it does not support."""


class DatabaseError(Error):
    """The database reported an error."""


class DataError(DatabaseError):
    """A value is out of range or too large for SQLite."""


class OperationalError(DatabaseError):
    """SQL could not run: syntax, missing table, locked, I/O, sync transport."""


class IntegrityError(DatabaseError):
    """A constraint (PRIMARY KEY, UNIQUE, NOT NULL, CHECK, FOREIGN KEY) failed."""


class InternalError(DatabaseError):
    """SQLite reported an internal inconsistency."""


class ProgrammingError(DatabaseError):
    """The program used SQL wrongly: bad parameters, closed cursor, refused schema."""


class NotSupportedError(DatabaseError):
    """The operation is not supported by this backend."""


# Primary result codes (the low byte of an extended code), as in sqlite3.h.
SQLITE_ERROR = 1
SQLITE_INTERNAL = 2
SQLITE_INTERRUPT = 9
SQLITE_NOMEM = 7
SQLITE_CORRUPT = 11
SQLITE_NOTFOUND = 12
SQLITE_TOOBIG = 18
SQLITE_CONSTRAINT = 19
SQLITE_MISMATCH = 20
SQLITE_MISUSE = 21
SQLITE_RANGE = 25
SQLITE_NOTADB = 26

_BY_PRIMARY_CODE: dict[int, type[Error]] = {
    SQLITE_INTERNAL: InternalError,
    SQLITE_NOTFOUND: InternalError,
    SQLITE_CORRUPT: DatabaseError,
    SQLITE_NOTADB: DatabaseError,
    SQLITE_TOOBIG: DataError,
    SQLITE_CONSTRAINT: IntegrityError,
    SQLITE_MISMATCH: IntegrityError,
    SQLITE_MISUSE: ProgrammingError,
    SQLITE_RANGE: ProgrammingError,
}

_BY_KIND: dict[str, type[Error]] = {
    cls.__name__: cls
    for cls in (
        Error,
        InterfaceError,
        DatabaseError,
        DataError,
        OperationalError,
        IntegrityError,
        InternalError,
        ProgrammingError,
        NotSupportedError,
    )
}


def interrupted_message(why: str, timeout: float | None, *, started: bool, lost_tx: bool) -> str:
    """What an interrupted call says, on every backend (SQLITE_INTERRUPT).

    ``why`` is ``"interrupt"`` (``db.interrupt()``) or ``"timeout"``
    (``statement_timeout``); ``started`` whether the statement had begun (a
    call that waited too long for a busy database never runs); ``lost_tx``
    whether SQLite rolled the open transaction back with it, which it does
    whenever it interrupts a write inside a transaction.
    """
    if why == "timeout":
        limit = f"statement_timeout ({timeout:g} s)" if timeout is not None else "statement_timeout"
        text = f"interrupted: this call ran into {limit}"
        if not started:
            text += (
                " before it could start, because the database was busy with another connection's "
                "work (a long statement or an open transaction, maybe in another tab); it did not run. "
                "Try again, or raise statement_timeout in edgesql.connect()"
            )
            return text
        advice = "make the query cheaper, or raise statement_timeout in edgesql.connect()"
    else:
        text = "interrupted: db.interrupt() stopped this call"
        advice = ""
    if lost_tx:
        text += (
            "; SQLite rolled back this connection's open transaction with it, as it does whenever "
            "it interrupts a write inside a transaction: run the transaction again"
        )
    else:
        text += "; nothing else was undone, and the connection is ready for the next call"
    return f"{text}. To avoid it: {advice}" if advice else text


def error_for_code(code: int | None) -> type[Error]:
    """The exception class the stdlib's sqlite3 would raise for ``code``."""
    if code is None:
        return OperationalError
    return _BY_PRIMARY_CODE.get(code & 0xFF, OperationalError)


def error_from_data(data: dict[str, Any]) -> Error:
    """Rebuild an exception sent as data by the worker or a primary."""
    code = data.get("code")
    kind = data.get("kind")
    if kind == "SyncError":
        from .sync.status import SyncError

        return SyncError(
            str(data.get("message", "sync failed")),
            code=data.get("sync_code") or "sync_failed",
            status=data.get("status"),
            retry_after=data.get("retry_after"),
        )
    cls = _BY_KIND.get(kind, error_for_code(code)) if kind else error_for_code(code)
    return cls(
        str(data.get("message", "unknown error")),
        sqlite_errorcode=code,
        sqlite_errorname=data.get("name"),
    )
