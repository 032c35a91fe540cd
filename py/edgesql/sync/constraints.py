"""FOREIGN KEYs and UNIQUEs on a replica: what a pulled page or a rejection does to local rows.

The primary applies every change in one order and keeps the constraints there
(a change that breaks one is rejected; a parent's delete cascades as changes in
the log). A replica enforces them on its own writes, and must not be stopped by
them when it applies what the primary decided. Its local rows that the primary's
rows leave no room for are rows the primary does not have (writes still pending
here), and those writes would be rejected there: so they are rejected here, at
once, with the reason, and their rows go (not captured):

* a pending child of a parent that a pulled page deletes (RESTRICT and NO ACTION
  would refuse the delete; CASCADE and SET NULL act like SQLite does, and the
  primary's own cascade changes follow in the log);
* a pending row whose UNIQUE values a pulled row takes;
* a pending child of a parent whose insert the primary rejected ("a rejected
  parent insert takes its children with it").

Foreign keys are checked at the end of each applied page (``defer_foreign_keys``),
so a page whose rows arrive child first never fails half way. Every edit of this
device that loses — overwritten by a later write elsewhere, erased by a delete
that wins, rejected — is recorded in ``_edgesql_conflicts`` (rejections are also
in ``_edgesql_rejected``, with their cells).
"""

from __future__ import annotations

from collections.abc import Callable

from .codec import decode, key_decode, key_encode, quote_ident, quote_text
from .schema import Schema, Table

__all__ = [
    "CONFLICTS_DDL",
    "GONE_DDL",
    "conflicts_from_page",
    "dangling",
    "orphans_of_rejected",
    "restrict_clearance",
    "topological",
    "unique_clearance",
]

EXISTS = "_edgesql_exists"
ENC_ONE = '["i","1"]'
ENC_ZERO = '["i","0"]'

#: Edits of this device that lost, for the app to show (dismissed ones stay, marked).
CONFLICTS_DDL = (
    "CREATE TABLE IF NOT EXISTS _edgesql_conflicts (id INTEGER PRIMARY KEY, "
    "at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), kind TEXT NOT NULL, "
    "tbl TEXT NOT NULL, pk TEXT NOT NULL, col TEXT, mine TEXT, theirs TEXT, writer TEXT, hlc INTEGER, "
    "reason TEXT, dismissed INTEGER NOT NULL DEFAULT 0, row TEXT)"
)


def had_row(tbl: str, pk: str, cells: str | None = None) -> str:
    """SQL: the row ``tbl``/``pk`` as this device had it, for a conflict's ``row``: a JSON object
    of encoded values, the clock's overlaid with ``cells`` (a pending change's, JSON) or the
    pending writes of the page being applied; NULL when the device knew nothing of it."""
    clock = (
        f"(SELECT json_group_object(k.col, json(k.val)) FROM _edgesql_clock k WHERE k.tbl = {tbl} "
        f"AND k.pk = {pk} AND k.col != {quote_text(EXISTS)})"
    )
    mine = cells or (
        f"(SELECT json_group_object(p.col, json(p.val)) FROM temp._edgesql_pending p WHERE p.tbl = {tbl} "
        f"AND p.pk = {pk} AND p.col != {quote_text(EXISTS)})"
    )
    return f"json_patch(coalesce({clock}, '{{}}'), coalesce({mine}, '{{}}'))"


#: Keys of rows that left during one applied page or rejection (their children are checked).
GONE_DDL = "CREATE TEMP TABLE IF NOT EXISTS _edgesql_gone (tbl TEXT NOT NULL, pk TEXT NOT NULL, PRIMARY KEY (tbl, pk)) WITHOUT ROWID"


#: Keys of the rows one step below rejects (taken once: the step changes what selects them).
KEYS_DDL = "CREATE TEMP TABLE IF NOT EXISTS _edgesql_rejkeys (pk TEXT PRIMARY KEY) WITHOUT ROWID"

Rebuild = Callable[[Table, str], list[str]]


