"""The embedded primary: the app's data in one SQLite file under ``--data``.

It runs the same generated SQL as Cloudflare D1 (serversql.py) on SQLite
3.54 through apsw — the engine the browser runs, with no custom functions
registered, so whatever works here is what D1 is asked to do. Each push is
applied in one transaction: check, insert, pull, all or nothing. A change
that breaks a constraint of the app's tables (NOT NULL, CHECK, a STRICT
type) is found by splitting the page in halves until only it is left; it is
rejected with SQLite's message and the rest of the page is applied.

The file is in WAL mode (synchronous=NORMAL). Copying the WAL back into the
database (a checkpoint) happens on a thread of its own (:class:`_Checkpointer`),
not inside the request whose commit crossed the threshold, as SQLite's
autocheckpoint would: a push of 5,000 changes writes about 800 WAL pages,
and the checkpoint after it cost that request 10-20 ms.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import apsw

from ..sync.protocol import PULL_PAGE_BYTES, ProtocolError, SyncRequest
from ..sync.schema import Migration, Schema, analyze
from ..sync.serversql import CHECK, PULL, PUSH, SERVER_HLC, schema_document, server_setup

__all__ = ["Primary"]

log = logging.getLogger("edgesql.primary")

#: WAL pages after which the WAL is copied into the database (SQLite's own autocheckpoint default).
CHECKPOINT_PAGES = 1000
#: WAL pages after which the committing request checkpoints itself, as SQLite would: the
#: checkpointer thread has fallen behind (a reader holds the WAL, or the disk is slow).
CHECKPOINT_BEHIND_PAGES = 4 * CHECKPOINT_PAGES


@dataclass
class PushResult:
    """What one /sync request did."""

    body: str
    pushed: int
    pulled: int


class Primary:
    """The primary database: schema owner, change log, merged app tables."""

    def __init__(self, path: Path | str, migrations: tuple[Migration, ...]) -> None:
        self.path = str(path)
        self._db = apsw.Connection(self.path)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.execute("PRAGMA busy_timeout = 5000")
        # One writer at a time: apsw connections are not for concurrent use.
        self._lock = threading.Lock()
        # Replaces SQLite's autocheckpoint (a WAL hook turns it off).
        self._checkpointer = _Checkpointer(self.path)
        self._db.set_wal_hook(self._checkpointer.committed)
        self.schema = self._migrate(migrations)
        self.schema_doc = schema_document(self.schema)

    def _migrate(self, migrations: tuple[Migration, ...]) -> Schema:
        # Check the whole schema on a scratch database first, so a migration the
        # sync model refuses never reaches the real file half applied.
        scratch = apsw.Connection(":memory:")
        for m in migrations:
            scratch.execute(m.sql)
        analyze(scratch, len(migrations), migrations)  # raises SchemaError, saying why
        scratch.close()

        db = self._db
        db.execute(
            "CREATE TABLE IF NOT EXISTS _edgesql_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
            "sql TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))"
        )
        applied = {v: (n, s) for v, n, s in db.execute("SELECT version, name, sql FROM _edgesql_migrations")}
        if len(applied) > len(migrations):
            raise SystemExit(
                f"{self.path} is at schema version {max(applied)}, ahead of the {len(migrations)} migrations given"
            )
        for m in migrations:
            if m.version in applied and applied[m.version][1] != m.sql:
                raise SystemExit(
                    f"migration {m.version} ({m.name}) differs from the one applied to {self.path}; "
                    "migrations are append-only: add a new NNNN_name.sql instead of editing an applied one"
                )
        pending = [m for m in migrations if m.version not in applied]
        if pending:
            # The apply triggers name the app's tables and columns: drop them before
            # a migration changes those, or the migration could fail on them.
            with db:
                for name in self._apply_triggers():
                    db.execute(f'DROP TRIGGER "{name}"')
        for m in pending:
            with db:
                db.execute(m.sql)
                db.execute(
                    "INSERT INTO _edgesql_migrations (version, name, sql) VALUES (?, ?, ?)",
                    (m.version, m.name, m.sql),
                )
        schema = analyze(db, len(migrations), migrations)
        with db:
            for sql in server_setup(schema, self._apply_triggers()):
                db.execute(sql)
        return schema

    def _apply_triggers(self) -> list[str]:
        return [
            r[0]
            for r in self._db.execute(
                "SELECT name FROM sqlite_schema WHERE type = 'trigger' AND name LIKE '\\_edgesql\\_apply\\_%' ESCAPE '\\'"
            )
        ]

    def close(self) -> None:
        """Close the database file (the last connection to close checkpoints the WAL)."""
        self._checkpointer.close()
        with self._lock:
            self._db.close()

    # -- /sync --------------------------------------------------------------------------

    def sync(self, req: SyncRequest) -> PushResult:
        """Apply a push and answer with the next pull page, atomically."""
        if req.schema > self.schema.version:
            raise ProtocolError(
                409,
                "schema_ahead",
                f"this replica is at schema version {req.schema}, the primary at {self.schema.version}: "
                "the primary was rolled back; restore its migrations",
            )
        with self._lock:
            db = self._db
            with db:  # one transaction: all of this request or none of it
                rejected = json.loads(_one(db, CHECK, (req.page, req.replica)))
                if any(r["code"] == "replica_conflict" for r in rejected):
                    raise ProtocolError(
                        409,
                        "replica_conflict",
                        "another copy of this database already pushed different changes under this replica id "
                        "(a restored backup or a copied file): take a new replica id and push again",
                    )
                skip = [r["seq"] for r in rejected]
                rejected += req.too_large
                rejected += self._push(req.changes, req.replica, req.page, skip)
                acked = max((c[0] for c in req.changes if type(c[0]) is int), default=0)
                acked = max([acked, *(r["seq"] for r in req.too_large if type(r["seq"]) is int)])
                out_page, cursor, n, remaining = db.execute(
                    PULL, (req.cursor, req.replica, req.limit, PULL_PAGE_BYTES)
                ).fetchone()
                server_hlc = _one(db, SERVER_HLC, ())
        body = (
            f'{{"v":1,"acked":{acked},"rejected":{json.dumps(rejected, separators=(",", ":"))},'
            f'"changes":{out_page},"cursor":{cursor},"more":{"true" if remaining else "false"},'
            f'"remaining":{remaining},"server_hlc":"{server_hlc}","schema":{self.schema.version}}}'
        )
        return PushResult(body, len(req.changes) - len(rejected), n)

    def _push(
        self, changes: list[list[Any]], replica: str, page: str | None = None, skip: list[int] | None = None
    ) -> list[dict[str, Any]]:
        """Insert changes but those whose seq is in ``skip``; a change that breaks a table's
        constraint is rejected alone.

        ``page`` is ``changes`` as JSON when the caller has it (parse_request encoded it
        once); halves of a page that failed are encoded here.
        """
        if skip:
            left_out = set(skip)
            changes = [c for c in changes if c[0] not in left_out]
        if not changes:
            return []
        db = self._db
        if page is None:
            page, skip = json.dumps(changes, separators=(",", ":"), ensure_ascii=False), None
        try:
            with db:  # a savepoint inside the request's transaction
                db.execute(PUSH, (page, replica, json.dumps(skip or [])))
            return []
        except (apsw.ConstraintError, apsw.TooBigError, apsw.MismatchError) as e:
            if len(changes) == 1:
                return [
                    {
                        "seq": changes[0][0],
                        "code": "constraint",
                        "reason": str(e).removeprefix("ConstraintError: "),
                    }
                ]
        mid = len(changes) // 2
        return self._push(changes[:mid], replica) + self._push(changes[mid:], replica)

    # -- inspection (tests, the console) ------------------------------------------------

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run a read-only query on the primary's data."""
        with self._lock:
            return [tuple(r) for r in self._db.execute(sql, params)]


