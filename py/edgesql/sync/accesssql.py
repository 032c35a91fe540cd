"""The primary's SQL for access rules (``buckets.py``): buckets of rows, users and replicas.

Generated from the rules, for both primaries (the Worker reads it from its bundle):

* ``_edgesql_rowbuckets``  the bucket each row (or tombstone) is in now;
* ``_edgesql_log_buckets`` for each change in the log, the row's bucket before and
                           after it: pulls pick a user's changes by these, through
                           an index, and see rows enter and leave their buckets;
* ``_edgesql_replica_users`` the user a replica id belongs to;
* ``_edgesql_replica_buckets`` the buckets each replica holds (``live``) or is being
                           sent (a snapshot of a bucket it gained);
* ``_edgesql_session``     during a push: its user and the buckets it may write,
                           read by the apply triggers (D1 has no temp tables and
                           triggers see no parameters).

A user's buckets come from the READ and WRITE queries (``USER_BUCKETS``); the
replica's plan — buckets lost (its rows of them are dropped), buckets gained (a
snapshot of them), the buckets its log pull follows — from ``BUCKET_PLAN``.
"""

from __future__ import annotations

from .buckets import Access
from .codec import encode, key_decode, quote_ident, quote_text
from .schema import _TOKEN, Schema, Table

__all__ = ["FORBIDDEN", "access_setup", "access_statements", "bucket_steps"]

#: The prefix of the RAISE message an apply trigger refuses a change with: the bisect
#: turns it into a rejection with the code ``forbidden``.
FORBIDDEN = "edgesql_forbidden: "


def _bind_user(query: str, to: str = "?1") -> str:
    """``query`` with ``:user`` (outside strings and quoted names) as ``to`` (D1 binds by number)."""
    toks = [(m.lastgroup, m.group()) for m in _TOKEN.finditer(query)]
    out = []
    i = 0
    while i < len(toks):
        if toks[i][1] == ":" and i + 1 < len(toks) and toks[i + 1] == ("w", "user"):
            out.append(to)
            i += 2
        else:
            out.append(toks[i][1])
            i += 1
    return "".join(out)


def access_setup() -> list[str]:
    """The tables of access rules on a primary (idempotent)."""
    return [
        "CREATE TABLE IF NOT EXISTS _edgesql_rowbuckets (tbl TEXT NOT NULL, pk TEXT NOT NULL, bucket TEXT, "
        "PRIMARY KEY (tbl, pk)) WITHOUT ROWID",
        "CREATE INDEX IF NOT EXISTS _edgesql_rowbuckets_by_bucket ON _edgesql_rowbuckets (bucket, tbl, pk)",
        "CREATE TABLE IF NOT EXISTS _edgesql_log_buckets (seq INTEGER PRIMARY KEY, bucket_from TEXT, bucket_to TEXT)",
        "CREATE INDEX IF NOT EXISTS _edgesql_log_buckets_to ON _edgesql_log_buckets (bucket_to, seq)",
        "CREATE INDEX IF NOT EXISTS _edgesql_log_buckets_from ON _edgesql_log_buckets (bucket_from, seq)",
        "CREATE TABLE IF NOT EXISTS _edgesql_replica_users (replica TEXT PRIMARY KEY, user TEXT NOT NULL) WITHOUT ROWID",
        "CREATE TABLE IF NOT EXISTS _edgesql_replica_buckets (replica TEXT NOT NULL, bucket TEXT NOT NULL, "
        "live INTEGER NOT NULL, PRIMARY KEY (replica, bucket)) WITHOUT ROWID",
        "CREATE TABLE IF NOT EXISTS _edgesql_session (id INTEGER PRIMARY KEY CHECK (id = 1), user TEXT, "
        "write TEXT NOT NULL DEFAULT '[]')",
        "INSERT OR IGNORE INTO _edgesql_session (id, user, write) VALUES (1, NULL, '[]')",
    ]


