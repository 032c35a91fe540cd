"""Native CPython ``sqlite3`` on disk: the contender a desktop Python developer already has.

Runs in the benchmark process itself (CPython on the host, the stdlib's
SQLite), on a file in /var/tmp (ext4 on this machine, not tmpfs), with the
tables and statements of bench/shapes.py and the same keys and parameters
the page uses. The connection is set up the way edgesql's own CPython
backend sets it up: autocommit, ``journal_mode = WAL``, ``synchronous``
NORMAL (or FULL for the FULL write run). The timed loops are
bench/sqlite_ops.py's, which also time Pyodide's ``sqlite3`` in the page;
each call is timed with ``time.perf_counter_ns()`` (tens of nanoseconds on Linux).
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from .config import Config
from .shapes import sqlite_spec
from .sqlite_ops import fill, measure

__all__ = ["NativeDb"]


class NativeDb:
    """One on-disk database file for the whole run; a fresh connection per measured load."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="edgesql-bench-native-", dir="/var/tmp")
        self.path = Path(self._dir.name) / "bench.db"

    def close(self) -> None:
        self._dir.cleanup()

    def connect(self, synchronous: str = "NORMAL") -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        return conn

    def prepare(self, cfg: Config) -> None:
        """Create and fill the point and range tables (once per run)."""
        conn = self.connect()
        try:
            fill(conn, sqlite_spec(cfg, 0, write_full=True))
        finally:
            conn.close()

    def measure(self, cfg: Config, load: int) -> dict[str, Any]:
        """Every operation once, as the page runs it (bench/sqlite_ops.py): per-call µs, and totals."""
        conn = self.connect()
        try:
            return measure(conn, sqlite_spec(cfg, load, write_full=True))
        finally:
            conn.close()
