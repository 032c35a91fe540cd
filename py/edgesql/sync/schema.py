"""What the app's schema is, and whether its tables can be synced.

The primary owns the schema: a list of migrations (SQL). It applies them to
an empty in-memory database, asks SQLite what tables came out (``PRAGMA
table_list``, ``table_xinfo``, ``index_list``, ``foreign_key_list``), and
refuses, with a reason and a fix, what cannot merge cell by cell:

* an ``INTEGER PRIMARY KEY`` (a rowid alias: every device numbers rows on its
  own, so two devices would make different rows with the same id), or no
  primary key at all;
* a ``CHECK`` that reads several columns: each column merges on its own;
* a FOREIGN KEY to a table that is not synced or to columns other than the
  parent's primary key, or with an ON UPDATE action (a key change travels as a
  delete and an insert).

FOREIGN KEYs (ON DELETE CASCADE, SET NULL, SET DEFAULT, RESTRICT, NO ACTION)
and UNIQUEs are kept: every replica enforces them on its own writes, and the
primary on pushed ones, in its one order (docs/sync.md, Constraints).

Tables named ``local_*`` stay on the device and are never synced; SQLite's
own and FTS shadow tables are skipped. The result, :class:`Schema`, travels
to clients as JSON, and the capture and merge SQL is generated from it.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from .._exceptions import ProgrammingError

__all__ = [
    "Column",
    "ForeignKey",
    "Migration",
    "Schema",
    "SchemaError",
    "Table",
    "affinity",
    "analyze",
    "load_migrations",
]

LOCAL_PREFIX = "local_"
RESERVED_PREFIX = "_edgesql_"


class SchemaError(ProgrammingError):
    """The schema cannot be synced as written; the message says why and what to do."""


class _Conn(Protocol):
    def execute(self, sql: str, params: Any = ...) -> Any: ...


@dataclass(frozen=True)
class Column:
    """A column of a synced table."""

    name: str
    type: str
    notnull: bool
    default: str | None  # SQL text of the DEFAULT expression, as SQLite reports it


@dataclass(frozen=True)
class ForeignKey:
    """A FOREIGN KEY of a synced table: its columns, the parent table, and what a parent's
    delete does (CASCADE, SET NULL, SET DEFAULT, RESTRICT or NO ACTION)."""

    columns: tuple[str, ...]
    parent: str
    on_delete: str


@dataclass(frozen=True)
class Table:
    """A synced table: its columns (generated ones excluded) and primary key, in key order;
    its foreign keys (each to a synced table's primary key) and UNIQUE column sets."""

    name: str
    columns: tuple[Column, ...]
    pk: tuple[str, ...]
    fks: tuple[ForeignKey, ...] = ()
    uniques: tuple[tuple[str, ...], ...] = ()

    @property
    def value_columns(self) -> tuple[Column, ...]:
        """The columns that are not part of the primary key."""
        return tuple(c for c in self.columns if c.name not in self.pk)

    @property
    def key_affinity(self) -> str:
        """The type affinity of each key column, one letter each (see :func:`affinity`)."""
        types = {c.name: c.type for c in self.columns}
        return "".join(affinity(types[k]) for k in self.pk)


def affinity(declared: str) -> str:
    """SQLite's type affinity of a column declared ``declared`` (section 3.1 of its datatype
    page): ``I`` INTEGER, ``T`` TEXT, ``B`` BLOB (none), ``R`` REAL, ``N`` NUMERIC.

    A key's canonical form depends on it: a TEXT column stores the integer 123 as the
    text '123', an INTEGER column stores the text '123' as the integer 123.
    """
    t = declared.upper()
    if "INT" in t:
        return "I"
    if "CHAR" in t or "CLOB" in t or "TEXT" in t:
        return "T"
    if "BLOB" in t or not t:
        return "B"
    if "REAL" in t or "FLOA" in t or "DOUB" in t:
        return "R"
    return "N"


@dataclass(frozen=True)
class Migration:
    """One step of the schema: its version number, name and SQL."""

    version: int
    name: str
    sql: str


@dataclass(frozen=True)
class Schema:
    """The schema at a version: the migrations that build it and the synced tables."""

    version: int
    migrations: tuple[Migration, ...]
    tables: tuple[Table, ...] = field(default=())
    #: Who sees what (buckets.Access), or None: every device reads and writes every row.
    access: Any = None

    def table(self, name: str) -> Table:
        """The synced table called ``name``."""
        for t in self.tables:
            if t.name == name:
                return t
        raise KeyError(name)

    def to_json(self) -> str:
        """The schema as JSON, as ``GET /schema`` serves it. Of the access rules, replicas
        see only their digest: it changes when the rules do (then they take a snapshot)."""
        d = asdict(self)
        d["access"] = None if self.access is None else {"digest": self.access.digest}
        return json.dumps(d, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Schema:
        """Read what :meth:`to_json` wrote."""
        d = json.loads(text)
        return cls(
            version=int(d["version"]),
            migrations=tuple(Migration(**m) for m in d["migrations"]),
            tables=tuple(
                Table(
                    name=t["name"],
                    columns=tuple(Column(**c) for c in t["columns"]),
                    pk=tuple(t["pk"]),
                    fks=tuple(
                        ForeignKey(tuple(f["columns"]), f["parent"], f["on_delete"]) for f in t.get("fks", ())
                    ),
                    uniques=tuple(tuple(u) for u in t.get("uniques", ())),
                )
                for t in d["tables"]
            ),
        )


def _rows(conn: _Conn, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in conn.execute(sql)]


_TOKEN = re.compile(
    r"""(?P<ws>\s+)|(?P<c1>--[^\n]*)|(?P<c2>/\*.*?\*/)|(?P<s>'(?:[^']|'')*')"""
    r"""|(?P<q>"(?:[^"]|"")*"|`(?:[^`]|``)*`|\[[^\]]*\])|(?P<w>[A-Za-z_][A-Za-z0-9_$]*)"""
    r"""|(?P<p>.)""",
    re.S,
)


def _tokens(sql: str) -> list[tuple[str, str]]:
    out = []
    for m in _TOKEN.finditer(sql):
        kind = m.lastgroup or "p"
        if kind in ("ws", "c1", "c2"):
            continue
        text = m.group()
        if kind == "q":
            text = text[1:-1].replace(text[0] * 2, text[0]) if text[0] != "[" else text[1:-1]
            kind = "w"
        out.append((kind, text))
    return out


def _checks(create_sql: str) -> list[list[tuple[str, str]]]:
    """The token lists inside each CHECK (...) of a CREATE TABLE statement."""
    toks = _tokens(create_sql)
    found = []
    i = 0
    while i < len(toks):
        kind, text = toks[i]
        if kind == "w" and text.upper() == "CHECK" and i + 1 < len(toks) and toks[i + 1][1] == "(":
            depth, j = 0, i + 1
            while j < len(toks):
                if toks[j][1] == "(":
                    depth += 1
                elif toks[j][1] == ")":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            found.append(toks[i + 2 : j])
            i = j
        i += 1
    return found


def _fail(table: str, problem: str, fix: str) -> SchemaError:
    return SchemaError(f"table {table!r} cannot be synced: {problem}. {fix}")


def analyze(conn: _Conn, version: int = 0, migrations: tuple[Migration, ...] = ()) -> Schema:
    """Describe the synced tables of the database behind ``conn`` (already migrated).

    Raises :class:`SchemaError` for a table whose design cannot merge.
    """
    tables = []
    listed = _rows(conn, "SELECT name, type FROM pragma_table_list WHERE schema = 'main' ORDER BY name")
    for name, kind in listed:
        if kind != "table" or name.startswith("sqlite_") or name.startswith(LOCAL_PREFIX):
            continue
        if name.startswith(RESERVED_PREFIX):
            continue
        tables.append(_table(conn, name))
    return Schema(version=version, migrations=migrations, tables=tuple(tables))


def _table(conn: _Conn, name: str) -> Table:
    q = name.replace("'", "''")
    info = _rows(
        conn, f"SELECT name, type, \"notnull\", dflt_value, pk, hidden FROM pragma_table_xinfo('{q}')"
    )
    create = _rows(conn, f"SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = '{q}'")[0][0] or ""
    without_rowid = bool(re.search(r"\bWITHOUT\s+ROWID\s*(,|$|STRICT)", create.upper().rstrip(" ;")))
    columns = []
    pk: list[tuple[int, str]] = []
    for col, ctype, notnull, dflt, pkpos, hidden in info:
        if col.startswith(RESERVED_PREFIX):
            raise _fail(
                name,
                f"column {col!r} uses the prefix {RESERVED_PREFIX!r}, reserved for edgesql",
                "Rename it.",
            )
        if hidden in (2, 3):  # generated columns are computed on each device, never synced
            continue
        columns.append(Column(col, ctype or "", bool(notnull), dflt))
        if pkpos:
            pk.append((pkpos, col))
    pk_cols = [c for _, c in sorted(pk)]
    local = f"or name the table {LOCAL_PREFIX}{name} to keep it on this device only"
    if not pk_cols:
        raise _fail(
            name,
            "it has no PRIMARY KEY, so rows cannot be matched across devices",
            f"Add a key unique across devices, e.g. `id TEXT PRIMARY KEY` holding a UUID, {local}.",
        )
    if len(pk_cols) == 1 and not without_rowid:
        ctype = next(c.type for c in columns if c.name == pk_cols[0])
        if ctype.upper() == "INTEGER":
            raise _fail(
                name,
                f"`{pk_cols[0]} INTEGER PRIMARY KEY` is an alias of the rowid, which each device numbers "
                "on its own, so two devices would create different rows with the same id",
                f"Use `{pk_cols[0]} TEXT PRIMARY KEY` with a UUID (str(uuid.uuid4())) or another key "
                f"unique across devices, {local}.",
            )
    for col in columns:
        if col.name in pk_cols and affinity(col.type) == "R":
            raise _fail(
                name, f"primary key column {col.name!r} is declared {col.type}", "Use TEXT or INTEGER keys."
            )
    uniques: list[tuple[str, ...]] = []
    for _seq, iname, unique, origin, _partial in _rows(conn, f"SELECT * FROM pragma_index_list('{q}')"):
        if origin == "pk":
            for _n, _cid, col, _desc, coll, key in _rows(
                conn, f"SELECT * FROM pragma_index_xinfo('{iname.replace(chr(39), chr(39) * 2)}')"
            ):
                if key and col is not None and str(coll).upper() != "BINARY":
                    raise _fail(
                        name,
                        f"primary key column {col!r} is COLLATE {coll}: rows whose keys differ only in case "
                        "or trailing spaces would be one row to SQLite and two to every other device",
                        f"Drop the COLLATE from the key (store the key normalized, e.g. lower(...)), {local}.",
                    )
        if unique and origin != "pk":
            # Kept on every replica for its own writes, and by the primary for pushed ones: a
            # change that breaks it there is rejected (the first of two devices wins).
            cols = [
                r[0]
                for r in _rows(
                    conn, f"SELECT name FROM pragma_index_info('{iname.replace(chr(39), chr(39) * 2)}')"
                )
            ]
            if all(c is not None for c in cols):
                uniques.append(tuple(cols))
    fks = _foreign_keys(conn, name, q, local)
    names = {c.name.lower() for c in columns}
    for toks in _checks(create):
        used = {t.lower() for k, t in toks if k == "w" and t.lower() in names}
        if len(used) > 1:
            raise _fail(
                name,
                f"CHECK reads several columns {sorted(used)}: each column merges on its own, so two valid "
                "edits on two devices could merge into a row the CHECK refuses",
                "Check each column on its own, or validate the combination in the app.",
            )
    return Table(name=name, columns=tuple(columns), pk=tuple(pk_cols), fks=fks, uniques=tuple(uniques))


_ACTIONS = {"CASCADE", "SET NULL", "SET DEFAULT", "RESTRICT", "NO ACTION"}


def _foreign_keys(conn: _Conn, name: str, q: str, local: str) -> tuple[ForeignKey, ...]:
    """The table's foreign keys, each checked: to a synced table's primary key, ON UPDATE NO ACTION."""
    groups: dict[int, list[tuple[Any, ...]]] = {}
    for row in _rows(
        conn,
        f'SELECT id, seq, "table", "from", "to", on_update, on_delete FROM pragma_foreign_key_list(\'{q}\')',
    ):
        groups.setdefault(row[0], []).append(row)
    out = []
    for rows in groups.values():
        rows.sort(key=lambda r: r[1])
        parent, on_update, on_delete = rows[0][2], rows[0][5].upper(), rows[0][6].upper()
        cols = tuple(r[3] for r in rows)
        if parent.startswith((LOCAL_PREFIX, RESERVED_PREFIX, "sqlite_")):
            raise _fail(
                name,
                f"FOREIGN KEY ({', '.join(cols)}) REFERENCES {parent}: the parent is not synced, so other "
                "devices would hold children of rows they do not have",
                f"Reference a synced table, or drop the REFERENCES, {local}.",
            )
        parent_pk = [
            r[0]
            for r in sorted(
                _rows(
                    conn,
                    f"SELECT name, pk FROM pragma_table_info('{parent.replace(chr(39), chr(39) * 2)}') WHERE pk > 0",
                ),
                key=lambda r: r[1],
            )
        ]
        to = [r[4] for r in rows]
        if any(t is not None for t in to) and list(to) != parent_pk:
            raise _fail(
                name,
                f"FOREIGN KEY ({', '.join(cols)}) REFERENCES {parent}({', '.join(str(t) for t in to)}): a synced "
                f"foreign key refers to the parent's primary key ({', '.join(parent_pk)}), which every device "
                "has for every row",
                f"Reference {parent}({', '.join(parent_pk)}).",
            )
        if on_update != "NO ACTION":
            raise _fail(
                name,
                f"FOREIGN KEY ({', '.join(cols)}) ... ON UPDATE {on_update}: a change of a synced row's key "
                "travels as a delete of the old key and an insert of the new one",
                "Leave ON UPDATE out (NO ACTION); ON DELETE CASCADE, SET NULL, RESTRICT and NO ACTION are kept.",
            )
        if on_delete not in _ACTIONS:
            raise _fail(
                name, f"FOREIGN KEY ON DELETE {on_delete} is unknown", "Use CASCADE, SET NULL or RESTRICT."
            )
        out.append(ForeignKey(cols, parent, on_delete))
    return tuple(out)


_MIGRATION_NAME = re.compile(r"^(\d+)_([\w.-]+)\.sql$")


def load_migrations(path: Any) -> tuple[Migration, ...]:
    """Read a schema: one ``.sql`` file (version 1), or a folder of ``NNNN_name.sql`` files
    (beside them, ``access.sql`` holds the access rules: buckets.load_access reads it)."""
    from pathlib import Path

    p = Path(path)
    if p.is_file():
        return (Migration(1, p.stem, p.read_text()),)
    if not p.is_dir():
        raise SchemaError(f"schema {p} not found: give a .sql file or a folder of NNNN_name.sql migrations")
    out = []
    for f in sorted(p.iterdir()):
        if f.suffix != ".sql" or f.name == "access.sql":
            continue
        m = _MIGRATION_NAME.match(f.name)
        if not m:
            raise SchemaError(
                f"migration file {f.name!r} must be named NNNN_name.sql (e.g. 0002_add_tags.sql)"
            )
        out.append(Migration(int(m.group(1)), m.group(2), f.read_text()))
    versions = [m.version for m in out]
    if not out:
        raise SchemaError(f"no NNNN_name.sql migrations in {p}")
    if versions != list(range(1, len(out) + 1)):
        raise SchemaError(f"migrations in {p} must be numbered 1, 2, 3… without gaps; found {versions}")
    return tuple(out)