def bucket_steps(t: Table, access: Access, row_values: str, row_source: str) -> tuple[str, str]:
    """The apply trigger's statements for table ``t`` before and after it merges a change.

    ``row_values``/``row_source``: the trigger's SELECT list and FROM for the row as the
    clock holds it (deleted rows too), from which the bucket after the change is computed.
    Before: the row's bucket must be writable (its current bucket, when it has one).
    After: the new bucket is logged, must be writable (or new: nobody's rows are in it
    yet, and then the writer may write it for the rest of the request), and recorded.
    """
    tl = quote_text(t.name)
    expr = access.bucket_of(t.name)
    # The expression reads the row's columns by name: the derived table has them.
    bucket_after = f"(SELECT ({expr}) FROM (SELECT {row_values} FROM {row_source}) AS {quote_ident(t.name)})"
    refuse = (
        f"SELECT RAISE(ABORT, '{FORBIDDEN}' || 'you may not write bucket ' || quote({{b}}) || ' (' || {tl} || ' row ' "
        "|| NEW.pk || ')') FROM _edgesql_session s WHERE s.id = 1 AND s.user IS NOT NULL "
        # (What a permitted delete of a parent makes its children do is not the user's write.)
        "AND NEW.replica IS NOT '~cascade' "
        "AND {b} NOT IN (SELECT value FROM json_each(s.write)); "
    )
    current = f"(SELECT bucket FROM _edgesql_rowbuckets WHERE tbl = {tl} AND pk = NEW.pk)"
    # (A row the primary has not seen has no bucket yet: nothing to check before.)
    before = refuse.replace("AND {b} NOT IN", "AND {b} IS NOT NULL AND {b} NOT IN").replace("{b}", current)
    before = before.replace("{{b}}", current)
    after_b = "(SELECT bucket_to FROM _edgesql_log_buckets WHERE seq = NEW.seq)"
    # The WRITE queries, evaluated now (after the change), for the request's user.
    session_user = "(SELECT user FROM _edgesql_session WHERE id = 1)"
    granted_now = " UNION ".join(_bind_user(q, session_user) for q in access.write) or "SELECT NULL WHERE 0"
    after = (
        f"INSERT INTO _edgesql_log_buckets (seq, bucket_from, bucket_to) VALUES (NEW.seq, {current}, {bucket_after}); "
        # A bucket no row is in yet, which the user's WRITE queries give them once this change
        # is made (a new project whose owner they are): they make it, and may write it from now on.
        f"UPDATE _edgesql_session SET write = json_insert(write, '$[#]', {after_b}) WHERE id = 1 "
        f"AND user IS NOT NULL AND {after_b} IS NOT NULL AND {after_b} NOT IN (SELECT value FROM json_each(write)) "
        f"AND NOT EXISTS (SELECT 1 FROM _edgesql_rowbuckets WHERE bucket = {after_b}) "
        f"AND {after_b} IN (SELECT * FROM ({granted_now})); "
        # (A NULL bucket, from a NULL in the expression, is nobody's: refused too.)
        + refuse.replace("AND {b} NOT IN", "AND ({b} IS NULL OR {b} NOT IN")
        .replace("(s.write)); ", "(s.write))); ")
        .replace("{b}", after_b)
        .replace("{{b}}", after_b)
        + f"INSERT OR REPLACE INTO _edgesql_rowbuckets (tbl, pk, bucket) VALUES ({tl}, NEW.pk, {after_b}); "
    )
    return before, after


