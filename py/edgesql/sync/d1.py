"""Cloudflare D1 as a primary: wrangler migrations and the Worker's bundle, generated from the schema.

The Worker in ``cloudflare/`` holds no merge logic. It runs the statements of
:mod:`edgesql.sync.serversql` — the very ones the embedded primary runs —
which it reads from a JSON *bundle* written here, and D1's tables and apply
triggers come from migrations written here too::

    python -m edgesql d1-migrations --schema web/app/schema --out cloudflare/migrations

Migrations are wrangler's format (``NNNN_name.sql``, applied in name order by
``wrangler d1 migrations apply``, each file once, recorded in ``d1_migrations``).
One file per app migration holds, in order:

1. ``DROP TRIGGER`` of the previous version's apply triggers — they name the
   old tables and columns, and SQLite refuses to drop or rename a column that
   a trigger still reads;
2. the app's migration, statement by statement;
3. edgesql's server tables and the apply triggers of the new version
   (``serversql.server_setup``);
4. a row in ``_edgesql_primary`` saying which schema version and which
   server setup the database now runs: the Worker compares it with its bundle
   and answers 503 ``not_migrated`` until they agree.

Applied migrations never run again, so generation is append-only: files
already in ``--out`` are kept (and checked against the app's migrations), new
app migrations become new files, and when a newer edgesql generates a
different server setup for the same schema, a ``NNNN_edgesql_setup.sql``
file carries it.

D1 refuses some SQL that SQLite accepts (measured on workerd's D1):
transactions (``BEGIN``, ``SAVEPOINT``: wrangler applies each file as one
unit), ``ATTACH``, ``VACUUM``, ``CREATE TEMP``, tables named ``_cf_*``, all
PRAGMAs but :data:`D1_PRAGMAS`, and statements over 100,000 bytes. The
generator refuses them up front, with the migration's name, instead of
letting ``wrangler d1 migrations apply`` fail halfway through a deploy.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .accesssql import access_statements, refresh_buckets
from .buckets import Access, check_access
from .codec import quote_ident
from .protocol import (
    DEFAULT_PULL_LIMIT,
    MAX_PAGE_BYTES,
    MAX_PAGE_CHANGES,
    MAX_POSITION_CHARS,
    MAX_PULL_LIMIT,
    MAX_REQUEST_BYTES,
    MAX_SEQ,
    PROTOCOL_VERSION,
    PULL_PAGE_BYTES,
)
from .schema import Migration, Schema, SchemaError, _tokens, analyze
from .serversql import (
    CHECK,
    LOG_END,
    MAX_CELLS_BYTES,
    MAX_SQL_BYTES,
    PULL,
    PULL_SCAN_ROWS,
    PUSH,
    REGISTER,
    REPLICA,
    SERVER_HLC,
    SNAPSHOT,
    cascade_trigger_names,
    refresh_after_migration,
    schema_document,
    server_setup,
    trigger_name,
)

__all__ = ["BUNDLE_FORMAT", "D1_PRAGMAS", "D1Output", "generate", "primary_bundle", "write"]

#: Version of the bundle's layout; the Worker refuses a bundle it does not know.
BUNDLE_FORMAT = 1
#: The PRAGMAs workerd's D1 allows (every other one fails with SQLITE_AUTH).
D1_PRAGMAS = frozenset(
    {
        "case_sensitive_like",
        "data_version",
        "defer_foreign_keys",
        "foreign_key_check",
        "foreign_key_list",
        "foreign_keys",
        "ignore_check_constraints",
        "index_info",
        "index_list",
        "index_xinfo",
        "legacy_alter_table",
        "optimize",
        "quick_check",
        "recursive_triggers",
        "reverse_unordered_selects",
        "table_info",
        "table_list",
        "table_xinfo",
    }
)
#: D1 refuses a table of more columns ("too many columns").
D1_MAX_COLUMNS = 100
_TRANSACTION = {"BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"}
_MARKER = "-- edgesql d1 migration "
_FILE = re.compile(r"^(\d{4,})_([\w.-]+)\.sql$")
#: The table in D1 that records the schema version and server setup it runs.
STATE_DDL = (
    "CREATE TABLE IF NOT EXISTS _edgesql_primary (id INTEGER PRIMARY KEY CHECK (id = 1), "
    "schema_version INTEGER NOT NULL, setup TEXT NOT NULL, "
    "migrated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))"
)


@dataclass(frozen=True)
class D1Output:
    """What the generator writes: new migration files (name → SQL) and the bundle's text."""

    new_migrations: dict[str, str]
    bundle: str


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _setup(schema: Schema) -> list[str]:
    stmts = server_setup(schema)
    for sql in stmts:
        _check_size(sql, "edgesql's server setup")
    return stmts


