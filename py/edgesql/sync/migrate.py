"""A replica moves to the primary's schema: migrations, offline writes, and a fresh start.

The steps (the browser's worker runs the same ones, ``applySchemaDoc`` in
``worker/sync.js``; the SQL they run comes with the schema document):

1. In one transaction, edgesql's own triggers go first: they name the old
   columns, and SQLite refuses ``DROP COLUMN`` of a column a trigger reads.
2. The migrations this database has not run, on its data. When one fails on
   it — offline writes that a new CHECK refuses, rows the primary had fixed
   before migrating — the synced tables are emptied and the migrations run on
   them empty: the rows come back from the primary anyway (step 5).
3. Offline writes meet the new schema: cells of dropped columns go (the other
   columns' values still sync), writes to dropped tables are rejected, and when
   the tables were emptied the rows with offline writes are rebuilt; a row the
   new schema refuses has its writes rejected, with SQLite's reason, into
   ``_edgesql_rejected``. Pending values are then re-read from the rows, so a
   value the migration converted here is sent as this device holds it.
4. The new capture triggers and programs replace the old.
5. The clock is cleared and the next syncs take a snapshot of the primary's
   state: the primary migrated its own data, perhaps converting values
   differently (its SQLite is not this one), and its values win. Rows stay
   visible meanwhile; when the snapshot is complete, rows the primary does not
   have are removed.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from .._split import split_statements
from .status import SyncError

__all__ = ["apply_schema_doc", "cached_doc"]


def cached_doc(conn: sqlite3.Connection) -> dict[str, Any] | None:
    """The schema document this database last migrated to, or None (never synced)."""
    try:
        row = conn.execute("SELECT doc FROM _edgesql_schema ORDER BY version DESC LIMIT 1").fetchone()
    except sqlite3.OperationalError:  # never synced: no edgesql tables yet
        return None
    return json.loads(row[0]) if row else None


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _run(conn: sqlite3.Connection, doc: dict[str, Any], name: str, params: dict[str, Any]) -> None:
    for sql in doc["client"]["programs"][name]:
        conn.execute(sql, params)


def _migrate(conn: sqlite3.Connection, migrations: list[dict[str, Any]]) -> None:
    for m in migrations:
        for stmt in split_statements(m["sql"]):
            try:
                conn.execute(stmt)
            except sqlite3.Error as e:
                raise _MigrationError(m, e) from None


class _MigrationError(Exception):
    def __init__(self, migration: dict[str, Any], error: sqlite3.Error) -> None:
        super().__init__(f"migration {migration['version']} ({migration['name']}) failed: {error}")
        self.migration = migration
        self.error = error


def apply_schema_doc(
    conn: sqlite3.Connection, doc: dict[str, Any], old: dict[str, Any] | None = None
) -> None:
    """Bring a local database to the schema document's version, in one transaction (see the module)."""
    client = doc["client"]
    conn.execute("BEGIN IMMEDIATE")
    try:
        for sql in client["setup"]:
            conn.execute(sql)
        local = conn.execute("SELECT schema_version FROM _edgesql_state WHERE id = 1").fetchone()[0]
        if local > doc["version"]:
            raise SyncError(
                f"this database is at schema version {local}, ahead of the primary's {doc['version']}: "
                "the primary's migrations were rolled back",
                code="schema_ahead",
            )
        conn.execute("UPDATE _edgesql_state SET applying = 1 WHERE id = 1")
        triggers = conn.execute(
            "SELECT name FROM sqlite_schema WHERE type = 'trigger' AND name LIKE '\\_edgesql\\_%' ESCAPE '\\' "
            "AND tbl_name NOT LIKE '\\_edgesql\\_%' ESCAPE '\\'"
        ).fetchall()
        for (name,) in triggers:
            conn.execute(f"DROP TRIGGER {_quote(name)}")
        pending = [m for m in doc["migrations"] if m["version"] > local]
        emptied = False
        if pending:
            conn.execute("SAVEPOINT edgesql_migrate")
            try:
                _migrate(conn, pending)
            except _MigrationError as first:
                conn.execute("ROLLBACK TO edgesql_migrate")
                if local == 0 or old is None:
                    raise SyncError(
                        f"cannot build this database from the primary's schema: {first}. Fix the "
                        "migration on the primary (it ran there), or open a new database",
                        code="migration_failed",
                    ) from None
                # Run on empty synced tables: the snapshot after brings the rows back.
                for t in old["tables"]:
                    conn.execute(f"DELETE FROM {_quote(t['name'])}")
                emptied = True
                try:
                    _migrate(conn, pending)
                except _MigrationError as again:
                    raise SyncError(
                        f"cannot migrate this database to schema version {doc['version']}: {again}, even "
                        f"with its synced tables empty (it first failed on this database's rows: "
                        f"{first.error}). The migration must run on every replica's schema: fix it on "
                        "the primary with a new migration",
                        code="migration_failed",
                    ) from None
            conn.execute("RELEASE edgesql_migrate")
        conn.execute("DELETE FROM _edgesql_sql")
        for name, stmts in client["programs"].items():
            conn.execute("INSERT INTO _edgesql_sql (name, sql) VALUES (?, ?)", (name, json.dumps(stmts)))
        if pending and local > 0:
            _offline_writes(conn, doc, emptied)
            _run(conn, doc, "begin_snapshot", {})
        for sql in client["triggers"]:
            conn.execute(sql)
        conn.execute(
            "INSERT OR REPLACE INTO _edgesql_schema (version, doc) VALUES (?, ?)",
            (doc["version"], json.dumps(doc)),
        )
        conn.execute(
            "UPDATE _edgesql_state SET schema_version = ?, applying = 0 WHERE id = 1", (doc["version"],)
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _offline_writes(conn: sqlite3.Connection, doc: dict[str, Any], emptied: bool) -> None:
    """Step 3 of the module's list: this device's pending writes under the new schema."""
    version = doc["version"]
    _run(conn, doc, "prune", {"version": version})
    if emptied:
        conn.execute("SAVEPOINT edgesql_rebuild")
        try:
            _run(conn, doc, "rebuild", {})
            conn.execute("RELEASE edgesql_rebuild")
        except sqlite3.Error:
            conn.execute("ROLLBACK TO edgesql_rebuild")
            conn.execute("RELEASE edgesql_rebuild")
            keys = conn.execute(doc["client"]["programs"]["pending_keys"][0]).fetchall()
            for tbl, pk in keys:
                conn.execute("SAVEPOINT edgesql_rebuild_key")
                try:
                    _run(conn, doc, "rebuild_key", {"tbl": tbl, "pk": pk})
                except sqlite3.Error as e:
                    conn.execute("ROLLBACK TO edgesql_rebuild_key")
                    reason = f"{e} (schema version {version} refuses this row as this device wrote it)"
                    _run(
                        conn,
                        doc,
                        "reject_key",
                        {"tbl": tbl, "pk": pk, "code": "constraint", "reason": reason},
                    )
                    # The row as the primary last had it, if the new schema takes that (else the
                    # snapshot brings the primary's migrated row).
                    conn.execute("SAVEPOINT edgesql_rebuild_clock")
                    try:
                        _run(conn, doc, "rebuild_key", {"tbl": tbl, "pk": pk})
                    except sqlite3.Error:
                        conn.execute("ROLLBACK TO edgesql_rebuild_clock")
                    conn.execute("RELEASE edgesql_rebuild_clock")
                conn.execute("RELEASE edgesql_rebuild_key")
    _run(conn, doc, "normalize", {})
