"""The SQL a primary runs: the change log, the clock, and its materialized tables.

The same statements run in the embedded primary (serve.py, SQLite 3.54 via
apsw) and in Cloudflare D1 (workerd's SQLite, 3.47), so they keep to what D1
accepts: no BEGIN, no custom functions, no temp tables, at most
:data:`MAX_PARAMS` bound parameters and :data:`MAX_SQL_BYTES` of SQL per
statement. A page of changes is bound as ONE JSON parameter and expanded
with ``json_each``; an AFTER INSERT trigger per table applies each change
cell by cell (last writer wins on (HLC, replica)) and rebuilds the row from
the clock, so the app's tables can be queried with plain SQL.

A push is answered in these steps, each one statement:
``replica``  who the replica id belongs to (the digest of its key), the highest
             seq the primary holds from it, and where the log was cut by the last
             migration (the *horizon*);
``check``    the page's problems (a key not in its one canonical form, an unknown
             table or column, stamps from the future, a replica id used by another
             copy), as JSON;
``register`` bind the replica id to its key, the first time;
``push``     insert the page's good changes (a replayed seq changes nothing);
``pull``     the next page of other replicas' changes after the cursor, or
``snapshot`` a page of the primary's current state, by key (a replica that is new
             after a migration, or has just migrated, starts from this).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from .clientsql import EXISTS, client_doc
from .codec import (
    POW2_DDL,
    POW2_FILL,
    POW2_INDEX,
    decode,
    differs,
    encode,
    key_decode,
    key_encode,
    quote_ident,
    quote_text,
)
from .schema import Schema, Table

__all__ = [
    "CHECK",
    "MAX_CELLS_BYTES",
    "MAX_PARAMS",
    "MAX_SQL_BYTES",
    "MIGRATION_REPLICA",
    "PULL",
    "PULL_SCAN_ROWS",
    "PUSH",
    "REGISTER",
    "REPLICA",
    "SERVER_HLC",
    "SNAPSHOT",
    "cascaded_tables",
    "refresh_after_migration",
    "schema_document",
    "server_setup",
]

#: D1 binds at most 100 parameters per statement.
MAX_PARAMS = 100
#: D1 refuses SQL text over 100,000 bytes; generated statements must stay under it.
MAX_SQL_BYTES = 100_000
#: D1 refuses a string, BLOB or row over 2,000,000 bytes; one change's cells
#: (stored as one TEXT) must stay under it, with room for the rest of its row.
MAX_CELLS_BYTES = 1_900_000
#: A stamp more than this far ahead of the primary's clock is refused: a device
#: whose clock runs ahead would otherwise win every conflict for as long.
MAX_CLOCK_SKEW_MS = 5 * 60 * 1000
#: Log rows one pull reads at most, whoever wrote them: a replica's own changes are
#: skipped, not sent, and a long run of them must not make one request scan the log.
PULL_SCAN_ROWS = 20_000
#: The writer of the cells a migration made or changed on the primary. Not a valid
#: replica id ("~" is outside [A-Za-z0-9_-]), so no replica can push under it.
MIGRATION_REPLICA = "~migration"

_NOW_MS = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"


def schema_document(schema: Schema) -> str:
    """The schema document a primary serves at ``GET /sync/schema``: the schema and the client's SQL.

    Every primary serves exactly this text (the Cloudflare Worker gets it from
    its generated bundle), so a replica cannot tell which primary it talks to.
    """
    return json.dumps({**json.loads(schema.to_json()), "client": client_doc(schema)}, separators=(",", ":"))


def server_setup(schema: Schema, existing_triggers: Iterable[str] = ()) -> list[str]:
    """The primary's own tables and its apply triggers for ``schema`` (idempotent).

    ``existing_triggers`` names apply triggers already in the database (from an
    older schema); they are dropped first.
    """
    out = [
        POW2_DDL,
        POW2_FILL,
        POW2_INDEX,
        "CREATE TABLE IF NOT EXISTS _edgesql_changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
        "replica TEXT NOT NULL, rseq INTEGER NOT NULL, tbl TEXT NOT NULL, pk TEXT NOT NULL, "
        "hlc INTEGER NOT NULL, cells TEXT NOT NULL, txend INTEGER NOT NULL DEFAULT 0, UNIQUE (replica, rseq))",
        # The winning stamp and (decoded) value of every cell; val has no type
        # affinity, so every storage class stays as it came.
        "CREATE TABLE IF NOT EXISTS _edgesql_clock (tbl TEXT NOT NULL, pk TEXT NOT NULL, col TEXT NOT NULL, "
        "hlc INTEGER NOT NULL, replica TEXT NOT NULL, val, PRIMARY KEY (tbl, pk, col)) WITHOUT ROWID",
        # Which table/column names a change may carry (validation in SQL, same on every primary).
        "CREATE TABLE IF NOT EXISTS _edgesql_columns (tbl TEXT NOT NULL, col TEXT NOT NULL, PRIMARY KEY (tbl, col)) WITHOUT ROWID",
        # kaff: the type affinity of each key column, one letter each (schema.affinity):
        # CHECK accepts a key only in the one form that column stores it in.
        "CREATE TABLE IF NOT EXISTS _edgesql_keys (tbl TEXT PRIMARY KEY, npk INTEGER NOT NULL, "
        "kaff TEXT NOT NULL) WITHOUT ROWID",
        # Each replica id belongs to the device that first used it: the digest of its key.
        "CREATE TABLE IF NOT EXISTS _edgesql_replicas (replica TEXT PRIMARY KEY, key_hash TEXT NOT NULL, "
        "created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))) WITHOUT ROWID",
        # The log seq at the last migration: replaying the log from before it gives
        # pre-migration values, so a replica whose cursor is below it takes a snapshot.
        "CREATE TABLE IF NOT EXISTS _edgesql_horizon (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL)",
        "INSERT OR IGNORE INTO _edgesql_horizon (id, seq) VALUES (1, 0)",
        "DELETE FROM _edgesql_columns",
        "DELETE FROM _edgesql_keys",
        "DROP TABLE IF EXISTS _edgesql_tables",
    ]
    for t in schema.tables:
        tl = quote_text(t.name)
        out.append(
            f"INSERT INTO _edgesql_keys (tbl, npk, kaff) VALUES ({tl}, {len(t.pk)}, {quote_text(t.key_affinity)})"
        )
        for name in [c.name for c in t.value_columns] + [EXISTS]:
            out.append(f"INSERT INTO _edgesql_columns (tbl, col) VALUES ({tl}, {quote_text(name)})")
    # Apply triggers are rebuilt for the current schema; a stale one would name
    # a table or column that is gone, and every push would fail to compile.
    out.extend(f"DROP TRIGGER IF EXISTS {quote_ident(name)}" for name in existing_triggers)
    if schema.access is not None:
        from .accesssql import access_setup

        out.extend(access_setup())
    cascaded = cascaded_tables(schema)
    if cascaded:
        out.append(APPLYING_DDL)
    for t in schema.tables:
        out.append(f"DROP TRIGGER IF EXISTS {trigger_name(t)}")
        out.extend(f"DROP TRIGGER IF EXISTS {quote_ident(n)}" for n in cascade_trigger_names(t))
        out.append(apply_trigger(t, schema.access, t.name in cascaded))
        if t.name in cascaded:
            out.extend(cascade_triggers(t))
    return out


#: The rows apply triggers are writing now: a write to a row not in it is SQLite's own
#: (an ON DELETE CASCADE or SET NULL), which the primary logs as a change of its own.
APPLYING_DDL = (
    "CREATE TABLE IF NOT EXISTS _edgesql_applying (tbl TEXT NOT NULL, pk TEXT NOT NULL, "
    "PRIMARY KEY (tbl, pk)) WITHOUT ROWID"
)
#: The writer of the changes a parent's delete makes to its children on the primary
#: (not a valid replica id: no replica can push under it).
CASCADE_REPLICA = "~cascade"


def cascaded_tables(schema: Schema) -> set[str]:
    """Tables whose rows SQLite changes when a parent is deleted (a CASCADE, SET NULL or SET
    DEFAULT foreign key): the primary logs those changes, so every replica gets them."""
    return {
        t.name
        for t in schema.tables
        for fk in t.fks
        if fk.on_delete in ("CASCADE", "SET NULL", "SET DEFAULT")
    }


def cascade_trigger_names(t: Table) -> list[str]:
    return [f"_edgesql_apply_cascade_{t.name}_del", f"_edgesql_apply_cascade_{t.name}_upd"]


def cascade_triggers(t: Table) -> list[str]:
    """Triggers on table ``t`` (on the primary) that log what SQLite's foreign key actions did
    to its rows: a delete, or columns set NULL or to their default. Stamped after every cell
    the row has, so the parent's delete wins on every replica, by the writer ``~cascade``."""
    tq, tl = quote_ident(t.name), quote_text(t.name)
    mine = "(SELECT 1 FROM _edgesql_applying a WHERE a.tbl = {tl} AND a.pk = {key})"
    stamp = f"max({_NOW_MS} << 16, coalesce((SELECT max(hlc) FROM _edgesql_clock WHERE tbl = {tl} AND pk = {{key}}), 0) + 1)"
    rseq = f"(SELECT coalesce(max(rseq), 0) + 1 FROM _edgesql_changes WHERE replica = {quote_text(CASCADE_REPLICA)})"
    old_key = key_encode([f"OLD.{quote_ident(c)}" for c in t.pk])
    new_key = key_encode([f"NEW.{quote_ident(c)}" for c in t.pk])
    del_name, upd_name = (quote_ident(n) for n in cascade_trigger_names(t))
    out = [
        f"CREATE TRIGGER {del_name} AFTER DELETE ON {tq} WHEN NOT EXISTS {mine.format(tl=tl, key=old_key)} BEGIN "
        "INSERT INTO _edgesql_changes (replica, rseq, tbl, pk, hlc, cells, txend) VALUES "
        f"({quote_text(CASCADE_REPLICA)}, {rseq}, {tl}, {old_key}, {stamp.format(key=old_key)}, "
        f'\'{{"{EXISTS}":["i","0"]}}\', 1); END'
    ]
    if t.value_columns:
        changed = " || ".join(
            f"CASE WHEN {differs(f'NEW.{quote_ident(c.name)}', f'OLD.{quote_ident(c.name)}')} THEN "
            f"{quote_text(json.dumps(c.name))} || ':' || {encode(f'NEW.{quote_ident(c.name)}')} || ',' ELSE '' END"
            for c in t.value_columns
        )
        out.append(
            f"CREATE TRIGGER {upd_name} AFTER UPDATE ON {tq} WHEN NOT EXISTS {mine.format(tl=tl, key=new_key)} BEGIN "
            "INSERT INTO _edgesql_changes (replica, rseq, tbl, pk, hlc, cells, txend) VALUES "
            f"({quote_text(CASCADE_REPLICA)}, {rseq}, {tl}, {new_key}, {stamp.format(key=new_key)}, "
            f"'{{' || rtrim({changed}, ',') || '}}', 1); END"
        )
    return out