def access_statements(schema: Schema) -> dict[str, str]:
    """The statements a primary runs for a schema with access rules (all read by name)."""
    access: Access = schema.access
    reads = [_bind_user(q) for q in access.read]
    writes = [_bind_user(q) for q in access.write]
    w = " UNION ".join(writes) if writes else "SELECT NULL WHERE 0"
    r = " UNION ".join([*reads, "SELECT b FROM w"])
    user_buckets = (
        f"WITH w(b) AS ({w}), r(b) AS ({r}) "
        "SELECT coalesce((SELECT json_group_array(b) FROM (SELECT DISTINCT CAST(b AS TEXT) AS b FROM r "
        "WHERE b IS NOT NULL ORDER BY 1)), '[]') AS read, "
        "coalesce((SELECT json_group_array(b) FROM (SELECT DISTINCT CAST(b AS TEXT) AS b FROM w "
        "WHERE b IS NOT NULL ORDER BY 1)), '[]') AS write"
    )
    return {
        # ?1 user: the buckets they may read, and those they may write (JSON arrays).
        "user_buckets": user_buckets,
        # ?1 replica: its user (NULL: not bound yet). Bound on first use by BIND_USER.
        "replica_user": "SELECT (SELECT user FROM _edgesql_replica_users WHERE replica = ?1) AS user",
        "bind_user": "INSERT INTO _edgesql_replica_users (replica, user) VALUES (?1, ?2) ON CONFLICT (replica) DO NOTHING",
        # ?1 replica, ?2 the buckets the user may read now: what the replica loses, what is
        # being sent to it (pending), what it gains now, what its log pull follows (live).
        "bucket_plan": BUCKET_PLAN,
        # ?1 replica, ?2 JSON of buckets: forget them (lost); start sending them (gained);
        # they were sent (a snapshot of them is done).
        "buckets_lost": "DELETE FROM _edgesql_replica_buckets WHERE replica = ?1 AND bucket IN (SELECT value FROM json_each(?2))",
        "buckets_gained": "INSERT OR IGNORE INTO _edgesql_replica_buckets (replica, bucket, live) "
        "SELECT ?1, value, 0 FROM json_each(?2)",
        "buckets_live": "UPDATE _edgesql_replica_buckets SET live = 1 WHERE replica = ?1 AND live = 0",
        "buckets_reset": "DELETE FROM _edgesql_replica_buckets WHERE replica = ?1",
        # ?1 user, ?2 write buckets: the push's session (the apply triggers read it); then cleared.
        "session_start": "UPDATE _edgesql_session SET user = ?1, write = ?2 WHERE id = 1",
        "session_end": "UPDATE _edgesql_session SET user = NULL, write = '[]' WHERE id = 1",
        # ?1 replica, ?2 the pushed page: the bucket of each row it wrote, for the replica.
        "acked_buckets": "SELECT coalesce(json_group_array(json_array(tbl, pk, bucket_to)), '[]') FROM ("
        "SELECT c.tbl, c.pk, lb.bucket_to FROM _edgesql_changes c JOIN _edgesql_log_buckets lb ON lb.seq = c.seq "
        "WHERE c.replica = ?1 AND c.rseq IN (SELECT value ->> '$[0]' FROM json_each(?2)) ORDER BY c.seq)",
        "pull": pull_access(),
        "snapshot": snapshot_access(),
    }


#: ?1 replica, ?2 read buckets (JSON). One row: lost, pending, gained, live (JSON arrays).
BUCKET_PLAN = """
WITH now AS MATERIALIZED (SELECT value AS b FROM json_each(?2)),
had AS MATERIALIZED (SELECT bucket AS b, live FROM _edgesql_replica_buckets WHERE replica = ?1)
SELECT coalesce((SELECT json_group_array(b) FROM had WHERE b NOT IN (SELECT b FROM now)), '[]') AS lost,
       coalesce((SELECT json_group_array(b) FROM had WHERE live = 0 AND b IN (SELECT b FROM now)), '[]') AS pending,
       coalesce((SELECT json_group_array(b) FROM now WHERE b NOT IN (SELECT b FROM had)), '[]') AS gained,
       coalesce((SELECT json_group_array(b) FROM had WHERE live = 1 AND b IN (SELECT b FROM now)), '[]') AS live
"""


