"""The narrow interface every place SQL runs in implements.

Two backends exist: :mod:`edgesql._native` (CPython's sqlite3, in process)
and :mod:`edgesql._browser` (SQLite-Wasm on OPFS in a Web Worker, reached
from Pyodide). :class:`~edgesql.Connection` holds the API users see and
talks to a backend only through this protocol.

Error contract, for every method: a failure raises a subclass of
:class:`edgesql.Error` carrying SQLite's result code, and leaves the database
as it was before the call (a failed ``batch``/``executemany``/``script``
changes nothing; a failed statement inside an interactive transaction leaves
the transaction open, as SQLite does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ._result import ResultSet

__all__ = ["Backend", "BackendInfo", "Statement"]

Statement = tuple[str, list[Any] | dict[str, Any]]


@dataclass(frozen=True)
class BackendInfo:
    """Where a database lives.

    ``storage`` is ``"opfs-sahpool"`` (browser, persistent), ``"memory"``
    (nothing survives a reload) or ``"file"``/``"memory"`` on CPython.
    ``warning`` says why storage is not what was asked for, if it is not.
    """

    backend: str
    storage: str
    path: str
    persistent: bool
    sqlite_version: str
    warning: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Backend(Protocol):
    """One open database connection."""

    info: BackendInfo
    #: Whether statement values must arrive tagged for the worker's wire
    #: (``_wire.tag_values``): the check that walks every value tags them in
    #: the same pass. Only the browser backend says True.
    wire_tags: bool

    @property
    def in_transaction(self) -> bool:
        """True while an explicit transaction is open on this connection."""
        ...

    async def execute(self, sql: str, params: list[Any] | dict[str, Any]) -> ResultSet:
        """Run one statement and return its result."""
        ...

    async def executemany(self, sql: str, seq: list[list[Any] | dict[str, Any]]) -> ResultSet:
        """Run one statement once per parameter set, atomically; ``rows_affected`` sums."""
        ...

    async def batch(self, statements: list[Statement]) -> list[ResultSet]:
        """Run statements atomically (all or nothing) and return each result."""
        ...

    async def script(self, sql: str) -> None:
        """Run several ``;``-separated statements without parameters, atomically."""
        ...

    async def tx(self, action: str, name: str = "", mode: str = "") -> None:
        """Transaction control: begin, commit, rollback, savepoint, release, rollback_to."""
        ...

    async def close(self) -> None:
        """Close; an open transaction is rolled back. Idempotent."""
        ...