def trigger_name(t: Table) -> str:
    """The quoted name of table ``t``'s apply trigger."""
    return quote_ident(f"_edgesql_apply_{t.name}")


def apply_trigger(t: Table, access: Any = None, cascaded: bool = False) -> str:
    """The trigger that applies changes to table ``t``: LWW into the clock, then rebuild the row.

    The primary's clock keeps each winning value decoded, so rebuilding a
    row reads plain values: each incoming cell is decoded once, on arrival.
    With access rules (``buckets.Access``), the row's bucket is checked before and
    after, and logged (accesssql.bucket_steps).
    """
    tq = quote_ident(t.name)
    tl = quote_text(t.name)
    value_names = [c.name for c in t.value_columns]
    cols = ", ".join(quote_ident(c.name) for c in t.columns)
    values_list = [
        key_decode("NEW.pk", t.pk.index(c.name))
        if c.name in t.pk
        else (
            f"CASE WHEN w.{quote_ident('?' + c.name)} THEN w.{quote_ident(c.name)} ELSE {c.default} END"
            if c.default is not None
            else f"w.{quote_ident(c.name)}"
        )
        for c in t.columns
    ]
    values = ", ".join(values_list)
    # One row per key: each column's value, and (for a column with a default, used
    # when the clock has no cell for it) whether the clock has that cell at all.
    has_default = {c.name for c in t.value_columns if c.default is not None}
    picks = ", ".join(
        f"max(CASE WHEN col = {quote_text(c)} THEN val END) AS {quote_ident(c)}"
        + (f", max(col = {quote_text(c)}) AS {quote_ident('?' + c)}" if c in has_default else "")
        for c in value_names
    )
    picks = (
        picks + ", " if picks else ""
    ) + f"max(CASE WHEN col = {quote_text(EXISTS)} THEN val END) AS {quote_ident(EXISTS)}"
    row = f"(SELECT {picks} FROM _edgesql_clock WHERE tbl = {tl} AND pk = NEW.pk)"
    exists = (
        f"(SELECT val FROM _edgesql_clock WHERE tbl = {tl} AND pk = NEW.pk AND col = {quote_text(EXISTS)})"
    )
    # The row goes when the clock says it does not exist. The first key column is
    # compared with a subquery that is NULL unless so: it runs once, before any
    # lookup, and a NULL matches nothing, so a row that stays costs no index seek.
    # (`=`, not `IS`: a key that passed CHECK never decodes to NULL.)
    pk_match = " AND ".join(
        f"{quote_ident(c)} = (SELECT {key_decode('NEW.pk', i)} WHERE {exists} IS NOT 1)"
        if i == 0
        else f"{quote_ident(c)} = {key_decode('NEW.pk', i)}"
        for i, c in enumerate(t.pk)
    )
    pkcols = ", ".join(quote_ident(c) for c in t.pk)
    updates = ", ".join(f"{quote_ident(c)} = excluded.{quote_ident(c)}" for c in value_names)
    upsert = (
        f"ON CONFLICT ({pkcols}) DO UPDATE SET {updates}" if updates else f"ON CONFLICT ({pkcols}) DO NOTHING"
    )
    before = after = ""
    if access is not None:
        from .accesssql import bucket_steps

        aliased = ", ".join(
            f"{v} AS {quote_ident(c.name)}" for v, c in zip(values_list, t.columns, strict=True)
        )
        before, after = bucket_steps(t, access, aliased, f"{row} w")
    return (
        f"CREATE TRIGGER {trigger_name(t)} AFTER INSERT ON _edgesql_changes WHEN NEW.tbl = {tl} BEGIN "
        f"{before}"
        "INSERT INTO _edgesql_clock (tbl, pk, col, hlc, replica, val) "
        f"SELECT NEW.tbl, NEW.pk, j.key, NEW.hlc, NEW.replica, {decode('j.value')} FROM json_each(NEW.cells) j WHERE true "
        "ON CONFLICT (tbl, pk, col) DO UPDATE SET hlc = excluded.hlc, replica = excluded.replica, val = excluded.val "
        "WHERE (excluded.hlc, excluded.replica) > (_edgesql_clock.hlc, _edgesql_clock.replica); "
        f"DELETE FROM {tq} WHERE {pk_match}; "
        f"INSERT INTO {tq} ({cols}) SELECT {values} FROM {row} w "
        f"WHERE w.{quote_ident(EXISTS)} IS 1 {upsert}; "
        f"{after}"
        "END"
    )