def _refresh(schema: Schema) -> list[str]:
    stmts = refresh_after_migration(schema)
    for sql in stmts:
        _check_size(sql, "edgesql's clock refresh after a migration")
    return stmts


def setup_hash(schema: Schema) -> str:
    """A short hash of the server setup of ``schema``: equal hashes, equal tables and triggers."""
    return _hash("\n".join(server_setup(schema)))


def _check_size(sql: str, where: str) -> None:
    size = len(sql.encode())
    if size > MAX_SQL_BYTES:
        raise SchemaError(
            f"{where}: a statement of {size:,} bytes ({sql[:60]!r}…); D1 refuses SQL over "
            f"{MAX_SQL_BYTES:,} bytes (a table's apply trigger grows with its columns: split a wide table)"
        )


def _d1_statements(m: Migration) -> list[str]:
    """The statements of an app migration, each ending in ``;``, checked against what D1 refuses."""
    from .._split import split_statements

    where = f"migration {m.version} ({m.name})"
    out = []
    for stmt in split_statements(m.sql):
        toks = [t.upper() for k, t in _tokens(stmt) if k == "w"][:4]
        if not _tokens(stmt):  # only comments: keep them
            out.append(stmt)
            continue
        if toks and toks[0] in _TRANSACTION:
            raise SchemaError(
                f"{where}: `{toks[0]}` — D1 refuses transaction statements (no BEGIN, COMMIT or SAVEPOINT); "
                "wrangler applies each migration file as one unit, so remove it"
            )
        if toks and toks[0] in ("ATTACH", "DETACH", "VACUUM"):
            raise SchemaError(f"{where}: D1 refuses `{toks[0]}`; remove it")
        if toks[:2] in (["CREATE", "TEMP"], ["CREATE", "TEMPORARY"]):
            raise SchemaError(f"{where}: D1 refuses temporary tables, views and triggers; remove TEMP")
        if toks and toks[0] == "PRAGMA":
            words = [t for k, t in _tokens(stmt) if k == "w"]
            name = words[1].lower() if len(words) > 1 else ""
            if len(words) > 2 and _tokens(stmt)[2][1] == ".":  # PRAGMA main.name
                name = words[2].lower()
            if name not in D1_PRAGMAS:
                raise SchemaError(
                    f"{where}: `PRAGMA {name}` — D1 allows only {', '.join(sorted(D1_PRAGMAS))}; remove it"
                )
        if toks[:2] == ["CREATE", "TABLE"] or toks[:2] == ["CREATE", "VIRTUAL"]:
            names = [t for k, t in _tokens(stmt) if k == "w"]
            if any(n.lower().startswith("_cf_") for n in names[2:6]):
                raise SchemaError(f"{where}: D1 reserves table names starting with `_cf_`; rename the table")
        if not sqlite3.complete_statement(stmt):
            stmt += ";"  # the migration's last statement had no `;`
        _check_size(stmt, where)
        out.append(stmt)
    return out


