// Access rules on D1 (who sees what): the steps of Primary._pull_access and of the access
// branch of Primary.sync in py/edgesql/server/primary.py, with the statements the bundle
// carries (py/edgesql/sync/accesssql.py). The decisions are the same; D1 has no
// interactive transactions, so the reads come first and the writes ride in the push's batch.

import { ProtocolError, snapshotJson } from "./protocol.js";

/** @typedef {import("./protocol.js").SyncRequest} SyncRequest */
/** @typedef {Record<string, string>} AccessSql */
/** @typedef {import("./executor.js").Database} Database */
/** @typedef {import("./executor.js").Result} Result */

/**
 * A request with access rules needs a user; a replica id stays its first user's
 * (check_user in protocol.py).
 * @param {string | null} user
 * @param {string | null} bound
 */
export function checkUser(user, bound) {
  if (user === null) {
    throw new ProtocolError(
      401,
      "sign_in",
      "this primary's data is per user: sign in (a token whose `sub` names the user; connect(..., auth=...))",
    );
  }
  if (bound !== null && bound !== user) {
    throw new ProtocolError(
      403,
      "replica_user",
      "this replica belongs to another user: a device that signs in as another user starts a new " +
        "replica (edgesql replicas do this themselves)",
    );
  }
}

/**
 * The pull half with access rules: buckets lost (the replica drops them), gained (a
 * snapshot of their rows), and the log pull of the buckets the replica holds.
 * @param {Database} db
 * @param {AccessSql} sql
 * @param {{pull_page_bytes: number, pull_scan_rows: number}} limits
 * @param {string} logEndSql
 * @param {SyncRequest} req
 * @param {number} horizon
 * @param {string} read the buckets the user may read (JSON)
 * @param {{lost: string[], pending: string[], gained: string[], live: string[]}} plan
 */
export function pullAccess(db, sql, limits, logEndSql, req, horizon, read, plan) {
  const statements = [];
  let { pending, live } = plan;
  const lost = plan.lost;
  const drop = lost.length ? `"drop":${JSON.stringify(lost)},` : "";
  if (lost.length) statements.push(db.prepare(sql.buckets_lost).bind(req.replica, JSON.stringify(lost)));
  let snap = req.snapshot;
  const full = (snap !== null && snap.at === null) || (snap === null && req.cursor < horizon);
  const start = { at: null, tbl: "", pk: "", bucket: "" };
  if (full) {
    // Everything again: after a migration, new rules, or from a replica that asked.
    statements.push(db.prepare(sql.buckets_reset).bind(req.replica));
    statements.push(db.prepare(sql.buckets_gained).bind(req.replica, read));
    pending = JSON.parse(read);
    live = [];
    snap = start;
  } else if (!pending.length && plan.gained.length) {
    statements.push(db.prepare(sql.buckets_gained).bind(req.replica, JSON.stringify(plan.gained)));
    pending = plan.gained;
    snap = start;
  }
  const bytes = limits.pull_page_bytes;
  if (!pending.length) {
    const at = statements.length;
    statements.push(
      db.prepare(sql.pull).bind(req.cursor, req.replica, req.limit, bytes, limits.pull_scan_rows, JSON.stringify(live)),
    );
    return {
      statements,
      /** @param {Result[]} r */
      read: (r) => {
        const row = /** @type {any} */ (r[at].results[0]);
        return { page: row.page, cursor: row.next_cursor, more: !!row.remaining, remaining: row.remaining, snapshot: drop };
      },
      done: false,
    };
  }
  const s = snap ?? start; // a snapshot under way whose position the request lost: from the start
  const endAt = statements.length;
  if (s.at === null) statements.push(db.prepare(logEndSql));
  const atOf = (/** @type {Result[]} */ r) => s.at ?? /** @type {any} */ (r[endAt].results[0]).seq;
  if (req.limit === 0) {
    return {
      statements,
      /** @param {Result[]} r */
      read: (r) => ({
        page: "[]", cursor: req.cursor, more: true, remaining: 1,
        snapshot: `${drop}"snapshot":${snapshotJson(atOf(r), s.tbl, s.pk, false, s.bucket, full)},`,
      }),
      done: false,
    };
  }
  const pageAt = statements.length;
  statements.push(
    db.prepare(sql.snapshot).bind(s.bucket, s.tbl, s.pk, req.limit, bytes, JSON.stringify(pending)),
  );
  const result = {
    statements,
    /** @param {Result[]} r */
    read: (r) => {
      const row = /** @type {any} */ (r[pageAt].results[0]);
      const more = !!row.more;
      result.done = !more;
      const at = atOf(r);
      const field = snapshotJson(
        at, row.last_tbl ?? s.tbl, row.last_pk ?? s.pk, !more, row.last_bucket ?? s.bucket, full,
      );
      // Done: the log goes on from where this snapshot started when it sent everything the
      // replica holds, else from where the replica's log pull stood.
      const cursor = more || live.length ? req.cursor : at;
      return { page: row.page, cursor, more: true, remaining: 1, snapshot: `${drop}"snapshot":${field},` };
    },
    done: false,
  };
  return result;
}