# Both are CASEs, not ANDs: SQLite does not promise to evaluate AND left to right,
# and `->>` on a value that is no JSON (a plain string cell) raises an error.
#
# A key part is accepted only in the one form the key column stores it in (its
# affinity, `a`): two spellings of one row's key would be two rows to every clock and
# one row to the table. An integer in a TEXT column is stored as text ('123'); a text
# that looks like a number in an INTEGER or NUMERIC column is stored as that number
# (`x = CAST(x AS NUMERIC)` is true exactly then: the CAST gives the right side NUMERIC
# affinity, which converts the left side before comparing, as the column would).
_VALID_KEY_PART = (
    "CASE WHEN k.type IS NOT 'text' THEN 0 WHEN substr(k.value, 1, 1) = 'i' "
    "THEN CAST(CAST(substr(k.value, 2) AS INTEGER) AS TEXT) = substr(k.value, 2) AND a != 'T' "
    "WHEN substr(k.value, 1, 1) IN ('t', 'b') THEN CASE WHEN length(k.value) % 2 = 1 "
    "AND substr(k.value, 2) NOT GLOB '*[^0-9A-F]*' THEN CASE WHEN substr(k.value, 1, 1) = 'b' OR a IN ('T', 'B') "
    "THEN 1 ELSE NOT (CAST(unhex(substr(k.value, 2)) AS TEXT) = CAST(CAST(unhex(substr(k.value, 2)) AS TEXT) AS NUMERIC)) "
    "END ELSE 0 END ELSE 0 END"
)
# The whole key text as the codec writes it: minified (json() gives the same text back),
# no escapes, one part per key column.
_CANONICAL_KEY = "json_valid(pk) AND json_type(pk) IS 'array' AND json(pk) = pk AND instr(pk, '\\') = 0"
# 1 for a well-formed cell, else 0: never NULL, which min() would skip (so ["i", null]
# once passed). Every payload is a JSON string: decode() cuts ["i","42"] by position.
_VALID_VALUE = (
    "coalesce(CASE WHEN j.type IS NOT 'array' THEN 0 ELSE CASE j.value ->> '$[0]' "
    "WHEN 'n' THEN json_array_length(j.value) = 1 "
    "WHEN 'i' THEN json_array_length(j.value) = 2 AND json_type(j.value, '$[1]') = 'text' "
    "AND CAST(CAST(j.value ->> '$[1]' AS INTEGER) AS TEXT) = j.value ->> '$[1]' "
    "WHEN 't' THEN json_array_length(j.value) = 2 AND json_type(j.value, '$[1]') = 'text' "
    "WHEN 'T' THEN json_array_length(j.value) = 2 AND json_type(j.value, '$[1]') = 'text' "
    "AND length(j.value ->> '$[1]') % 2 = 0 AND (j.value ->> '$[1]') NOT GLOB '*[^0-9A-F]*' "
    "WHEN 'b' THEN json_array_length(j.value) = 2 AND json_type(j.value, '$[1]') = 'text' "
    "AND length(j.value ->> '$[1]') % 2 = 0 AND (j.value ->> '$[1]') NOT GLOB '*[^0-9A-F]*' "
    "WHEN 'r' THEN (json_array_length(j.value) = 2 AND json_type(j.value, '$[1]') = 'text' "
    "AND j.value ->> '$[1]' IN ('0', '-0', 'inf', '-inf')) "
    "OR (json_array_length(j.value) = 3 AND json_type(j.value, '$[1]') = 'text' AND json_type(j.value, '$[2]') = 'text' "
    "AND CAST(CAST(j.value ->> '$[1]' AS INTEGER) AS TEXT) = j.value ->> '$[1]' "
    "AND abs(CAST(j.value ->> '$[1]' AS INTEGER)) < 9007199254740992 "
    "AND CAST(j.value ->> '$[2]' AS INTEGER) BETWEEN -1074 AND 1023 "
    "AND CAST(CAST(j.value ->> '$[2]' AS INTEGER) AS TEXT) = j.value ->> '$[2]') "
    "ELSE 0 END END, 0)"
)