def _reject_rows(t: Table, keys_sql: str, reason_sql: str, rebuild: Rebuild) -> list[str]:
    """Reject this device's pending writes to the rows of ``t`` whose keys ``keys_sql`` selects
    (column ``pk``), record them as conflicts, and rebuild the rows from the clock without
    them (uncaptured: the caller has ``applying`` set): a row the primary has comes back as it
    has it, one it never had goes. Keys of rows gone are remembered: their children are next."""
    tl = quote_text(t.name)
    keys = "SELECT pk FROM temp._edgesql_rejkeys"
    return [
        KEYS_DDL,
        "DELETE FROM temp._edgesql_rejkeys",
        f"INSERT OR IGNORE INTO temp._edgesql_rejkeys (pk) SELECT pk FROM ({keys_sql})",
        "INSERT INTO _edgesql_conflicts (kind, tbl, pk, reason, row) "
        f"SELECT 'rejected', o.tbl, o.pk, {reason_sql}, {had_row('o.tbl', 'o.pk', 'o.cells')} "
        f"FROM _edgesql_outbox o WHERE o.tbl = {tl} AND o.pk IN ({keys}) "
        "AND o.seq = (SELECT max(o2.seq) FROM _edgesql_outbox o2 WHERE o2.tbl = o.tbl AND o2.pk = o.pk)",
        "INSERT OR REPLACE INTO _edgesql_rejected (seq, tbl, pk, hlc, cells, code, reason) "
        f"SELECT o.seq, o.tbl, o.pk, o.hlc, o.cells, 'constraint', {reason_sql} FROM _edgesql_outbox o "
        f"WHERE o.tbl = {tl} AND o.pk IN ({keys})",
        f"DELETE FROM _edgesql_outbox WHERE tbl = {tl} AND pk IN ({keys})",
        *rebuild(t, "SELECT pk AS k FROM temp._edgesql_rejkeys"),
        f"INSERT OR IGNORE INTO temp._edgesql_gone (tbl, pk) SELECT {tl}, k.pk FROM temp._edgesql_rejkeys k "
        f"WHERE NOT EXISTS (SELECT 1 FROM {quote_ident(t.name)} x WHERE {_key(t, 'x')} = k.pk)",
    ]


def _key(t: Table, alias: str) -> str:
    return key_encode([f"{alias}.{quote_ident(c)}" for c in t.pk])


def _children(
    schema: Schema, parent: Table, actions: set[str] | None = None
) -> list[tuple[Table, tuple[str, ...]]]:
    """The tables with a foreign key to ``parent`` (with one of ``actions``), and its columns."""
    out = []
    for t in schema.tables:
        for fk in t.fks:
            if fk.parent == parent.name and (actions is None or fk.on_delete in actions):
                out.append((t, fk.columns))
    return out


def _child_keys(child: Table, cols: tuple[str, ...], parent: Table, parent_keys_sql: str) -> str:
    """Keys of ``child`` rows whose foreign key ``cols`` holds a parent key ``parent_keys_sql`` selects."""
    cq = quote_ident(child.name)
    fk = ", ".join(f"c.{quote_ident(c)}" for c in cols)
    fk = f"({fk})" if len(cols) > 1 else fk
    decoded = ", ".join(key_decode("g.pk", i) for i in range(len(parent.pk)))
    return f"SELECT {_key(child, 'c')} AS pk FROM {cq} c WHERE {fk} IN (SELECT {decoded} FROM ({parent_keys_sql}) g)"


def restrict_clearance(schema: Schema, parent: Table, rebuild: Rebuild) -> list[str]:
    """Before a page deletes rows of ``parent``: this device's children of them that RESTRICT
    or NO ACTION would keep (rows the primary does not have) are rejected and go."""
    deleted = (
        f"SELECT pk FROM temp._edgesql_pulled WHERE tbl = {quote_text(parent.name)} "
        f"AND col = {quote_text(EXISTS)} AND val = {quote_text(ENC_ZERO)}"
    )
    out = []
    for child, cols in _children(schema, parent, {"RESTRICT", "NO ACTION"}):
        reason = quote_text(f"its parent row in {parent.name} was deleted on another device")
        out += _reject_rows(child, _child_keys(child, cols, parent, deleted), reason, rebuild)
    return out


