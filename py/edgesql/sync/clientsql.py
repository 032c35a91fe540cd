"""The SQL a replica runs: capture triggers, the push page, acks, and applying pulls.

Generated once from the :class:`~edgesql.sync.schema.Schema` and shipped to
clients inside ``GET /schema``, so the browser worker (JavaScript) and the
CPython replica run exactly the same statements and decide nothing
themselves. See docs/sync.md for why each rule is there.

Tables (prefix ``_edgesql_``, never synced):

* ``state``   one row: replica id, clock floor, seq floor, cursor, ``applying``
* ``replica`` one row: the replica's key (its secret: the primary binds the id to it)
              and, while the replica takes a snapshot of the primary, where it stands
* ``outbox``  one row per changed row: key, HLC, the changed cells as JSON; ``txend``
              marks the last row of a transaction, so pages never cut one in half
* ``clock``   the winning (HLC, replica) and value of every cell that came from
              the primary (pulled, or our own once acknowledged)
* ``rejected`` writes the primary refused, with the reason
* ``sql``     the statement programs below, by name (read by the browser worker)

A local write is one extra INSERT (into ``outbox``); its stamps join the
clock when the primary acknowledges it. A pulled cell wins when its stamp
beats both the clock and any pending local write of that cell.
"""

from __future__ import annotations

import json

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
from .constraints import (
    CONFLICTS_DDL,
    GONE_DDL,
    conflicts_from_page,
    dangling,
    had_row,
    orphans_of_rejected,
    restrict_clearance,
    topological,
    unique_clearance,
)
from .schema import Schema, Table

__all__ = ["EXISTS", "MAX_CELLS_BYTES", "client_doc", "programs", "setup_sql", "triggers"]

#: The cell that says whether a row exists (1) or is deleted (0).
EXISTS = "_edgesql_exists"
ENC_ONE = '["i","1"]'
ENC_ZERO = '["i","0"]'
FORMAT = 1
#: D1 refuses a string, BLOB or row over 2,000,000 bytes; one change's cells (stored on
#: the primary as one TEXT) must stay under it, with room for the rest of its row.
#: A write whose change would be larger fails at once (see OUTBOX_SIZE_TRIGGER).
MAX_CELLS_BYTES = 1_900_000

_NOW = "(CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) << 16)"
_STAMP = (
    f"max({_NOW}, max((SELECT hlc FROM _edgesql_state WHERE id = 1), "
    "coalesce((SELECT hlc FROM _edgesql_outbox ORDER BY seq DESC LIMIT 1), 0)) + 1)"
)
# Outbox seqs are never reused, even after acknowledged rows are deleted:
# the primary would take a reused seq for a replay and drop the change. Every
# row left in the outbox is above the acknowledged ``rseq``, so the state is
# read only when the outbox is empty.
_SEQ = "coalesce((SELECT max(seq) FROM _edgesql_outbox), (SELECT rseq FROM _edgesql_state WHERE id = 1)) + 1"
_CAPTURING = "(SELECT applying FROM _edgesql_state WHERE id = 1) = 0"


# The winning cell of each (table, key, column) in the page being applied.
INBOX_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS _edgesql_pulled (tbl TEXT NOT NULL, pk TEXT NOT NULL, "
    "col TEXT NOT NULL, hlc INTEGER NOT NULL, replica TEXT NOT NULL, val TEXT NOT NULL, "
    "PRIMARY KEY (tbl, pk, col)) WITHOUT ROWID"
)
# This replica's latest pending write of each cell of the keys in that page: looked up
# once per page instead of once per cell (stamps grow with seq, so the latest also
# has the greatest stamp).
PENDING_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS _edgesql_pending (tbl TEXT NOT NULL, pk TEXT NOT NULL, "
    "col TEXT NOT NULL, hlc INTEGER NOT NULL, val TEXT NOT NULL, PRIMARY KEY (tbl, pk, col)) WITHOUT ROWID"
)


def setup_sql() -> list[str]:
    """Create the replica's own tables (idempotent)."""
    return [
        POW2_DDL,
        POW2_FILL,
        POW2_INDEX,
        "CREATE TABLE IF NOT EXISTS _edgesql_state (id INTEGER PRIMARY KEY CHECK (id = 1), "
        "replica TEXT NOT NULL, hlc INTEGER NOT NULL DEFAULT 0, rseq INTEGER NOT NULL DEFAULT 0, "
        "cursor INTEGER NOT NULL DEFAULT 0, applying INTEGER NOT NULL DEFAULT 0, "
        "schema_version INTEGER NOT NULL DEFAULT 0, format INTEGER NOT NULL DEFAULT 1, "
        "last_synced_at TEXT)",
        f"INSERT OR IGNORE INTO _edgesql_state (id, replica, format) VALUES (1, lower(hex(randomblob(16))), {FORMAT})",
        "CREATE TABLE IF NOT EXISTS _edgesql_outbox (seq INTEGER PRIMARY KEY, tbl TEXT NOT NULL, "
        "pk TEXT NOT NULL, hlc INTEGER NOT NULL, cells TEXT NOT NULL, txend INTEGER NOT NULL DEFAULT 0)",
        "CREATE INDEX IF NOT EXISTS _edgesql_outbox_row ON _edgesql_outbox (tbl, pk)",
        "CREATE TABLE IF NOT EXISTS _edgesql_clock (tbl TEXT NOT NULL, pk TEXT NOT NULL, col TEXT NOT NULL, "
        "hlc INTEGER NOT NULL, replica TEXT NOT NULL, val TEXT NOT NULL, PRIMARY KEY (tbl, pk, col)) WITHOUT ROWID",
        "CREATE TABLE IF NOT EXISTS _edgesql_rejected (seq INTEGER PRIMARY KEY, tbl TEXT NOT NULL, "
        "pk TEXT NOT NULL, hlc INTEGER NOT NULL, cells TEXT NOT NULL, code TEXT NOT NULL, "
        "reason TEXT NOT NULL, at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))",
        "CREATE TABLE IF NOT EXISTS _edgesql_sql (name TEXT PRIMARY KEY, sql TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS _edgesql_schema (version INTEGER PRIMARY KEY, doc TEXT NOT NULL)",
        # The key proves to the primary that this device owns its replica id (protocol v2);
        # snapshot: NULL while pulling the log, else where the snapshot being taken stands.
        "CREATE TABLE IF NOT EXISTS _edgesql_replica (id INTEGER PRIMARY KEY CHECK (id = 1), "
        "key TEXT NOT NULL, snapshot TEXT, user TEXT)",
        "INSERT OR IGNORE INTO _edgesql_replica (id, key) VALUES (1, lower(hex(randomblob(16))))",
        # With access rules: the bucket each row this replica holds is in (dropped with it).
        "CREATE TABLE IF NOT EXISTS _edgesql_rowbucket (tbl TEXT NOT NULL, pk TEXT NOT NULL, bucket TEXT, "
        "PRIMARY KEY (tbl, pk)) WITHOUT ROWID",
        "CREATE INDEX IF NOT EXISTS _edgesql_rowbucket_by_bucket ON _edgesql_rowbucket (bucket)",
        CONFLICTS_DDL,
        OUTBOX_SIZE_TRIGGER,
    ]