#: Problems with a pushed page, one JSON array of {"seq", "code", "reason"}.
#: Params: ?1 page (JSON array of [seq, tbl, pk, hlc, cells, txend]), ?2 replica.
#: The page's shape (an array of arrays) is checked by the transport first. Each
#: change is parsed once, into JSONB (D1 has ``jsonb()`` but not ``jsonb_each``),
#: so that extracting its fields parses nothing; the fields are extracted once
#: (MATERIALIZED: SQLite does not share an expression used twice), then checked
#: in order. A change's cells are read in one pass, which finds an empty cells
#: object, an unknown column and a malformed value at once.
CHECK = f"""
WITH page AS MATERIALIZED (SELECT jsonb(p.value) AS v FROM json_each(?1) p
), ch AS MATERIALIZED (
  SELECT v, v ->> '$[0]' AS seq, v ->> '$[1]' AS tbl, v ->> '$[2]' AS pk,
         v ->> '$[3]' AS hlc_text, json_type(v, '$[4]') AS cells_type,
         json_array_length(v) AS n, json_type(v, '$[0]') AS seq_type,
         json_type(v, '$[1]') AS tbl_type, json_type(v, '$[2]') AS pk_type,
         json_type(v, '$[3]') AS hlc_type, json_type(v, '$[5]') AS txend_type
  FROM page
), coded AS (
  SELECT seq, tbl, hlc_text, v,
    CASE
      WHEN n != 6 OR seq_type IS NOT 'integer' OR seq < 1 OR tbl_type IS NOT 'text' OR pk_type IS NOT 'text'
        OR hlc_type IS NOT 'text' OR cells_type IS NOT 'object' OR txend_type IS NOT 'integer'
        OR CAST(CAST(hlc_text AS INTEGER) AS TEXT) IS NOT hlc_text OR CAST(hlc_text AS INTEGER) < 0
        OR NOT ({_CANONICAL_KEY})
        THEN 'malformed'
      WHEN npk IS NULL THEN 'unknown_table'
      WHEN json_array_length(pk) != npk
        OR EXISTS (SELECT 1 FROM (SELECT k.type, k.value, substr(kaff, k.key + 1, 1) AS a FROM json_each(pk) k) k
                   WHERE NOT ({_VALID_KEY_PART}))
        THEN 'malformed'
      ELSE coalesce(
        (SELECT CASE WHEN count(*) = 0 OR count(DISTINCT j.key) < count(*) THEN 'malformed'
                     WHEN count(c.col) < count(*) THEN 'unknown_column'
                     WHEN min({_VALID_VALUE}) = 0 THEN 'malformed' END
         FROM json_each(v, '$[4]') j LEFT JOIN _edgesql_columns c ON c.tbl = ch.tbl AND c.col = j.key),
        CASE
          WHEN (CAST(hlc_text AS INTEGER) >> 16) > {_NOW_MS} + {MAX_CLOCK_SKEW_MS} THEN 'future_stamp'
          WHEN EXISTS (SELECT 1 FROM _edgesql_changes x WHERE x.replica = ?2 AND x.rseq = ch.seq
            AND (x.tbl IS NOT ch.tbl OR x.pk IS NOT ch.pk OR x.hlc IS NOT CAST(ch.hlc_text AS INTEGER)))
            THEN 'replica_conflict'
        END)
    END AS code
  FROM (SELECT ch.*, t.npk, t.kaff FROM ch LEFT JOIN _edgesql_keys t ON t.tbl = ch.tbl) ch
)
SELECT coalesce(json_group_array(json_object('seq', seq, 'code', code, 'reason', CASE code
    WHEN 'malformed' THEN 'the change is not [seq, table, key, hlc, {{column: value}}, txend] with edgesql''s encodings '
      || '(the key in its one canonical form for the table''s key columns, each column once)'
    WHEN 'unknown_table' THEN 'no synced table ' || quote(tbl) || ' in the primary''s schema (version mismatch?)'
    WHEN 'unknown_column' THEN 'table ' || quote(tbl) || ' has no synced column ' || quote(
      (SELECT j.key FROM json_each(v, '$[4]') j LEFT JOIN _edgesql_columns c ON c.tbl = coded.tbl AND c.col = j.key
       WHERE c.col IS NULL LIMIT 1))
    WHEN 'future_stamp' THEN 'the stamp is ' || (((CAST(hlc_text AS INTEGER) >> 16) - {_NOW_MS}) / 1000) || ' s ahead of the primary''s clock: fix this device''s clock'
    WHEN 'replica_conflict' THEN 'another copy of this database already pushed different changes under this replica id'
  END)), '[]')
FROM coded WHERE code IS NOT NULL
"""