def unique_clearance(t: Table, rebuild: Rebuild) -> list[str]:
    """Before a page's rows of ``t`` are written: this device's rows (not in the page) whose
    UNIQUE values a row of the page takes are rejected and go — on the primary that row
    came first, and this device's write will never land there."""
    if not t.uniques:
        return []
    tq, tl = quote_ident(t.name), quote_text(t.name)
    match = " AND ".join(f"cur.{quote_ident(c)} IS {key_decode('k.pk', i)}" for i, c in enumerate(t.pk))
    out = []
    for cols in t.uniques:

        def incoming(c: str) -> str:
            cell = f"(SELECT val FROM temp._edgesql_pulled p WHERE p.tbl = {tl} AND p.pk = k.pk AND p.col = {quote_text(c)})"
            return f"CASE WHEN {cell} IS NOT NULL THEN {decode(cell)} ELSE cur.{quote_ident(c)} END"

        values = ", ".join(f"{incoming(c)} AS {quote_ident(c)}" for c in cols)
        # The page's rows of t as they will be (rows the page deletes take no values).
        inc = (
            f"SELECT k.pk AS pk, {values} FROM (SELECT DISTINCT pk FROM temp._edgesql_pulled WHERE tbl = {tl}) k "
            f"LEFT JOIN {tq} cur ON {match} WHERE NOT EXISTS (SELECT 1 FROM temp._edgesql_pulled d WHERE d.tbl = {tl} "
            f"AND d.pk = k.pk AND d.col = {quote_text(EXISTS)} AND d.val = {quote_text(ENC_ZERO)})"
        )
        mine = ", ".join(f"x.{quote_ident(c)}" for c in cols)
        theirs = ", ".join(quote_ident(c) for c in cols)
        if len(cols) > 1:
            mine, theirs = f"({mine})", theirs
        clash = (
            f"SELECT {_key(t, 'x')} AS pk FROM {tq} x WHERE {_key(t, 'x')} NOT IN "
            f"(SELECT pk FROM temp._edgesql_pulled WHERE tbl = {tl}) AND {mine} IN (SELECT {theirs} FROM ({inc}))"
        )
        reason = quote_text(
            f"another device's row in {t.name} took the same {', '.join(cols)} first (UNIQUE)"
        )
        out += _reject_rows(t, clash, reason, rebuild)
    return out


def dangling(schema: Schema, rebuild: Rebuild) -> list[str]:
    """After a page or a rejection: children of rows that left (``temp._edgesql_gone``, and the
    page's deletes) whose parent is not here are this device's own pending rows: rejected, gone.
    Parents before children, so that grandchildren are checked too."""
    out = []
    for parent in topological(schema):
        gone = (
            f"SELECT pk FROM temp._edgesql_gone WHERE tbl = {quote_text(parent.name)} UNION "
            f"SELECT pk FROM temp._edgesql_pulled WHERE tbl = {quote_text(parent.name)} "
            f"AND col = {quote_text(EXISTS)} AND val = {quote_text(ENC_ZERO)}"
        )
        for child, cols in _children(schema, parent):
            pmatch = " AND ".join(
                f"p.{quote_ident(pc)} IS c2.{quote_ident(cc)}" for pc, cc in zip(parent.pk, cols, strict=True)
            )
            keys = (
                f"SELECT k.pk FROM ({_child_keys(child, cols, parent, gone)}) k JOIN {quote_ident(child.name)} c2 "
                f"ON {_key(child, 'c2')} = k.pk WHERE NOT EXISTS (SELECT 1 FROM {quote_ident(parent.name)} p WHERE {pmatch})"
            )
            reason = quote_text(f"its parent row in {parent.name} is gone (deleted, or its insert rejected)")
            out += _reject_rows(child, keys, reason, rebuild)
    return out


