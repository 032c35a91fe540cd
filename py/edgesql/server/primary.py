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
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import apsw

from ..sync.accesssql import FORBIDDEN, access_statements, refresh_buckets
from ..sync.buckets import Access, check_access
from ..sync.protocol import (
    PROTOCOL_VERSION,
    PULL_PAGE_BYTES,
    REPLICA_CONFLICT,
    ProtocolError,
    Snapshot,
    SyncRequest,
    check_replica,
    check_schema,
    check_user,
    snapshot_json,
)
from ..sync.schema import Migration, Schema, analyze
from ..sync.serversql import (
    CHECK,
    LOG_END,
    PULL,
    PULL_SCAN_ROWS,
    PUSH,
    REGISTER,
    REPLICA,
    SERVER_HLC,
    SNAPSHOT,
    refresh_after_migration,
    schema_document,
    server_setup,
)

__all__ = ["Primary"]

log = logging.getLogger("edgesql.primary")

#: WAL pages after which the WAL is copied into the database (SQLite's own autocheckpoint default).
CHECKPOINT_PAGES = 1000
#: WAL pages after which the committing request checkpoints itself, as SQLite would: the
#: checkpointer thread has fallen behind (a reader holds the WAL, or the disk is slow).
CHECKPOINT_BEHIND_PAGES = 4 * CHECKPOINT_PAGES


#: Statements one request may spend on its push, splitting included: a page whose
#: changes all break a constraint needs about two per change, and holds the primary
#: meanwhile. What is not settled within it is acknowledged no further; the replica
#: sends it again (D1's Worker has the same rule, with D1's own query budget).
MAX_PUSH_STATEMENTS = 256