class _Checkpointer:
    """Checkpoints the WAL on its own thread and connection once it holds :data:`CHECKPOINT_PAGES`.

    PASSIVE checkpoints: they never wait for the request being applied (in WAL
    mode a checkpoint and a writer run side by side), and what they leave is
    copied the next time. Durability is unchanged: a commit is in the WAL either way.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def committed(self, db: apsw.Connection, name: str, pages: int) -> int:
        """The WAL hook: called after each commit with the WAL's size in pages."""
        if pages >= CHECKPOINT_BEHIND_PAGES:
            db.wal_checkpoint(name)  # as SQLite's autocheckpoint: in the request
        elif pages >= CHECKPOINT_PAGES and not self._stopping:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="edgesql-checkpoint", daemon=True)
                self._thread.start()
            self._wake.set()
        return apsw.SQLITE_OK

    def _run(self) -> None:
        db = apsw.Connection(self._path)
        # A connection opens the file on its first statement: until then it does not know
        # the database is in WAL mode, and a checkpoint does nothing.
        db.execute("PRAGMA journal_mode").fetchall()
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stopping:
                    return
                try:
                    db.wal_checkpoint()
                except apsw.BusyError:
                    pass  # another checkpoint is running (the request's own): this one can wait
                except apsw.Error:
                    # The next commit over the threshold tries again; past CHECKPOINT_BEHIND_PAGES
                    # the requests checkpoint themselves, so the WAL cannot grow without bound.
                    log.warning("edgesql: checkpoint of %s failed", self._path, exc_info=True)
        finally:
            db.close()

    def close(self) -> None:
        """Stop the thread (after the checkpoint it may be running)."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()


def _one(db: apsw.Connection, sql: str, params: tuple[Any, ...]) -> Any:
    row = db.execute(sql, params).fetchone()
    return row[0] if row else None