#: Who owns a replica id, the highest seq the primary holds from it, and the horizon.
#: Params: ?1 replica. One row: key_hash (NULL before its first request), high, horizon.
REPLICA = """
SELECT (SELECT key_hash FROM _edgesql_replicas WHERE replica = ?1) AS key_hash,
       coalesce((SELECT max(rseq) FROM _edgesql_changes WHERE replica = ?1), 0) AS high,
       coalesce((SELECT seq FROM _edgesql_horizon WHERE id = 1), 0) AS horizon
"""

#: Bind a replica id to the digest of its key, the first time it is used. Params: ?1 replica, ?2 key digest.
REGISTER = (
    "INSERT INTO _edgesql_replicas (replica, key_hash) VALUES (?1, ?2) ON CONFLICT (replica) DO NOTHING"
)

#: Insert a page's changes (those not excluded); a seq already stored changes nothing.
#: Params: ?1 page, ?2 replica, ?3 JSON array of seqs to leave out, ?4 the replica's key digest.
#: Each change is parsed once, into JSONB, as in CHECK; ``->`` renders its cells
#: as minified JSON text. Only the owner of the replica id inserts anything: D1 checks
#: ownership before its batch, and this keeps a request that raced another device's
#: first use of the id from writing under it.
PUSH = """
WITH page AS MATERIALIZED (SELECT p.key AS i, jsonb(p.value) AS v FROM json_each(?1) p)
INSERT INTO _edgesql_changes (replica, rseq, tbl, pk, hlc, cells, txend)
SELECT ?2, v ->> '$[0]', v ->> '$[1]', v ->> '$[2]', CAST(v ->> '$[3]' AS INTEGER),
       v -> '$[4]', coalesce(v ->> '$[5]', 0)
FROM page
WHERE v ->> '$[0]' NOT IN (SELECT value FROM json_each(?3))
  AND (SELECT key_hash FROM _edgesql_replicas WHERE replica = ?2) IS ?4
ORDER BY i
ON CONFLICT (replica, rseq) DO NOTHING
"""