class _Budget:
    def __init__(self, n: int) -> None:
        self.left = n

    def take(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        return True


@dataclass
class Pulled:
    """The pull half of an answer: the page (JSON), the cursor after it, its size, the
    estimate of what remains, whether more waits, and the ``"snapshot":...,`` field or ''."""

    page: str
    cursor: int
    n: int
    remaining: int
    more: bool
    snapshot: str


@dataclass
class PushResult:
    """What one /sync request did."""

    body: str
    pushed: int
    pulled: int


class Primary:
    """The primary database: schema owner, change log, merged app tables."""

    def __init__(
        self, path: Path | str, migrations: tuple[Migration, ...], access: Access | None = None
    ) -> None:
        self.path = str(path)
        self._db = apsw.Connection(self.path)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.execute("PRAGMA busy_timeout = 5000")
        # FOREIGN KEYs of synced tables are kept here, in the primary's one order (D1 keeps them too).
        self._db.execute("PRAGMA foreign_keys = ON")
        # One writer at a time: apsw connections are not for concurrent use.
        self._lock = threading.Lock()
        # Replaces SQLite's autocheckpoint (a WAL hook turns it off).
        self._checkpointer = _Checkpointer(self.path)
        self._db.set_wal_hook(self._checkpointer.committed)
        self.schema = self._migrate(migrations, access)
        self.schema_doc = schema_document(self.schema)
        # The statements of access rules (accesssql), or None: one shared database.
        self._access = access_statements(self.schema) if access is not None else None
        #: The change log's last seq, and who wants to hear when it grows (the change
        #: stream, stream.py): each is called with the new end, outside the lock, on the
        #: thread that applied the push; it must not block.
        self.log_end: int = _one(self._db, LOG_END, ())
        self.on_log_end: list[Callable[[int], None]] = []

    def _migrate(self, migrations: tuple[Migration, ...], access: Access | None) -> Schema:
        # Check the whole schema on a scratch database first, so a migration the
        # sync model refuses never reaches the real file half applied.
        scratch = apsw.Connection(":memory:")
        for m in migrations:
            scratch.execute(m.sql)
        checked = analyze(scratch, len(migrations), migrations)  # raises SchemaError, saying why
        if access is not None:
            check_access(scratch, [t.name for t in checked.tables], access)
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
        # One transaction: a primary killed half way through starts again from before
        # the first pending migration, never with migrated tables and a stale clock.
        with db:
            if pending:
                # The apply triggers name the app's tables and columns: drop them before
                # a migration changes those, or the migration could fail on them.
                for name in self._apply_triggers():
                    db.execute(f'DROP TRIGGER "{name}"')
            for m in pending:
                db.execute(m.sql)
                db.execute(
                    "INSERT INTO _edgesql_migrations (version, name, sql) VALUES (?, ?, ?)",
                    (m.version, m.name, m.sql),
                )
            schema = replace(analyze(db, len(migrations), migrations), access=access)
            rules = _rules_digest(db)
            for sql in server_setup(schema, self._apply_triggers()):
                db.execute(sql)
            digest = access.digest if access is not None else None
            if pending or rules != digest:
                # The clock must hold what the migrated tables hold, and each row's bucket
                # follow the rules; replicas then start again from a snapshot of it
                # (serversql.refresh_after_migration, accesssql.refresh_buckets).
                for sql in refresh_after_migration(schema):
                    db.execute(sql)
                if access is not None:
                    for sql in refresh_buckets(schema):
                        db.execute(sql)
                db.execute("INSERT OR REPLACE INTO _edgesql_rules (id, digest) VALUES (1, ?)", (digest,))
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

    def sync(self, req: SyncRequest, user: str | None = None) -> PushResult:
        """Apply a push and answer with the next pull page, atomically.

        ``user`` is who the request comes from (a token's ``sub``); a schema with access
        rules needs one, and answers only with what that user may read.
        """
        check_schema(req.schema, self.schema.version)
        access = self._access
        with self._lock:
            db = self._db
            with db:  # one transaction: all of this request or none of it
                key_hash, high, horizon = _row(db.execute(REPLICA, (req.replica,)))
                check_replica(req, key_hash, high)
                read = write = "[]"
                if access is not None:
                    bound = _one(db, access["replica_user"], (req.replica,))
                    check_user(user, bound)
                    read, write = _row(db.execute(access["user_buckets"], (user,)))
                    db.execute(access["bind_user"], (req.replica, user))
                db.execute(REGISTER, (req.replica, req.key_hash))
                rejected = json.loads(_one(db, CHECK, (req.page, req.replica)))
                if any(r["code"] == "replica_conflict" for r in rejected):
                    raise ProtocolError(409, "replica_conflict", REPLICA_CONFLICT)
                skip = [r["seq"] for r in rejected]
                rejected += req.too_large
                kept = [c for c in req.changes if c[0] not in set(skip)] if skip else req.changes
                budget = _Budget(MAX_PUSH_STATEMENTS)
                if access is not None:
                    db.execute(access["session_start"], (user, write))
                refused, handled = self._push(kept, req, req.page, skip, budget)
                owned = ""
                if access is not None:
                    db.execute(access["session_end"])
                    if req.changes:
                        owned = f'"buckets":{_one(db, access["acked_buckets"], (req.replica, req.page))},'
                rejected += refused
                acked = max((c[0] for c in req.changes if type(c[0]) is int), default=0)
                acked = max([acked, *(r["seq"] for r in req.too_large if type(r["seq"]) is int)])
                if handled < len(kept):
                    # Out of budget: acknowledge only what was settled, in page order; the
                    # replica sends the rest again (a replayed change changes nothing).
                    acked = min(acked, kept[handled][0] - 1)
                    rejected = [r for r in rejected if type(r["seq"]) is not int or r["seq"] <= acked]
                pull = self._pull(req, horizon) if access is None else self._pull_access(req, horizon, read)
                server_hlc = _one(db, SERVER_HLC, ())
                end = _one(db, LOG_END, ()) if req.changes else self.log_end
            grew = end > self.log_end
            if grew:
                self.log_end = end
        if grew:
            for listener in self.on_log_end:
                listener(end)
        body = (
            f'{{"v":{PROTOCOL_VERSION},"acked":{acked},"rejected":{json.dumps(rejected, separators=(",", ":"))},'
            f'"changes":{pull.page},"cursor":{pull.cursor},"more":{"true" if pull.more else "false"},'
            f'"remaining":{pull.remaining},{pull.snapshot}{owned}"server_hlc":"{server_hlc}","schema":{self.schema.version}}}'
        )
        return PushResult(body, len(req.changes) - len(rejected), pull.n)

    def _pull(self, req: SyncRequest, horizon: int) -> Pulled:
        """The next page of the log, or of a snapshot of the state (see serversql.SNAPSHOT)."""
        db = self._db
        snap = req.snapshot
        if snap is None and req.cursor < horizon:
            # The log before the horizon holds values from before a migration: start from the state.
            snap = Snapshot(None, "", "")
        if snap is None:
            page, cursor, n, remaining = _row(
                db.execute(PULL, (req.cursor, req.replica, req.limit, PULL_PAGE_BYTES, PULL_SCAN_ROWS))
            )
            return Pulled(page, cursor, n, remaining, bool(remaining), "")
        at = snap.at if snap.at is not None else _one(db, LOG_END, ())
        if req.limit == 0:  # a push only: the snapshot stays where it is
            return Pulled(
                "[]", req.cursor, 0, 1, True, f'"snapshot":{snapshot_json(at, snap.tbl, snap.pk, False)},'
            )
        page, last_tbl, last_pk, n, more = _row(
            db.execute(SNAPSHOT, (snap.tbl, snap.pk, req.limit, PULL_PAGE_BYTES))
        )
        field = snapshot_json(at, last_tbl or snap.tbl, last_pk or snap.pk, not more)
        # Done: the log continues from where the snapshot started.
        return Pulled(page, req.cursor if more else at, n, 1, True, f'"snapshot":{field},')

    def _pull_access(self, req: SyncRequest, horizon: int, read: str) -> Pulled:
        """The pull half with access rules: the user's buckets only (accesssql's plan).

        Buckets the user lost are dropped by the replica (``drop``); buckets gained are
        sent as a snapshot of their rows, before the log goes on; the log pull follows
        the buckets the replica holds.
        """
        db, access = self._db, self._access
        assert access is not None
        lost, pending, gained, live = (
            json.loads(x) for x in _row(db.execute(access["bucket_plan"], (req.replica, read)))
        )
        drop = f'"drop":{json.dumps(lost, ensure_ascii=False, separators=(",", ":"))},' if lost else ""
        if lost:
            db.execute(access["buckets_lost"], (req.replica, json.dumps(lost)))
        snap = req.snapshot
        full = (snap is not None and snap.at is None) or (snap is None and req.cursor < horizon)
        if full:
            # Everything again: after a migration, new rules, or from a replica that asked.
            db.execute(access["buckets_reset"], (req.replica,))
            pending, live = json.loads(read), []
            db.execute(access["buckets_gained"], (req.replica, read))
            snap = Snapshot(None, "", "", "")
        elif not pending and gained:
            db.execute(access["buckets_gained"], (req.replica, json.dumps(gained)))
            pending, snap = gained, Snapshot(None, "", "", "")
        if not pending:
            page, cursor, n, remaining = _row(
                db.execute(
                    access["pull"],
                    (req.cursor, req.replica, req.limit, PULL_PAGE_BYTES, PULL_SCAN_ROWS, json.dumps(live)),
                )
            )
            return Pulled(page, cursor, n, remaining, bool(remaining), drop)
        if snap is None:  # a snapshot under way whose position the request lost: from the start
            snap = Snapshot(None, "", "", "")
        at = snap.at if snap.at is not None else _one(db, LOG_END, ())
        if req.limit == 0:
            field = snapshot_json(at, snap.tbl, snap.pk, False, snap.bucket, full)
            return Pulled("[]", req.cursor, 0, 1, True, f'{drop}"snapshot":{field},')
        page, last_bucket, last_tbl, last_pk, n, more = _row(
            db.execute(
                access["snapshot"],
                (
                    snap.bucket,
                    snap.tbl,
                    snap.pk,
                    req.limit,
                    PULL_PAGE_BYTES,
                    json.dumps(pending, ensure_ascii=False),
                ),
            )
        )
        if not more:
            db.execute(access["buckets_live"], (req.replica,))
        field = snapshot_json(
            at, last_tbl or snap.tbl, last_pk or snap.pk, not more, last_bucket or snap.bucket, full
        )
        # Done: the log goes on from where this snapshot started when it sent everything the
        # replica holds, else from where the replica's log pull stood.
        cursor = req.cursor if more or live else at
        return Pulled(page, cursor, n, 1, True, f'{drop}"snapshot":{field},')

    def _push(
        self,
        changes: list[list[Any]],
        req: SyncRequest,
        page: str | None,
        skip: list[int] | None,
        budget: _Budget,
    ) -> tuple[list[dict[str, Any]], int]:
        """Insert ``changes``; a change that breaks a table's constraint is rejected alone,
        found by splitting the page in halves. ``page`` is the whole request's JSON when the
        caller has it, of which PUSH leaves out the seqs in ``skip`` (CHECK refused them).

        Returns the rejections and how many leading changes were settled (applied or
        rejected): fewer than all when ``budget`` ran out, which bounds the work one
        request can make (a page of 5,000 refused changes would otherwise hold the
        primary for seconds).
        """
        if not changes:
            return [], 0
        if not budget.take():
            return [], 0
        db = self._db
        if page is None:
            page = json.dumps(changes, separators=(",", ":"), ensure_ascii=False)
        try:
            with db:  # a savepoint inside the request's transaction
                db.execute(PUSH, (page, req.replica, json.dumps(skip or []), req.key_hash))
            return [], len(changes)
        except (apsw.ConstraintError, apsw.TooBigError, apsw.MismatchError) as e:
            if len(changes) == 1:
                reason = str(e).removeprefix("ConstraintError: ")
                code = "constraint"
                if reason.startswith(FORBIDDEN):  # an apply trigger refused the user (access rules)
                    code, reason = "forbidden", reason.removeprefix(FORBIDDEN)
                return [{"seq": changes[0][0], "code": code, "reason": reason}], 1
        mid = len(changes) // 2
        left, done = self._push(changes[:mid], req, None, None, budget)
        if done < mid:
            return left, done
        right, done = self._push(changes[mid:], req, None, None, budget)
        return left + right, mid + done

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


def _rules_digest(db: apsw.Connection) -> str | None:
    """The digest of the access rules the primary's buckets were computed with (None: none)."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS _edgesql_rules (id INTEGER PRIMARY KEY CHECK (id = 1), digest TEXT)"
    )
    row = db.execute("SELECT digest FROM _edgesql_rules WHERE id = 1").fetchone()
    return row[0] if row else None


def _row(cursor: apsw.Cursor) -> Any:
    """The one row a query always answers (an aggregate, a VALUES)."""
    row = cursor.fetchone()
    assert row is not None, "the statement answers one row"
    return row


def _one(db: apsw.Connection, sql: str, params: tuple[Any, ...] = ()) -> Any:
    row = db.execute(sql, params).fetchone()
    return row[0] if row else None