def pull_access() -> str:
    """The next page for a replica whose user has buckets: changes after the cursor in the
    buckets it follows (?6, JSON), up to ?3 changes and about ?4 bytes, reading at most ?5
    log rows. Params as PULL's: ?1 cursor, ?2 replica, ?3 limit, ?4 bytes, ?5 rows.

    A change is sent as it came when the row was and stays in the replica's buckets; a
    row that *enters* them (it moved from a bucket the replica does not follow) is sent
    whole, from the clock; a row that *leaves* them is sent as an exit: ``[seq, "", table,
    key, "0", {}, txend, null]``, and the replica drops it. Each change carries the row's
    bucket after it, 8th. Own changes are not sent.
    """
    return f"""
WITH s AS MATERIALIZED (SELECT value AS b FROM json_each(?6)),
win AS MATERIALIZED (
  SELECT seq FROM (
    SELECT lb.seq FROM _edgesql_log_buckets lb WHERE lb.bucket_to IN (SELECT b FROM s) AND lb.seq > ?1
    UNION SELECT lb.seq FROM _edgesql_log_buckets lb WHERE lb.bucket_from IN (SELECT b FROM s) AND lb.seq > ?1
  ) ORDER BY seq LIMIT ?5
), ev AS MATERIALIZED (
  SELECT c.seq, c.replica, c.tbl, c.pk, c.hlc, c.cells, c.txend, lb.bucket_from AS bf, lb.bucket_to AS bt,
         lb.bucket_to IN (SELECT b FROM s) AS inb, coalesce(lb.bucket_from IN (SELECT b FROM s), 0) AS outb
  FROM win JOIN _edgesql_changes c ON c.seq = win.seq JOIN _edgesql_log_buckets lb ON lb.seq = win.seq
  WHERE c.replica != ?2
), rows AS MATERIALIZED (
  SELECT seq, replica, tbl, pk, hlc, cells, txend, bt AS bucket, 0 AS part FROM ev
   WHERE inb AND (outb OR bf IS NULL OR bf IS bt)
  UNION ALL
  SELECT ev.seq, c.replica, ev.tbl, ev.pk, c.hlc,
         '{{' || group_concat(json_quote(c.col) || ':' || {encode("c.val")}, ',') || '}}', ev.txend, ev.bt, 1
  FROM ev JOIN _edgesql_clock c ON c.tbl = ev.tbl AND c.pk = ev.pk
  WHERE ev.inb AND NOT ev.outb AND ev.bf IS NOT NULL AND ev.bf IS NOT ev.bt
  GROUP BY ev.seq, c.hlc, c.replica
  UNION ALL
  SELECT seq, '', tbl, pk, 0, '{{}}', txend, NULL, 2 FROM ev WHERE NOT inb AND outb
), page AS (
  SELECT *, sum(length(CAST(cells AS BLOB)) + length(pk) + length(CAST(tbl AS BLOB)) + 100)
            OVER (ORDER BY seq, part, hlc, replica ROWS UNBOUNDED PRECEDING) AS bytes
  FROM rows ORDER BY seq, part, hlc, replica
), counted AS MATERIALIZED (SELECT *, dense_rank() OVER (ORDER BY seq) AS n FROM page),
cut AS (
  SELECT coalesce((SELECT max(seq) FROM counted WHERE txend = 1 AND bytes <= ?4 AND n <= ?3),
                  (SELECT max(seq) FROM counted WHERE bytes <= ?4 AND n <= ?3),
                  (SELECT min(seq) FROM counted)) AS upto
), sent AS MATERIALIZED (SELECT * FROM counted, cut WHERE seq <= upto ORDER BY seq, part, hlc, replica),
next AS MATERIALIZED (
  -- After the last change sent; or, when every change of others in the window was sent,
  -- after the window; or, when the window holds every change left in the user's buckets,
  -- at the end of the log.
  SELECT CASE WHEN EXISTS (SELECT 1 FROM ev WHERE seq > coalesce((SELECT max(seq) FROM sent), ?1))
              THEN coalesce((SELECT max(seq) FROM sent), ?1)
              WHEN (SELECT count(*) FROM win) >= ?5 THEN (SELECT max(seq) FROM win)
              ELSE max(?1, coalesce((SELECT max(seq) FROM _edgesql_changes), 0)) END AS cursor,
         (SELECT count(*) FROM win) >= ?5 AS full
)
-- (One row of `next` in FROM, not scalar subqueries of it: four of those nest too deep for SQLite.)
SELECT coalesce((SELECT json_group_array(json_array(seq, replica, tbl, pk, CAST(hlc AS TEXT), json(cells), txend, bucket))
                 FROM sent), '[]') AS page,
       next.cursor AS next_cursor,
       (SELECT count(*) FROM sent) AS n,
       (SELECT count(*) FROM win WHERE seq > next.cursor) + next.full AS remaining
FROM next
"""