def orphans_of_rejected(schema: Schema, rejected_keys: str, rebuild: Rebuild) -> list[str]:
    """Before rejected rows are rebuilt: children (pending here) of rejected parent rows that
    will not exist are rejected with them and go, whatever the foreign key's action."""
    out = []
    for parent in topological(schema):
        tl = quote_text(parent.name)
        # The parent stays if the clock or a write still pending says it exists.
        gone = (
            f"SELECT r.k AS pk FROM ({rejected_keys}) r WHERE r.tbl = {tl} "
            f"AND NOT EXISTS (SELECT 1 FROM _edgesql_clock c WHERE c.tbl = {tl} AND c.pk = r.k "
            f"AND c.col = {quote_text(EXISTS)} AND c.val = {quote_text(ENC_ONE)}) "
            f"AND NOT EXISTS (SELECT 1 FROM _edgesql_outbox o WHERE o.tbl = {tl} AND o.pk = r.k)"
        )
        out.append(f"INSERT OR IGNORE INTO temp._edgesql_gone (tbl, pk) SELECT {tl}, pk FROM ({gone})")
        for child, cols in _children(schema, parent):
            reason = quote_text(f"its parent row in {parent.name} was rejected")
            out += _reject_rows(child, _child_keys(child, cols, parent, gone), reason, rebuild)
    return out


def conflicts_from_page(me: str = ":me") -> list[str]:
    """Edits of this device that a pulled page beats: its acknowledged value (the clock's, by
    this replica) or its pending write, replaced by another value; or a row it wrote that a
    delete from elsewhere erases. Run after the losing cells are dropped from the inbox and
    before the clock takes the page."""
    ex, zero = quote_text(EXISTS), quote_text(ENC_ZERO)
    return [
        "INSERT INTO _edgesql_conflicts (kind, tbl, pk, col, mine, theirs, writer, hlc) "
        "SELECT 'overwritten', i.tbl, i.pk, i.col, k.val, i.val, i.replica, i.hlc FROM temp._edgesql_pulled i "
        "JOIN _edgesql_clock k ON k.tbl = i.tbl AND k.pk = i.pk AND k.col = i.col "
        f"WHERE i.col != {ex} AND k.replica = {me} AND k.val IS NOT i.val AND i.replica IS NOT {me}",
        "INSERT INTO _edgesql_conflicts (kind, tbl, pk, col, mine, theirs, writer, hlc) "
        "SELECT 'overwritten', i.tbl, i.pk, i.col, p.val, i.val, i.replica, i.hlc FROM temp._edgesql_pulled i "
        "JOIN temp._edgesql_pending p ON p.tbl = i.tbl AND p.pk = i.pk AND p.col = i.col "
        f"WHERE i.col != {ex} AND p.val IS NOT i.val AND i.replica IS NOT {me}",
        # A delete that wins over a row this device wrote (any of its cells, or a pending write).
        "INSERT INTO _edgesql_conflicts (kind, tbl, pk, writer, hlc, row) "
        f"SELECT 'deleted', i.tbl, i.pk, i.replica, i.hlc, {had_row('i.tbl', 'i.pk')} FROM temp._edgesql_pulled i "
        f"WHERE i.col = {ex} AND i.val = {zero} AND i.replica IS NOT {me} "
        f"AND (EXISTS (SELECT 1 FROM _edgesql_clock k WHERE k.tbl = i.tbl AND k.pk = i.pk AND k.replica = {me}) "
        "OR EXISTS (SELECT 1 FROM temp._edgesql_pending p WHERE p.tbl = i.tbl AND p.pk = i.pk))",
    ]


def topological(schema: Schema) -> list[Table]:
    """Tables, parents before children (a cycle is broken where it closes)."""
    by = {t.name: t for t in schema.tables}
    out: list[Table] = []
    seen: set[str] = set()

    def visit(t: Table, path: set[str]) -> None:
        if t.name in seen or t.name in path:
            return
        for fk in t.fks:
            if fk.parent in by and fk.parent != t.name:
                visit(by[fk.parent], path | {t.name})
        seen.add(t.name)
        out.append(t)

    for t in schema.tables:
        visit(t, set())
    return out