def schemas(migrations: tuple[Migration, ...], access: Access | None = None) -> list[Schema]:
    """The schema after each migration (index 0 is version 1), analyzed as the embedded primary does;
    the last one with the access rules (checked against it)."""
    try:
        import apsw
    except ImportError:  # pragma: no cover - apsw comes with edgesql[server]
        raise SystemExit("generating D1 migrations needs apsw: pip install 'edgesql[server]'") from None
    db = apsw.Connection(":memory:")
    out = []
    for i, m in enumerate(migrations):
        try:
            db.execute(m.sql)
        except apsw.Error as e:
            raise SchemaError(f"migration {m.version} ({m.name}) fails on SQLite: {e}") from None
        wide = db.execute(
            "SELECT t.name, (SELECT count(*) FROM pragma_table_xinfo(t.name)) AS n FROM pragma_table_list t "
            "WHERE t.schema = 'main' AND t.type = 'table' AND t.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND n > ?",
            (D1_MAX_COLUMNS,),
        ).fetchall()
        if wide:
            raise SchemaError(
                f"migration {m.version} ({m.name}): table {wide[0][0]!r} has {wide[0][1]} columns; "
                f"D1 allows at most {D1_MAX_COLUMNS} per table: split it in two"
            )
        out.append(analyze(db, i + 1, migrations[: i + 1]))
    if access is not None:
        check_access(db, [t.name for t in out[-1].tables], access)
        out[-1] = replace(out[-1], access=access)
    db.close()
    return out


def primary_bundle(schema: Schema) -> dict[str, Any]:
    """What the Worker needs besides D1: the schema document, the server's SQL, the protocol's
    limits, and the statements of the access rules (None without any)."""
    sql = {
        "replica": REPLICA,
        "register": REGISTER,
        "check": CHECK,
        "push": PUSH,
        "pull": PULL,
        "snapshot": SNAPSHOT,
        "log_end": LOG_END,
        "server_hlc": SERVER_HLC,
    }
    for name, text in sql.items():
        _check_size(text, f"serversql.{name.upper()}")
    return {
        "format": BUNDLE_FORMAT,
        "schema_version": schema.version,
        "setup": setup_hash(schema),
        # Served byte for byte at GET /sync/schema: the same text the embedded primary serves.
        "schema_doc": schema_document(schema),
        "sql": sql,
        "access": access_statements(schema) if schema.access is not None else None,
        "protocol": {
            "version": PROTOCOL_VERSION,
            "max_request_bytes": MAX_REQUEST_BYTES,
            "max_page_changes": MAX_PAGE_CHANGES,
            "max_page_bytes": MAX_PAGE_BYTES,
            "max_cells_bytes": MAX_CELLS_BYTES,
            "max_pull_limit": MAX_PULL_LIMIT,
            "default_pull_limit": DEFAULT_PULL_LIMIT,
            "pull_page_bytes": PULL_PAGE_BYTES,
            "pull_scan_rows": PULL_SCAN_ROWS,
            "max_schema": 2**31,
            "max_cursor": MAX_SEQ,
            "replica_pattern": "^[A-Za-z0-9_-]{8,64}$",
            "key_pattern": "^[A-Za-z0-9_-]{16,128}$",
            "max_position_chars": MAX_POSITION_CHARS,
        },
    }


def _migration_file(
    header: dict[str, Any], title: str, previous: Schema | None, body: list[str], schema: Schema
) -> str:
    lines = [
        _MARKER + json.dumps(header, separators=(",", ":")),
        f"-- {title}",
        "-- Generated by `python -m edgesql d1-migrations`. Do not edit: wrangler never runs an applied",
        "-- migration again; change the app's schema and generate again instead.",
        "",
    ]
    if previous is not None and previous.tables:
        lines.append(
            f"-- edgesql: drop the apply triggers of version {previous.version} (they name its columns)"
        )
        lines += [f"DROP TRIGGER IF EXISTS {trigger_name(t)};" for t in previous.tables]
        lines += [
            f"DROP TRIGGER IF EXISTS {quote_ident(n)};"
            for t in previous.tables
            for n in cascade_trigger_names(t)
        ]
        lines.append("")
    if body:
        lines += body
        lines.append("")
    lines.append(f"-- edgesql: its tables on the primary and the apply triggers of version {schema.version}")
    lines += [s + ";" for s in _setup(schema)]
    if body:
        lines.append("")
        lines.append(
            "-- edgesql: the clock takes what the migration did to the tables; replicas start again from it"
        )
        lines += [s + ";" for s in _refresh(schema)]
    if schema.access is not None:
        lines.append("")
        lines.append(
            "-- edgesql: each row's bucket by the access rules; replicas start again from a snapshot"
        )
        lines += [s + ";" for s in refresh_buckets(schema)]
        if not body:
            lines.append(
                "INSERT OR REPLACE INTO _edgesql_horizon (id, seq) VALUES (1, (SELECT coalesce(max(seq), 0) FROM _edgesql_changes));"
            )
    lines += [
        "",
        "-- edgesql: what this database now runs (the Worker compares it with its bundle)",
        STATE_DDL + ";",
        "INSERT OR REPLACE INTO _edgesql_primary (id, schema_version, setup) "
        f"VALUES (1, {schema.version}, '{setup_hash(schema)}');",
        "",
    ]
    return "\n".join(lines)