#: The next page for a replica: other replicas' changes after the cursor, up to
#: ?3 changes and about ?4 bytes, cut at the end of a transaction when one ends
#: inside, reading at most ?5 log rows. Params: ?1 cursor, ?2 replica, ?3 limit,
#: ?4 bytes, ?5 rows to scan (PULL_SCAN_ROWS).
#: Returns the page (JSON), the new cursor, its size, and an estimate of how many
#: changes remain (an upper bound: the replica's own changes are counted too; an
#: exact count would read the rest of the log), named (D1 hands rows to JavaScript
#: as objects keyed by column name).
#: Sizes are UTF-8 bytes (``length(CAST(x AS BLOB))``), not characters: D1's
#: 2,000,000-byte limit on a value counts bytes, and a page of 4-byte characters
#: measured in characters would be four times over it.
PULL = """
WITH win AS MATERIALIZED (
  SELECT seq, replica FROM _edgesql_changes WHERE seq > ?1 ORDER BY seq LIMIT ?5
), page AS (
  SELECT c.seq, c.replica, c.tbl, c.pk, c.hlc, c.cells, c.txend,
         sum(length(CAST(c.cells AS BLOB)) + length(c.pk) + length(CAST(c.tbl AS BLOB)) + 80) OVER (ORDER BY c.seq) AS bytes
  FROM win w JOIN _edgesql_changes c ON c.seq = w.seq WHERE w.replica != ?2 ORDER BY c.seq LIMIT ?3
), cut AS (
  SELECT coalesce((SELECT max(seq) FROM page WHERE txend = 1 AND bytes <= ?4),
                  (SELECT max(seq) FROM page WHERE bytes <= ?4),
                  (SELECT min(seq) FROM page)) AS upto
), sent AS (SELECT * FROM page, cut WHERE seq <= upto ORDER BY seq),
next AS (
  -- After the last change sent; or, when every change of others in the window was
  -- sent, after the window (past this replica's own changes in it).
  SELECT CASE WHEN EXISTS (SELECT 1 FROM win WHERE seq > coalesce((SELECT max(seq) FROM sent), ?1) AND replica != ?2)
              THEN coalesce((SELECT max(seq) FROM sent), ?1)
              ELSE coalesce((SELECT max(seq) FROM win), ?1) END AS cursor
)
SELECT coalesce((SELECT json_group_array(json_array(seq, replica, tbl, pk, CAST(hlc AS TEXT), json(cells), txend)) FROM sent), '[]') AS page,
       (SELECT cursor FROM next) AS next_cursor,
       (SELECT count(*) FROM sent) AS n,
       max(0, coalesce((SELECT max(seq) FROM _edgesql_changes), 0) - (SELECT cursor FROM next)) AS remaining
"""

