"""edgesql: a local-first relational database for Python web apps.

In the browser (Pyodide, PyScript) the database is SQLite-Wasm persisted in
OPFS, owned by a Web Worker; on CPython it is the stdlib's sqlite3. The API
is the same, async, shaped like the libSQL SDK and PEP 249::

    import edgesql

    async with edgesql.connect("app.db") as db:
        await db.execute("CREATE TABLE IF NOT EXISTS notes (id TEXT PRIMARY KEY, body TEXT)")
        await db.execute("INSERT INTO notes VALUES (?, ?)", ("n1", "hello"))
        rs = await db.execute("SELECT id, body FROM notes")
        for row in rs.rows:
            print(row["id"], row[1])
        async for row in db.iterate("SELECT id, body FROM notes"):   # big results, page by page
            print(row["body"])
"""

from ._connection import Connection, connect
from ._cursor import Cursor
from ._exceptions import (
    DatabaseError,
    DataError,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    Warning,  # noqa: A004 - PEP 249 requires this name
)
from ._result import ResultSet, Row
from ._transaction import Transaction
from .sync.status import SyncError, SyncProgress, SyncResult, SyncStatus

__version__ = "0.1.0"

# PEP 249 module globals
apilevel = "2.0"
threadsafety = 1
paramstyle = "qmark"

__all__ = [
    "Connection",
    "Cursor",
    "DataError",
    "DatabaseError",
    "Error",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "NotSupportedError",
    "OperationalError",
    "ProgrammingError",
    "ResultSet",
    "Row",
    "SyncError",
    "SyncProgress",
    "SyncResult",
    "SyncStatus",
    "Transaction",
    "Warning",
    "apilevel",
    "connect",
    "paramstyle",
    "threadsafety",
]