# A change the primary could never store fails the write that makes it, with what to do,
# instead of blocking the outbox later. A trigger, not a CHECK: a CHECK cannot be added
# to the outbox of a database made before it.
OUTBOX_SIZE_TRIGGER = (
    "CREATE TRIGGER IF NOT EXISTS _edgesql_outbox_size BEFORE INSERT ON _edgesql_outbox "
    f"WHEN length(CAST(NEW.cells AS BLOB)) > {MAX_CELLS_BYTES} BEGIN SELECT RAISE(ABORT, "
    "'edgesql: this write makes a change too large to sync: a synced row''s changed values may take at most "
    f"{MAX_CELLS_BYTES:,} bytes encoded (plain text counts once, BLOBs and text holding NUL twice, quotes "
    "and backslashes twice, other control characters six times): store large files elsewhere (and a "
    "reference here), or keep the table local (local_*)'); END"
)


def _cell(col: str, value_sql: str) -> str:
    return f"'{_json_key(col)}:' || {value_sql}"


def _json_key(col: str) -> str:
    # A JSON string for the column name, also safe inside an SQL string literal.
    return json.dumps(col, ensure_ascii=True).replace("'", "''")


def _key(t: Table, row: str, otherwise: str = "NULL") -> str:
    return key_encode([f"{row}.{quote_ident(c)}" for c in t.pk], otherwise)


def _changed(c: str) -> str:
    # Not just IS NOT: 1 -> 1.0, 0.0 -> -0.0, and 'a' -> 'A' under NOCASE compare equal
    # but are different values (codec.DIFFERS_DOC).
    q = quote_ident(c)
    return differs(f"NEW.{q}", f"OLD.{q}")


def triggers(t: Table) -> list[str]:
    """The AFTER INSERT/UPDATE/DELETE triggers that fill the outbox for table ``t``."""
    name = t.name
    tq = quote_ident(name)
    tl = quote_text(name)
    trig = name.replace('"', "")
    # A REAL or NULL key aborts the write: the check sits in the key's own CASE, an extra
    # statement in the trigger would cost a third of the capture.
    bad_key = f"RAISE(ABORT, {quote_text(f'edgesql: the primary key of {name} must be an INTEGER, TEXT or BLOB value, not NULL or REAL')})"
    every = " || ',' || ".join(
        [_cell(c.name, encode(f"NEW.{quote_ident(c.name)}")) for c in t.value_columns]
        + [f"'{_json_key(EXISTS)}:{ENC_ONE}'"]
    )
    insert_row = (
        f"INSERT INTO _edgesql_outbox (seq, tbl, pk, hlc, cells) VALUES "
        f"({_SEQ}, {tl}, {_key(t, 'NEW', bad_key)}, {_STAMP}, '{{' || {every} || '}}');"
    )
    delete_old = (
        f"INSERT INTO _edgesql_outbox (seq, tbl, pk, hlc, cells) VALUES "
        f"({_SEQ}, {tl}, {_key(t, 'OLD')}, {_STAMP}, '{{{_json_key(EXISTS)}:{ENC_ZERO}}}');"
    )
    out = [
        f'CREATE TRIGGER "_edgesql_{trig}_ins" AFTER INSERT ON {tq} WHEN {_CAPTURING} BEGIN {insert_row} END',
        f'CREATE TRIGGER "_edgesql_{trig}_del" AFTER DELETE ON {tq} WHEN {_CAPTURING} BEGIN {delete_old} END',
        # A new key is a delete of the old row and an insert of the new one.
        f'CREATE TRIGGER "_edgesql_{trig}_rekey" AFTER UPDATE ON {tq} '
        f"WHEN {_CAPTURING} AND {_key(t, 'NEW')} IS NOT {_key(t, 'OLD')} "
        f"BEGIN {delete_old} {insert_row} END",
    ]
    if t.value_columns:
        changed = " || ".join(
            f"CASE WHEN {_changed(c.name)} THEN {_cell(c.name, encode(f'NEW.{quote_ident(c.name)}'))} || ',' ELSE '' END"
            for c in t.value_columns
        )
        any_changed = " OR ".join(_changed(c.name) for c in t.value_columns)
        out.append(
            f'CREATE TRIGGER "_edgesql_{trig}_upd" AFTER UPDATE ON {tq} '
            f"WHEN {_CAPTURING} AND {_key(t, 'NEW')} IS {_key(t, 'OLD')} AND ({any_changed}) BEGIN "
            f"INSERT INTO _edgesql_outbox (seq, tbl, pk, hlc, cells) VALUES "
            f"({_SEQ}, {tl}, {_key(t, 'NEW')}, {_STAMP}, '{{' || rtrim({changed}, ',') || '}}'); END"
        )
    return out


# -- programs: named statement lists run by the sync driver (JS or Python) ------------------