def _read_existing(out: Path) -> list[tuple[int, str, dict[str, Any]]]:
    found: list[tuple[int, str, dict[str, Any]]] = []
    if not out.is_dir():
        return found
    for f in sorted(out.iterdir()):
        if f.suffix != ".sql":
            continue
        m = _FILE.match(f.name)
        first = f.read_text().split("\n", 1)[0]
        if not m or not first.startswith(_MARKER):
            raise SchemaError(
                f"{f} was not generated by edgesql: {out} must hold only the files "
                "`python -m edgesql d1-migrations` writes (wrangler applies every .sql file in it)"
            )
        found.append((int(m.group(1)), f.name, json.loads(first[len(_MARKER) :])))
    return found


def generate(migrations: tuple[Migration, ...], out: Path, access: Access | None = None) -> D1Output:
    """The migration files to add to ``out`` for ``migrations`` (and the access rules, which
    apply to the last version), and the bundle. Writes nothing."""
    if not migrations:
        raise SchemaError("no migrations: the schema needs at least one")
    steps = schemas(migrations, access)
    existing = _read_existing(out)
    done = 0
    last_setup = None
    for _num, name, header in existing:
        if header.get("kind") == "app":
            v = int(header["app_version"])
            if v != done + 1:
                raise SchemaError(
                    f"{out / name}: app migration {v} follows {done}; the folder is out of order"
                )
            if v > len(migrations):
                raise SchemaError(
                    f"{out / name} holds app migration {v}, but the schema has only {len(migrations)}: "
                    "the app's migrations were removed after they were generated (they are append-only)"
                )
            if header.get("app_sql") != _hash(migrations[v - 1].sql):
                raise SchemaError(
                    f"app migration {v} ({migrations[v - 1].name}) changed after it was generated into "
                    f"{out / name}; migrations are append-only: undo the edit and add a new migration"
                )
            done = v
        last_setup = header.get("setup")
    number = max((n for n, _, _ in existing), default=0)
    new: dict[str, str] = {}
    for v in range(done + 1, len(migrations) + 1):
        m, schema = migrations[v - 1], steps[v - 1]
        number += 1
        header = {"kind": "app", "app_version": v, "app_sql": _hash(m.sql), "setup": setup_hash(schema)}
        title = f"App migration {v} ({m.name}) of the schema, with edgesql's server setup for version {v}."
        body = [f"-- the app's migration {v} ({m.name})", *_d1_statements(m)]
        previous = steps[v - 2] if v >= 2 else None
        new[f"{number:04d}_{m.name}.sql"] = _migration_file(header, title, previous, body, schema)
        last_setup = header["setup"]
    current = steps[-1]
    if last_setup != setup_hash(current):
        # Same schema, different server setup: this edgesql generates other triggers than the one before.
        number += 1
        header = {"kind": "setup", "app_version": current.version, "setup": setup_hash(current)}
        title = (
            f"edgesql's server setup for schema version {current.version}, regenerated by a newer edgesql."
        )
        new[f"{number:04d}_edgesql_setup.sql"] = _migration_file(header, title, current, [], current)
    bundle = json.dumps(primary_bundle(current), indent=2, ensure_ascii=False) + "\n"
    return D1Output(new, bundle)


def write(
    migrations: tuple[Migration, ...], out: Path, bundle_path: Path, access: Access | None = None
) -> D1Output:
    """Generate, then write the new migration files into ``out`` and the bundle to ``bundle_path``."""
    result = generate(migrations, out, access)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in result.new_migrations.items():
        (out / name).write_text(text)
    bundle_path.parent.mkdir(parents=True, exist_ok=True)
    if not bundle_path.exists() or bundle_path.read_text() != result.bundle:
        bundle_path.write_text(result.bundle)
    return result