def snapshot_access() -> str:
    """A page of the primary's state in the buckets ?6 (JSON) being sent to a replica:
    keys after the position (?1 bucket, ?2 table, ?3 key), up to ?4 keys and about ?5 bytes,
    in (bucket, table, key) order, tombstones included; each change carries its bucket.
    Returns the page, the position of its last key, its size, and whether keys remain."""
    return f"""
WITH g AS MATERIALIZED (SELECT value AS b FROM json_each(?6)),
keys AS MATERIALIZED (
  SELECT rb.bucket, rb.tbl, rb.pk FROM _edgesql_rowbuckets rb
  WHERE rb.bucket IN (SELECT b FROM g) AND (rb.bucket, rb.tbl, rb.pk) > (?1, ?2, ?3)
  ORDER BY rb.bucket, rb.tbl, rb.pk LIMIT ?4
), changes AS (
  SELECT k.bucket, k.tbl, k.pk, c.hlc, c.replica, '{{' || group_concat(json_quote(c.col) || ':' || {encode("c.val")}, ',') || '}}' AS cells
  FROM keys k JOIN _edgesql_clock c ON c.tbl = k.tbl AND c.pk = k.pk GROUP BY k.bucket, k.tbl, k.pk, c.hlc, c.replica
), sized AS MATERIALIZED (
  SELECT *, sum(length(CAST(cells AS BLOB)) + length(pk) + length(CAST(tbl AS BLOB)) + 100)
              OVER (ORDER BY bucket, tbl, pk, hlc, replica) AS bytes FROM changes
), over AS MATERIALIZED (
  SELECT bucket, tbl, pk FROM sized WHERE bytes > ?5 ORDER BY bucket, tbl, pk LIMIT 1
), sent AS MATERIALIZED (
  SELECT * FROM sized WHERE NOT EXISTS (SELECT 1 FROM over) OR (bucket, tbl, pk) < (SELECT bucket, tbl, pk FROM over)
     OR ((bucket, tbl, pk) = (SELECT bucket, tbl, pk FROM over)
         AND NOT EXISTS (SELECT 1 FROM sized s WHERE (s.bucket, s.tbl, s.pk) < (SELECT bucket, tbl, pk FROM over)))
), last AS (SELECT bucket, tbl, pk FROM sent ORDER BY bucket DESC, tbl DESC, pk DESC LIMIT 1)
SELECT coalesce((SELECT json_group_array(json_array(0, replica, tbl, pk, CAST(hlc AS TEXT), json(cells), 1, bucket))
                 FROM (SELECT * FROM sent ORDER BY bucket, tbl, pk, hlc, replica)), '[]') AS page,
       (SELECT bucket FROM last) AS last_bucket,
       (SELECT tbl FROM last) AS last_tbl,
       (SELECT pk FROM last) AS last_pk,
       (SELECT count(*) FROM sent) AS n,
       EXISTS (SELECT 1 FROM _edgesql_rowbuckets rb WHERE rb.bucket IN (SELECT b FROM g)
               AND (rb.bucket, rb.tbl, rb.pk) > (SELECT bucket, tbl, pk FROM last)) AS more
"""


def refresh_buckets(schema: Schema) -> list[str]:
    """Every row's bucket again, from the clock (after a migration, or new rules): the
    rows' buckets may have moved, so every replica starts again from a snapshot."""
    access: Access = schema.access
    out = ["DELETE FROM _edgesql_rowbuckets", "DELETE FROM _edgesql_replica_buckets"]
    for t in schema.tables:
        tl = quote_text(t.name)
        value_names = [c.name for c in t.value_columns]
        picks = ", ".join(
            f"max(CASE WHEN col = {quote_text(c.name)} THEN val END) AS {quote_ident('~' + c.name)}, "
            f"max(col = {quote_text(c.name)}) AS {quote_ident('?' + c.name)}"
            for c in t.value_columns
        )
        cols = ", ".join(
            f"{key_decode('k.pk', t.pk.index(c.name))} AS {quote_ident(c.name)}"
            if c.name in t.pk
            else (
                f"CASE WHEN k.{quote_ident('?' + c.name)} THEN k.{quote_ident('~' + c.name)} ELSE {c.default} END AS {quote_ident(c.name)}"
                if c.default is not None
                else f"k.{quote_ident('~' + c.name)} AS {quote_ident(c.name)}"
            )
            for c in t.columns
        )
        grouped = f"(SELECT pk{', ' + picks if value_names else ''} FROM _edgesql_clock WHERE tbl = {tl} GROUP BY pk)"
        # The key text is "~key": the table may have a column named pk.
        out.append(
            f'INSERT INTO _edgesql_rowbuckets (tbl, pk, bucket) SELECT {tl}, r."~key", ({access.bucket_of(t.name)}) '
            f'FROM (SELECT k.pk AS "~key", {cols} FROM {grouped} k) AS r'
        )
    return out