#: Marks the last outbox row of a committing transaction; run just before COMMIT.
TXEND = (
    "UPDATE _edgesql_outbox SET txend = 1 WHERE seq = (SELECT max(seq) FROM _edgesql_outbox) AND txend = 0"
)

#: The next page to push: changes after :after, up to :limit rows and about :bytes
#: bytes, cut at the end of a transaction when one ends inside the page.
PUSH_PAGE = """
WITH page AS (
  SELECT seq, tbl, pk, hlc, cells, txend,
         sum(length(CAST(cells AS BLOB)) + length(pk) + length(CAST(tbl AS BLOB)) + 48) OVER (ORDER BY seq) AS bytes
  FROM _edgesql_outbox WHERE seq > :after ORDER BY seq LIMIT :limit
), cut AS (
  SELECT coalesce((SELECT max(seq) FROM page WHERE txend = 1 AND bytes <= :bytes),
                  (SELECT max(seq) FROM page WHERE bytes <= :bytes),
                  (SELECT min(seq) FROM page)) AS upto
)
SELECT coalesce(json_group_array(json_array(seq, tbl, pk, CAST(hlc AS TEXT), json(cells), txend)), '[]'),
       max(seq), count(*),
       -- Changes the primary would refuse for their size (made before writes were checked):
       -- the driver rejects them here (reject_local) and asks for the page again.
       (SELECT json_group_array(seq) FROM page WHERE length(CAST(cells AS BLOB)) > :max_cells)
FROM (SELECT * FROM page, cut WHERE seq <= upto ORDER BY seq)
"""

#: The request body (protocol v2) around a page from PUSH_PAGE. Params :page, :limit, and
#: for a request sent ahead (while the page before it is applied) :cursor and :snapshot,
#: the state it will be sent from (NULL: as stored now).
REQUEST = """
SELECT '{"v":2,"replica":"' || s.replica || '","key":"' || r.key || '","schema":' || s.schema_version
       || ',"cursor":' || coalesce(:cursor, s.cursor)
       || ',"high":' || max(s.rseq, coalesce((SELECT max(seq) FROM _edgesql_outbox), 0))
       || ',"limit":' || :limit
       || CASE WHEN p.snap IS NULL THEN '' ELSE ',"snapshot":' || json_object('at', p.snap ->> '$.at',
               'tbl', p.snap ->> '$.tbl', 'pk', p.snap ->> '$.pk', 'bucket', coalesce(p.snap ->> '$.bucket', '')) END
       || ',"changes":' || :page || '}'
FROM _edgesql_state s, _edgesql_replica r, (SELECT coalesce(:snapshot, (SELECT snapshot FROM _edgesql_replica WHERE id = 1)) AS snap) p
WHERE s.id = 1 AND r.id = 1
"""

STATUS = """
SELECT replica, (SELECT count(*) FROM _edgesql_outbox), cursor, schema_version, last_synced_at, CAST(hlc AS TEXT),
       (SELECT count(*) FROM _edgesql_rejected)
FROM _edgesql_state WHERE id = 1
"""


def _rematerialize(t: Table, keys_sql: str) -> list[str]:
    """Rebuild rows of ``t`` whose keys ``keys_sql`` selects from the clock plus pending writes.

    Used after the primary rejects a write: the row goes back to what the
    primary has, with this replica's still-pending writes on top.
    """
    tq = quote_ident(t.name)
    tl = quote_text(t.name)

    def effective(col: str, k: str) -> str:
        c = quote_text(col)
        return (
            f"coalesce((SELECT j.value FROM _edgesql_outbox o, json_each(o.cells) j "
            f"WHERE o.tbl = {tl} AND o.pk = {k} AND j.key = {c} ORDER BY o.seq DESC LIMIT 1), "
            f"(SELECT val FROM _edgesql_clock WHERE tbl = {tl} AND pk = {k} AND col = {c}))"
        )

    pkcols = ", ".join(quote_ident(c) for c in t.pk)
    pk_tuple = f"({pkcols})" if len(t.pk) > 1 else pkcols
    decoded = ", ".join(key_decode("r.k", n) for n in range(len(t.pk)))
    cols = ", ".join(quote_ident(c.name) for c in t.columns)
    values = ", ".join(
        key_decode("r.k", t.pk.index(c.name))
        if c.name in t.pk
        else _decode_or_default(effective(c.name, "r.k"), c.default)
        for c in t.columns
    )
    return [
        f"DELETE FROM {tq} WHERE {pk_tuple} IN (SELECT {decoded} FROM ({keys_sql}) r "
        f"WHERE {effective(EXISTS, 'r.k')} IS NOT '{ENC_ONE}')",
        f"INSERT OR REPLACE INTO {tq} ({cols}) SELECT {values} FROM ({keys_sql}) r "
        f"WHERE {effective(EXISTS, 'r.k')} IS '{ENC_ONE}'",
    ]


def _pk_match(t: Table, k: str) -> str:
    return " AND ".join(
        f"{quote_ident(t.name)}.{quote_ident(c)} IS {key_decode(k, i)}" for i, c in enumerate(t.pk)
    )


def _decode_or_default(enc_sql: str, default: str | None) -> str:
    # No cell (NULL here) means the column's default, as on the primary; a cell holding
    # NULL (["n"]) is NULL, default or not.
    d = decode(enc_sql)
    return f"CASE WHEN {enc_sql} IS NULL THEN {default} ELSE {d} END" if default is not None else d


def pivot(t: Table, source: str, where: str, cols: list[str], group_by_pk: bool) -> str:
    """A subquery turning cell rows (``col``, ``val``) of ``source`` into one row per key.

    Aggregating keeps SQLite from flattening it, so each cell is looked up
    once, not once per mention in the decoding expression.
    """
    picks = ", ".join(f"max(CASE WHEN col = {quote_text(c)} THEN val END) AS {quote_ident(c)}" for c in cols)
    head = "pk, " if group_by_pk else ""
    tail = " GROUP BY pk" if group_by_pk else ""
    return f"(SELECT {head}{picks} FROM {source} WHERE {where}{tail})"