#: A page of the primary's current state, for a replica that must start from it: every
#: key of every synced table after the position (?1 table, ?2 key), up to ?3 keys and
#: about ?4 bytes, in (table, key) order, tombstones included (so that an older change
#: pulled later cannot bring a deleted row back). Each key's cells become changes of the
#: pull's shape, one per stamp, with seq 0: [0, replica, table, key, hlc, cells, 1].
#: Returns the page, the position of its last key, its size, and whether keys remain.
SNAPSHOT = f"""
WITH keys AS MATERIALIZED (
  SELECT DISTINCT tbl, pk FROM _edgesql_clock WHERE (tbl, pk) > (?1, ?2) ORDER BY tbl, pk LIMIT ?3
), changes AS (
  SELECT c.tbl, c.pk, c.hlc, c.replica, '{{' || group_concat(json_quote(c.col) || ':' || {encode("c.val")}, ',') || '}}' AS cells
  FROM keys k JOIN _edgesql_clock c ON c.tbl = k.tbl AND c.pk = k.pk GROUP BY c.tbl, c.pk, c.hlc, c.replica
), sized AS MATERIALIZED (
  SELECT *, sum(length(CAST(cells AS BLOB)) + length(pk) + length(CAST(tbl AS BLOB)) + 80)
              OVER (ORDER BY tbl, pk, hlc, replica) AS bytes FROM changes
), over AS MATERIALIZED (
  SELECT tbl, pk FROM sized WHERE bytes > ?4 ORDER BY tbl, pk LIMIT 1
), sent AS MATERIALIZED (
  -- Whole keys only, up to the first one that goes over the bytes; that one alone
  -- when it is the first of the page.
  SELECT * FROM sized WHERE NOT EXISTS (SELECT 1 FROM over) OR (tbl, pk) < (SELECT tbl, pk FROM over)
     OR ((tbl, pk) = (SELECT tbl, pk FROM over)
         AND NOT EXISTS (SELECT 1 FROM sized s WHERE (s.tbl, s.pk) < (SELECT tbl, pk FROM over)))
), last AS (SELECT tbl, pk FROM sent ORDER BY tbl DESC, pk DESC LIMIT 1)
SELECT coalesce((SELECT json_group_array(json_array(0, replica, tbl, pk, CAST(hlc AS TEXT), json(cells), 1))
                 FROM (SELECT * FROM sent ORDER BY tbl, pk, hlc, replica)), '[]') AS page,
       (SELECT tbl FROM last) AS last_tbl,
       (SELECT pk FROM last) AS last_pk,
       (SELECT count(*) FROM sent) AS n,
       EXISTS (SELECT 1 FROM _edgesql_clock WHERE (tbl, pk) > (SELECT tbl, pk FROM last)) AS more
"""

#: Where the log stands: a snapshot starts here (its changes after this come from the log).
LOG_END = "SELECT coalesce(max(seq), 0) AS seq FROM _edgesql_changes"


def refresh_after_migration(schema: Schema) -> list[str]:
    """Make the primary's clock hold what its tables hold after a migration (idempotent).

    A migration may convert values (a REAL column rebuilt as TEXT), drop or add
    columns and rows; the clock still holds the values from before, and a later
    change would rebuild a row from them. So: cells of dropped tables and columns
    go; a cell whose value the migration changed takes the table's value, keeping
    its stamp (the change is the same change, migrated); a value the clock has no
    cell for gets one, stamped now by :data:`MIGRATION_REPLICA`, unless it is the
    column's default (a missing cell means the default everywhere); a row the
    migration removed is deleted, one it made exists. Then the horizon moves to the
    end of the log: replicas start again from a snapshot of this state.
    """
    now = f"({_NOW_MS} << 16)"
    mig = quote_text(MIGRATION_REPLICA)
    names = ", ".join(quote_text(t.name) for t in schema.tables) or "NULL"
    out = [f"DELETE FROM _edgesql_clock WHERE tbl NOT IN ({names})"]
    ex = quote_text(EXISTS)
    for t in schema.tables:
        tq, tl = quote_ident(t.name), quote_text(t.name)
        key = key_encode([f"r.{quote_ident(c)}" for c in t.pk])
        cols = ", ".join([quote_text(c.name) for c in t.value_columns] + [ex])
        out.append(f"DELETE FROM _edgesql_clock WHERE tbl = {tl} AND col NOT IN ({cols})")
        for c in t.value_columns:
            cq, cl = quote_ident(c.name), quote_text(c.name)
            out.append(
                f"UPDATE _edgesql_clock SET val = r.{cq} FROM {tq} r WHERE _edgesql_clock.tbl = {tl} "
                f"AND _edgesql_clock.pk = {key} AND _edgesql_clock.col = {cl} AND {differs('_edgesql_clock.val', f'r.{cq}')}"
            )
            # A missing cell means the column's default on every engine: only a value
            # that is not the default needs one.
            not_default = (
                f" AND {differs(f'r.{cq}', f'({c.default})')}"
                if c.default is not None
                else f" AND r.{cq} IS NOT NULL"
            )
            out.append(
                f"INSERT INTO _edgesql_clock (tbl, pk, col, hlc, replica, val) SELECT {tl}, {key}, {cl}, {now}, {mig}, r.{cq} "
                f"FROM {tq} r WHERE NOT EXISTS (SELECT 1 FROM _edgesql_clock k WHERE k.tbl = {tl} AND k.pk = {key} "
                f"AND k.col = {cl}){not_default}"
            )
        out.append(
            f"UPDATE _edgesql_clock SET val = 1 FROM {tq} r WHERE _edgesql_clock.tbl = {tl} "
            f"AND _edgesql_clock.pk = {key} AND _edgesql_clock.col = {ex} AND _edgesql_clock.val IS NOT 1"
        )
        out.append(
            f"INSERT INTO _edgesql_clock (tbl, pk, col, hlc, replica, val) SELECT {tl}, {key}, {ex}, {now}, {mig}, 1 "
            f"FROM {tq} r WHERE NOT EXISTS (SELECT 1 FROM _edgesql_clock k WHERE k.tbl = {tl} AND k.pk = {key} AND k.col = {ex})"
        )
        match = " AND ".join(
            f"r.{quote_ident(c)} = {key_decode('_edgesql_clock.pk', i)}" for i, c in enumerate(t.pk)
        )
        out.append(
            f"UPDATE _edgesql_clock SET val = 0 WHERE tbl = {tl} AND col = {ex} AND val IS 1 "
            f"AND NOT EXISTS (SELECT 1 FROM {tq} r WHERE {match})"
        )
    out.append(
        "INSERT OR REPLACE INTO _edgesql_horizon (id, seq) VALUES (1, (SELECT coalesce(max(seq), 0) FROM _edgesql_changes))"
    )
    return out


#: The primary's clock, as an HLC: replicas move theirs past it on every sync.
SERVER_HLC = f"SELECT CAST(({_NOW_MS} << 16) AS TEXT) AS hlc"