def _apply_table(t: Table, schema: Schema | None = None) -> list[str]:
    """Materialize the winning cells now in ``_edgesql_pulled`` into table ``t``.

    With ``schema`` (a schema with foreign keys or UNIQUEs), this device's rows that the
    page leaves no room for are rejected first (constraints.py)."""
    tq = quote_ident(t.name)
    tl = quote_text(t.name)
    pkcols = ", ".join(quote_ident(c) for c in t.pk)
    pk_tuple = f"({pkcols})" if len(t.pk) > 1 else pkcols
    exists_col = quote_text(EXISTS)

    def keys(where: str) -> str:
        cols = ", ".join(key_decode("i.pk", n) for n in range(len(t.pk)))
        return f"SELECT {cols} FROM temp._edgesql_pulled i WHERE i.tbl = {tl} AND {where}"

    value_names = [c.name for c in t.value_columns]
    cols = ", ".join(quote_ident(c.name) for c in t.columns)

    def winning(col: str) -> str:
        # The cell as the clock now has it: this page's winning cell (which the clock just
        # took), else the clock's from before. Or this replica's pending write of it where
        # that is newer: a row rebuilt from the clock (deleted by one pulled page, inserted
        # again by a later one) must keep the writes not pushed yet, or it stays behind the
        # primary for good.
        c = quote_text(col)
        # (The uncorrelated check runs once: with nothing pending, no lookups per cell.)
        pending = (
            f"CASE WHEN (SELECT 1 FROM temp._edgesql_pending LIMIT 1) THEN "
            f"(SELECT p.val FROM temp._edgesql_pending p WHERE p.tbl = {tl} AND p.pk = w.pk AND p.col = {c} "
            f"AND NOT EXISTS (SELECT 1 FROM _edgesql_clock k WHERE k.tbl = {tl} AND k.pk = w.pk "
            f"AND k.col = {c} AND (k.hlc, k.replica) >= (p.hlc, :me))) END"
        )
        clock = f"(SELECT val FROM _edgesql_clock WHERE tbl = {tl} AND pk = w.pk AND col = {c})"
        return f"coalesce({pending}, w.{quote_ident(col)}, {clock}) AS {quote_ident(col)}"

    # Each row's winning cells are found once (MATERIALIZED), then decoded: decoding reads a
    # cell up to three times, and inlined that would repeat the lookups.
    values = ", ".join(
        key_decode("w.pk", t.pk.index(c.name))
        if c.name in t.pk
        else _decode_or_default(f"w.{quote_ident(c.name)}", c.default)
        for c in t.columns
    )
    # New rows: the keys whose winning cell in this page is an insert, one row per key
    # with this page's winning cells (the in-memory inbox, not the clock on disk).
    new_keys = f"SELECT pk FROM temp._edgesql_pulled WHERE tbl = {tl} AND col = {exists_col} AND val = {quote_text(ENC_ONE)}"
    new_rows = (
        pivot(t, "temp._edgesql_pulled", f"tbl = {tl} AND pk IN ({new_keys})", value_names, True)
        if value_names
        else f"({new_keys})"
    )
    out = [
        *(restrict_clearance(schema, t, _rematerialize) if schema is not None else []),
        # A winning delete removes the row; its values stay in the clock.
        f"DELETE FROM {tq} WHERE {pk_tuple} IN ({keys(f'i.col = {exists_col} AND i.val = {quote_text(ENC_ZERO)}')})",
        *(unique_clearance(t, _rematerialize) if schema is not None else []),
    ]
    if value_names:
        # Each winning cell of a row that exists: only those columns change, so
        # this replica's pending writes to other columns stay as they are.
        cells = pivot(t, "temp._edgesql_pulled", f"tbl = {tl} AND col != {exists_col}", value_names, True)
        # Keys this replica has a row for (an initial pull has none: skip it all).
        cells = cells[:-1] + f" HAVING EXISTS (SELECT 1 FROM {tq} WHERE {_pk_match(t, 'pk')}))"
        sets = ", ".join(
            f"{quote_ident(c)} = CASE WHEN w.{quote_ident(c)} IS NULL THEN {tq}.{quote_ident(c)} "
            f"ELSE {decode(f'w.{quote_ident(c)}')} END"
            for c in value_names
        )
        out.append(f"UPDATE {tq} SET {sets} FROM {cells} w WHERE {_pk_match(t, 'w.pk')}")
    picks = ", ".join(["w.pk"] + [winning(c) for c in value_names])
    out.append(
        # A winning insert of a row this replica does not have: build it from the
        # cells as the clock now has them (see winning). After the UPDATE, which so
        # only touches rows that were already here.
        f"WITH w AS MATERIALIZED (SELECT {picks} FROM {new_rows} w "
        f"WHERE NOT EXISTS (SELECT 1 FROM {tq} WHERE {_pk_match(t, 'w.pk')})) "
        f"INSERT INTO {tq} ({cols}) SELECT {values} FROM w WHERE true"
    )
    return out


def programs(schema: Schema) -> dict[str, list[str]]:
    """Named statement lists the sync driver runs, each inside one transaction.

    * ``apply``  params :page (JSON array of pulled changes), :cursor, :me
    * ``apply_jsonb`` the same, faster, for SQLite 3.45 and later (JSONB)
    * ``apply_stage`` then ``apply_final``: ``apply_jsonb`` in two transactions; the
                 first only fills the connection's TEMP inbox (params :page), so
                 the app's queries may run between them (params :cursor, :me)
    * ``ack``    params :acked (highest seq the primary answered for), :rejected
                 (JSON array of {"seq", "code", "reason"}), :server_hlc
    * ``rotate`` param :replica — a restored or cloned database takes a new id
    """

    # Each change's fields are read once (MATERIALIZED), not once per cell; of
    # several stamps for one cell in the page only the greatest stays.
    def inbox_fill(each: str, cells: str, val: str) -> str:
        return (
            "WITH x AS MATERIALIZED (SELECT c.value ->> '$[2]' AS tbl, c.value ->> '$[3]' AS pk, "
            f"CAST(c.value ->> '$[4]' AS INTEGER) AS hlc, c.value ->> '$[1]' AS replica, {cells} AS cells "
            f"FROM {each}(:page) c) "
            "INSERT INTO temp._edgesql_pulled (tbl, pk, col, hlc, replica, val) "
            f"SELECT x.tbl, x.pk, j.key, x.hlc, x.replica, {val} FROM x, {each}(x.cells) j WHERE true "
            "ON CONFLICT (tbl, pk, col) DO UPDATE SET hlc = excluded.hlc, replica = excluded.replica, val = excluded.val "
            "WHERE (excluded.hlc, excluded.replica) > (_edgesql_pulled.hlc, _edgesql_pulled.replica)"
        )

    portable_fill = inbox_fill("json_each", "c.value -> '$[5]'", "j.value")
    # SQLite 3.45+ (the browser's): the page parsed once into JSONB, not once per field.
    jsonb_fill = inbox_fill("jsonb_each", "jsonb_extract(c.value, '$[5]')", "json(j.value)")

    def stage(fill: str) -> list[str]:
        # Only the connection's TEMP inbox changes here, nothing the app can see, so the
        # browser worker runs this apart from the rest, with a turn for queries between.
        # The clock only moves by this sync's own programs, which run one at a time.
        return [
            # The inbox is a TEMP table (per connection, in memory): create it on first use.
            INBOX_DDL,
            "DELETE FROM temp._edgesql_pulled",
            fill,
            # A pulled cell loses to the clock's stamp...
            "DELETE FROM temp._edgesql_pulled WHERE EXISTS (SELECT 1 FROM _edgesql_clock k "
            "WHERE k.tbl = _edgesql_pulled.tbl AND k.pk = _edgesql_pulled.pk AND k.col = _edgesql_pulled.col "
            "AND (k.hlc, k.replica) >= (_edgesql_pulled.hlc, _edgesql_pulled.replica))",
        ]

    final = [
        INBOX_DDL,
        PENDING_DDL,
        "UPDATE _edgesql_state SET applying = 1 WHERE id = 1",
        "DELETE FROM temp._edgesql_pending",
        # Receiving a stamp moves this replica's clock past it (else a replica with a
        # slow clock would stamp its next write below what it just saw). Of several
        # stamps for one cell the inbox keeps the greatest; those the clock beat are
        # below it, and so below this replica's clock already.
        "UPDATE _edgesql_state SET hlc = max(hlc, coalesce((SELECT max(hlc) FROM temp._edgesql_pulled), 0)) WHERE id = 1",
        # ...and to a pending local write of the same cell with a greater stamp (read here,
        # in the transaction that applies: the app may have written since the stage).
        "INSERT INTO temp._edgesql_pending (tbl, pk, col, hlc, val) "
        "SELECT o.tbl, o.pk, j.key, o.hlc, j.value FROM _edgesql_outbox o, json_each(o.cells) j "
        "WHERE (SELECT 1 FROM _edgesql_outbox LIMIT 1) AND (o.tbl, o.pk) IN (SELECT tbl, pk FROM temp._edgesql_pulled) ORDER BY o.seq "
        "ON CONFLICT (tbl, pk, col) DO UPDATE SET hlc = excluded.hlc, val = excluded.val",
        # The clock still takes such a cell: it is the primary's value, which the row goes back
        # to if the primary refuses the pending write (a stamp from the future, a constraint).
        "INSERT INTO _edgesql_clock (tbl, pk, col, hlc, replica, val) "
        "SELECT i.tbl, i.pk, i.col, i.hlc, i.replica, i.val FROM temp._edgesql_pulled i "
        "WHERE EXISTS (SELECT 1 FROM temp._edgesql_pending p WHERE p.tbl = i.tbl AND p.pk = i.pk AND p.col = i.col "
        "AND (p.hlc, :me) >= (i.hlc, i.replica)) "
        "ON CONFLICT (tbl, pk, col) DO UPDATE SET hlc = excluded.hlc, replica = excluded.replica, val = excluded.val",
        "DELETE FROM temp._edgesql_pulled WHERE EXISTS (SELECT 1 FROM temp._edgesql_pending p "
        "WHERE p.tbl = _edgesql_pulled.tbl AND p.pk = _edgesql_pulled.pk AND p.col = _edgesql_pulled.col "
        "AND (p.hlc, :me) >= (_edgesql_pulled.hlc, _edgesql_pulled.replica))",
        # This device's edits the page beats, for the app to show (constraints.py).
        *conflicts_from_page(),
        "INSERT INTO _edgesql_clock (tbl, pk, col, hlc, replica, val) "
        "SELECT tbl, pk, col, hlc, replica, val FROM temp._edgesql_pulled WHERE true "
        "ON CONFLICT (tbl, pk, col) DO UPDATE SET hlc = excluded.hlc, replica = excluded.replica, val = excluded.val",
    ]
    constrained = any(t.fks or t.uniques for t in schema.tables)
    if schema.access is not None:
        # Rows that left this user's buckets go first (uncaptured), unless the page brings
        # them back later; then each pulled row's bucket is remembered.
        final[3:3] = _exits(schema)
    if constrained:
        # Foreign keys are checked when the page is applied whole, not row by row (a child may
        # come before its parent); this device's rows the page leaves no room for go (constraints.py).
        final[3:3] = ["PRAGMA defer_foreign_keys = ON", GONE_DDL, "DELETE FROM temp._edgesql_gone"]
    for t in schema.tables:
        final.extend(_apply_table(t, schema if constrained else None))
    if constrained:
        final.extend(dangling(schema, _rematerialize))
    if schema.access is not None:
        final.append(
            "INSERT OR REPLACE INTO _edgesql_rowbucket (tbl, pk, bucket) SELECT value ->> '$[2]', value ->> '$[3]', "
            "value ->> '$[7]' FROM json_each(:page) WHERE json_type(value, '$[7]') = 'text'"
        )
    final += [
        "UPDATE _edgesql_state SET applying = 0, cursor = max(cursor, :cursor) WHERE id = 1",
        "DELETE FROM temp._edgesql_pulled",
        "DELETE FROM temp._edgesql_pending",
    ]

    rejected_seqs = "SELECT value ->> '$.seq' FROM json_each(:rejected)"
    rejected_keys = (
        f"SELECT o.tbl AS tbl, o.pk AS k FROM _edgesql_rejected o WHERE o.seq IN ({rejected_seqs})"
    )

    # Refused changes leave the outbox for _edgesql_rejected (with their cells, so nothing is
    # lost silently), and their rows are rebuilt from the clock and the writes left.
    to_rejected = (
        "INSERT OR REPLACE INTO _edgesql_rejected (seq, tbl, pk, hlc, cells, code, reason) "
        "SELECT o.seq, o.tbl, o.pk, o.hlc, o.cells, r.value ->> '$.code', r.value ->> '$.reason' "
        "FROM json_each(:rejected) r JOIN _edgesql_outbox o ON o.seq = r.value ->> '$.seq'"
    )
    conflict_rejected = (
        "INSERT INTO _edgesql_conflicts (kind, tbl, pk, reason, row) "
        "SELECT 'rejected', o.tbl, o.pk, (r.value ->> '$.code') || ': ' || (r.value ->> '$.reason'), "
        f"{had_row('o.tbl', 'o.pk', 'o.cells')} "
        "FROM json_each(:rejected) r JOIN _edgesql_outbox o ON o.seq = r.value ->> '$.seq'"
    )
    constrained = any(t.fks or t.uniques for t in schema.tables)
    orphans = (
        [
            "PRAGMA defer_foreign_keys = ON",
            GONE_DDL,
            "DELETE FROM temp._edgesql_gone",
            *orphans_of_rejected(schema, rejected_keys, _rematerialize),
        ]
        if constrained
        else []
    )
    rebuild_rejected = [
        sql
        for t in schema.tables
        for sql in _rematerialize(t, f"SELECT k FROM ({rejected_keys}) WHERE tbl = {quote_text(t.name)}")
    ]
    ack = [
        "UPDATE _edgesql_state SET applying = 1 WHERE id = 1",
        conflict_rejected,
        to_rejected,
        # Our acknowledged writes join the clock: from now on they compete like any other.
        # (Refused ones do not, and neither does their stamp: a device whose clock ran
        # ahead must be able to write again once its clock is fixed.)
        "INSERT INTO _edgesql_clock (tbl, pk, col, hlc, replica, val) "
        "SELECT o.tbl, o.pk, j.key, o.hlc, (SELECT replica FROM _edgesql_state WHERE id = 1), j.value "
        "FROM _edgesql_outbox o, json_each(o.cells) j WHERE o.seq <= :acked "
        f"AND o.seq NOT IN ({rejected_seqs}) ORDER BY o.seq "
        "ON CONFLICT (tbl, pk, col) DO UPDATE SET hlc = excluded.hlc, replica = excluded.replica, val = excluded.val "
        "WHERE (excluded.hlc, excluded.replica) > (_edgesql_clock.hlc, _edgesql_clock.replica)",
        "UPDATE _edgesql_state SET rseq = max(rseq, :acked), "
        "hlc = max(hlc, coalesce((SELECT max(hlc) FROM _edgesql_outbox WHERE seq <= :acked "
        f"AND seq NOT IN ({rejected_seqs})), 0), CAST(:server_hlc AS INTEGER)), "
        "last_synced_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = 1",
        f"DELETE FROM _edgesql_outbox WHERE seq <= :acked OR seq IN ({rejected_seqs})",
        *orphans,
        *rebuild_rejected,
        # With access rules: the buckets the primary put this device's rows in (params
        # :buckets, [[table, key, bucket], ...]), so that they go when the bucket does.
        "INSERT OR REPLACE INTO _edgesql_rowbucket (tbl, pk, bucket) SELECT value ->> '$[0]', value ->> '$[1]', "
        "value ->> '$[2]' FROM json_each(:buckets)",
        "UPDATE _edgesql_state SET applying = 0 WHERE id = 1",
    ]
    reject_local = [
        "UPDATE _edgesql_state SET applying = 1 WHERE id = 1",
        conflict_rejected,
        to_rejected,
        f"DELETE FROM _edgesql_outbox WHERE seq IN ({rejected_seqs})",
        *orphans,
        *rebuild_rejected,
        "UPDATE _edgesql_state SET applying = 0 WHERE id = 1",
    ]

    # -- snapshots: the replica takes the primary's state instead of replaying its log ----
    sweep = []
    for t in schema.tables:
        tq, tl = quote_ident(t.name), quote_text(t.name)
        key = _key(t, tq)
        # A row the snapshot did not bring, and no pending write of this device made: the
        # primary does not have it (a row only the local migration made, one deleted while
        # the clock was being rebuilt). It goes, uncaptured.
        sweep.append(
            f"DELETE FROM {tq} WHERE {key} NOT IN (SELECT pk FROM _edgesql_clock WHERE tbl = {tl} "
            f"AND col = {quote_text(EXISTS)} AND val = {quote_text(ENC_ONE)}) "
            f"AND {key} NOT IN (SELECT pk FROM _edgesql_outbox WHERE tbl = {tl})"
        )
    snapshots = {
        # Start again from the primary's state: the clock is rebuilt from the snapshot (a
        # migration may have changed values under unchanged stamps). Rows stay as they
        # are until the snapshot's cells replace them, so the app keeps its data meanwhile.
        "begin_snapshot": [
            "DELETE FROM _edgesql_clock",
            "DELETE FROM _edgesql_rowbucket",
            "UPDATE _edgesql_state SET cursor = 0 WHERE id = 1",
            'UPDATE _edgesql_replica SET snapshot = \'{"at":null,"tbl":"","pk":"","bucket":"","full":true}\' WHERE id = 1',
        ],
        # Params :snapshot, the answer's position ({"at", "tbl", "pk", "done", "bucket", "full"}).
        # Whether it is full (the clock was cleared, rows the snapshot does not bring go at
        # the end) was decided when it began, and stays.
        "snapshot_position": [
            "UPDATE _edgesql_replica SET snapshot = json_object('at', :snapshot ->> '$.at', "
            "'tbl', :snapshot ->> '$.tbl', 'pk', :snapshot ->> '$.pk', 'bucket', coalesce(:snapshot ->> '$.bucket', ''), "
            "'full', json(CASE WHEN coalesce(snapshot ->> '$.full', :snapshot ->> '$.full', 1) THEN 'true' ELSE 'false' END)) "
            "WHERE id = 1",
        ],
        # Params :cursor, where the log continues.
        "snapshot_done": [
            "UPDATE _edgesql_state SET applying = 1 WHERE id = 1",
            *(
                f"{sql} AND (SELECT coalesce(snapshot ->> '$.full', 1) FROM _edgesql_replica WHERE id = 1)"
                for sql in sweep
            ),
            "UPDATE _edgesql_replica SET snapshot = NULL WHERE id = 1",
            "UPDATE _edgesql_state SET applying = 0, cursor = :cursor WHERE id = 1",
        ],
    }

    # -- migrating: offline writes meet the new schema ------------------------------------
    known = {t.name: [c.name for c in t.value_columns] + [EXISTS] for t in schema.tables}
    names = ", ".join(quote_text(n) for n in known) or "NULL"
    prune = [
        # Changes to a table the new schema no longer syncs cannot be sent anywhere.
        "INSERT OR REPLACE INTO _edgesql_rejected (seq, tbl, pk, hlc, cells, code, reason) "
        f"SELECT seq, tbl, pk, hlc, cells, 'unknown_table', 'schema version ' || :version || "
        f"' no longer syncs table ' || quote(tbl) FROM _edgesql_outbox WHERE tbl NOT IN ({names})",
        f"DELETE FROM _edgesql_outbox WHERE tbl NOT IN ({names})",
    ]
    for name, cols in known.items():
        listed = ", ".join(quote_text(c) for c in cols)
        # Cells of dropped columns go; the values of the columns that remain still sync.
        prune.append(
            "UPDATE _edgesql_outbox SET cells = (SELECT json_group_object(j.key, json(j.value)) FROM json_each(cells) j "
            f"WHERE j.key IN ({listed})) WHERE tbl = {quote_text(name)} "
            f"AND EXISTS (SELECT 1 FROM json_each(cells) j WHERE j.key NOT IN ({listed}))"
        )
    prune.append("DELETE FROM _edgesql_outbox WHERE cells = '{}'")
    normalize = []
    for t in schema.tables:
        tq, tl = quote_ident(t.name), quote_text(t.name)
        if not t.value_columns:
            continue
        cases = " ".join(
            f"WHEN {quote_text(c.name)} THEN {encode(f'r.{quote_ident(c.name)}')}" for c in t.value_columns
        )
        # A pending value the migration converted locally (REAL to TEXT...) is sent as
        # this device now holds it, so the primary stores the same value.
        normalize.append(
            "UPDATE _edgesql_outbox SET cells = (SELECT json_group_object(j.key, json(CASE j.key "
            f"{cases} ELSE j.value END)) FROM json_each(_edgesql_outbox.cells) j, {tq} r "
            f"WHERE {_pk_match_alias(t, 'r', '_edgesql_outbox.pk')}) "
            f"WHERE tbl = {tl} AND EXISTS (SELECT 1 FROM {tq} r WHERE {_pk_match_alias(t, 'r', '_edgesql_outbox.pk')})"
        )
    pending_keys = "SELECT DISTINCT tbl AS tbl, pk AS k FROM _edgesql_outbox"
    rebuild: list[str] = ["UPDATE _edgesql_state SET applying = 1 WHERE id = 1"]
    rebuild_key: list[str] = ["UPDATE _edgesql_state SET applying = 1 WHERE id = 1"]
    for t in schema.tables:
        tl = quote_text(t.name)
        rebuild.extend(_rematerialize(t, f"SELECT k FROM ({pending_keys}) WHERE tbl = {tl}"))
        rebuild_key.extend(_rematerialize(t, f"SELECT :pk AS k WHERE :tbl = {tl}"))
    rebuild.append("UPDATE _edgesql_state SET applying = 0 WHERE id = 1")
    rebuild_key.append("UPDATE _edgesql_state SET applying = 0 WHERE id = 1")
    migrating = {
        # Params :version.
        "prune": prune,
        "normalize": normalize,
        # Every row with pending writes, from the clock and those writes (all at once, or
        # key by key to find the ones the new schema refuses).
        "rebuild": rebuild,
        "pending_keys": [pending_keys],
        "rebuild_key": rebuild_key,
        # Params :tbl, :pk, :code, :reason: this device's pending writes to one row go to
        # _edgesql_rejected (the new schema refuses them).
        "reject_key": [
            "INSERT OR REPLACE INTO _edgesql_rejected (seq, tbl, pk, hlc, cells, code, reason) "
            "SELECT seq, tbl, pk, hlc, cells, :code, :reason FROM _edgesql_outbox WHERE tbl = :tbl AND pk = :pk",
            "DELETE FROM _edgesql_outbox WHERE tbl = :tbl AND pk = :pk",
        ],
    }
    return {
        "apply": stage(portable_fill) + final,
        "apply_jsonb": stage(jsonb_fill) + final,
        "apply_stage": stage(jsonb_fill),
        "apply_final": final,
        "ack": ack,
        # Params :rejected: changes this device cannot send (too large, not UTF-8).
        "reject_local": reject_local,
        "push_page": [PUSH_PAGE],
        "request": [REQUEST],
        "txend": [TXEND],
        "status": [STATUS],
        # A restored or cloned database (or one whose id another device owns) takes a new
        # id and a new key.
        "rotate": [
            "UPDATE _edgesql_state SET replica = lower(hex(randomblob(16))) WHERE id = 1",
            "UPDATE _edgesql_replica SET key = lower(hex(randomblob(16))) WHERE id = 1",
        ],
        **snapshots,
        **migrating,
        # Params :buckets: the buckets this user lost (the answer's "drop").
        "drop_buckets": _drop_buckets(schema) if schema.access is not None else [],
        # Another user signed in on this device: the previous user's rows go (not captured),
        # their pending writes land in _edgesql_rejected ("signed_out", nothing silently lost),
        # and the database starts as a new replica. Params :user, the new user.
        "reset_user": [
            "UPDATE _edgesql_state SET applying = 1 WHERE id = 1",
            "INSERT OR REPLACE INTO _edgesql_rejected (seq, tbl, pk, hlc, cells, code, reason) "
            "SELECT seq, tbl, pk, hlc, cells, 'signed_out', 'written by ' || coalesce(quote((SELECT user FROM "
            "_edgesql_replica WHERE id = 1)), 'another user') || ', who signed out of this device before it synced' "
            "FROM _edgesql_outbox",
            "DELETE FROM _edgesql_outbox",
            "PRAGMA defer_foreign_keys = ON",
            *(f"DELETE FROM {quote_ident(t.name)}" for t in reversed(topological(schema))),
            "DELETE FROM _edgesql_clock",
            "DELETE FROM _edgesql_rowbucket",
            "DELETE FROM _edgesql_conflicts",
            "UPDATE _edgesql_state SET replica = lower(hex(randomblob(16))), cursor = 0, applying = 0 WHERE id = 1",
            "UPDATE _edgesql_replica SET key = lower(hex(randomblob(16))), snapshot = NULL, user = :user WHERE id = 1",
        ],
        # Params :user: who this replica's data belongs to (set when a user first syncs).
        "set_user": ["UPDATE _edgesql_replica SET user = :user WHERE id = 1"],
    }


def _exits(schema: Schema) -> list[str]:
    """The statements that drop the rows a page says left this user's buckets."""
    exits = (
        "SELECT e.value ->> '$[2]' AS tbl, e.value ->> '$[3]' AS pk FROM json_each(:page) e "
        "WHERE json_type(e.value, '$[7]') = 'null' AND e.value ->> '$[1]' = '' AND NOT EXISTS ("
        "SELECT 1 FROM json_each(:page) l WHERE l.key > e.key AND l.value ->> '$[2]' = e.value ->> '$[2]' "
        "AND l.value ->> '$[3]' = e.value ->> '$[3]' AND json_type(l.value, '$[7]') = 'text')"
    )
    out = []
    for t in reversed(topological(schema)):  # children first: RESTRICT refuses at once
        out.append(_drop_rows(t, f"SELECT pk FROM ({exits}) WHERE tbl = {quote_text(t.name)}"))
    out += [
        f"DELETE FROM _edgesql_clock WHERE (tbl, pk) IN ({exits})",
        f"DELETE FROM temp._edgesql_pulled WHERE (tbl, pk) IN ({exits})",
        f"DELETE FROM _edgesql_rowbucket WHERE (tbl, pk) IN ({exits})",
    ]
    return out


def _drop_rows(t: Table, keys_sql: str) -> str:
    """Delete the rows of ``t`` whose keys ``keys_sql`` selects (as SQL, not captured)."""
    pkcols = ", ".join(quote_ident(c) for c in t.pk)
    pk_tuple = f"({pkcols})" if len(t.pk) > 1 else pkcols
    decoded = ", ".join(key_decode("k.pk", n) for n in range(len(t.pk)))
    return f"DELETE FROM {quote_ident(t.name)} WHERE {pk_tuple} IN (SELECT {decoded} FROM ({keys_sql}) k)"


def _drop_buckets(schema: Schema) -> list[str]:
    """The program that forgets buckets this user lost (params :buckets, a JSON array):
    their rows go from this device (not captured), this device's pending writes to them
    are rejected, and so are their cells in the clock."""
    lost = "SELECT tbl, pk, bucket FROM _edgesql_rowbucket WHERE bucket IN (SELECT value FROM json_each(:buckets))"
    out = [
        "UPDATE _edgesql_state SET applying = 1 WHERE id = 1",
        "INSERT OR REPLACE INTO _edgesql_rejected (seq, tbl, pk, hlc, cells, code, reason) "
        "SELECT o.seq, o.tbl, o.pk, o.hlc, o.cells, 'forbidden', 'this user no longer has access to bucket ' "
        f"|| quote(l.bucket) FROM _edgesql_outbox o JOIN ({lost}) l ON l.tbl = o.tbl AND l.pk = o.pk",
        f"DELETE FROM _edgesql_outbox WHERE (tbl, pk) IN (SELECT tbl, pk FROM ({lost}))",
        "PRAGMA defer_foreign_keys = ON",
    ]
    for t in reversed(topological(schema)):  # children first: RESTRICT refuses at once
        out.append(_drop_rows(t, f"SELECT pk FROM ({lost}) WHERE tbl = {quote_text(t.name)}"))
    out += [
        f"DELETE FROM _edgesql_clock WHERE (tbl, pk) IN (SELECT tbl, pk FROM ({lost}))",
        "DELETE FROM _edgesql_rowbucket WHERE bucket IN (SELECT value FROM json_each(:buckets))",
        "UPDATE _edgesql_state SET applying = 0 WHERE id = 1",
    ]
    return out


def _pk_match_alias(t: Table, alias: str, k: str) -> str:
    return " AND ".join(f"{alias}.{quote_ident(c)} IS {key_decode(k, i)}" for i, c in enumerate(t.pk))


def client_doc(schema: Schema) -> dict[str, object]:
    """What a replica needs besides the migrations: setup, triggers and programs."""
    trig: list[str] = []
    for t in schema.tables:
        trig.extend(triggers(t))
    return {"format": FORMAT, "setup": setup_sql(), "triggers": trig, "programs": programs(schema)}
