// The D1 primary: answers one POST /sync with the bundle's SQL, as the embedded
// primary (py/edgesql/server/primary.py) does with the same statements.
//
// It holds no merge logic. Per request:
//   REPLICA one read with CHECK: who owns the replica id (the digest of its key), the
//   CHECK   highest seq held from it, the horizon; the page's problems (a key not in
//           its canonical form, unknown table or column, stamps from the future, a
//           seq pushed with other content), as JSON;
//   PUSH    the page's changes, ONE atomic db.batch (a page longer than D1's 2 MB per
//           value is bound in several chunks, still one batch) after REGISTER (the id's
//           owner, the first time); the apply triggers merge each cell; PULL (or a
//           SNAPSHOT page) and SERVER_HLC ride in the same batch;
//   bisect  when a change breaks a constraint of the app's tables (NOT NULL, CHECK,
//           STRICT types) the batch rolls back as a whole; the page is then split in
//           halves, each its own batch, until only the failing change is left: it
//           is rejected with D1's message and the rest of the page is applied.
// D1 has no interactive transactions, so CHECK runs before the batch rather than in
// it; the batch itself is idempotent (ON CONFLICT (replica, rseq) DO NOTHING).
//
// Numbers that can exceed 2^53 (HLCs) never cross into JavaScript: the page goes in
// as JSON text, PULL returns JSON text and SERVER_HLC a decimal string, and the
// answer is built by concatenating them, unparsed.

import { D1_MAX_VALUE_BYTES, QUERIES_KEPT_FOR_PULL } from "./limits.js";
import { checkUser, pullAccess } from "./access.js";
import { refusal } from "./dberror.js";
import { ProtocolError, checkReplica, checkSchema, isInt, keyHash, snapshotJson } from "./protocol.js";

/** The start of the message an apply trigger refuses a user's change with (accesssql.FORBIDDEN). */
const FORBIDDEN = "edgesql_forbidden: ";

/** @typedef {import("./bundle.js").Bundle} Bundle */
/** @typedef {import("./executor.js").Database} Database */
/** @typedef {import("./executor.js").Statement} Statement */
/** @typedef {import("./executor.js").Result} Result */
/** @typedef {import("./protocol.js").SyncRequest} SyncRequest */
/** @typedef {{seq: number, code: string, reason: string}} Rejection */

const encoder = new TextEncoder();

/** How many D1 queries this invocation may still make. */
class Budget {
  /** @param {number} limit */
  constructor(limit) {
    this.left = limit;
  }

  /** Take one query for a push, keeping the pull's; false when none is left. */
  takeForPush() {
    if (this.left <= QUERIES_KEPT_FOR_PULL) return false;
    this.left -= 1;
    return true;
  }

  take() {
    this.left -= 1;
  }
}

/**
 * Cut changes into JSON arrays of at most D1_MAX_VALUE_BYTES each (almost always one).
 * @param {unknown[][]} changes
 * @returns {string[]}
 */
export function chunks(changes) {
  const whole = JSON.stringify(changes);
  if (whole.length * 3 <= D1_MAX_VALUE_BYTES || encoder.encode(whole).length <= D1_MAX_VALUE_BYTES) {
    return [whole];
  }
  const out = [];
  let items = [];
  let size = 2;
  for (const c of changes) {
    const text = JSON.stringify(c);
    const bytes = encoder.encode(text).length + 1;
    if (items.length && size + bytes > D1_MAX_VALUE_BYTES) {
      out.push(`[${items.join(",")}]`);
      items = [];
      size = 2;
    }
    items.push(text);
    size += bytes;
  }
  if (items.length) out.push(`[${items.join(",")}]`);
  return out;
}

/**
 * Changes D1 cannot bind even alone (JSON over 2 MB: cells are at most 1.9 MB, so only with
 * a huge key), refused as too_large; the others, kept.
 * @param {unknown[][]} changes
 * @returns {{kept: unknown[][], refused: Rejection[]}}
 */
function unbindable(changes) {
  const refused = [];
  const kept = [];
  for (const c of changes) {
    const json = JSON.stringify(c);
    const size = encoder.encode(json).length;
    if (size > D1_MAX_VALUE_BYTES) {
      refused.push({
        seq: /** @type {number} */ (c[0]),
        code: "too_large",
        reason: `the change is ${size} bytes of JSON; D1 binds at most ${D1_MAX_VALUE_BYTES} bytes per value`,
      });
    } else {
      kept.push(c);
    }
  }
  return { kept, refused };
}

export class D1Primary {
  /**
   * @param {Database} db
   * @param {Bundle} bundle
   * @param {number} queryLimit D1 queries one invocation may make
   */
  constructor(db, bundle, queryLimit) {
    this.db = db;
    this.bundle = bundle;
    this.sql = bundle.sql;
    this.queryLimit = queryLimit;
    /** @type {{before: Statement[], after: Statement[]}} the user's session around each push
     *  batch, with access rules */
    this.session = { before: [], after: [] };
  }

  /**
   * Apply a push and answer with the next pull page: the response body.
   * @param {SyncRequest} req
   * @param {string | null} [user] who the request comes from (a token's `sub`); a schema
   *   with access rules needs one, and answers only with what that user may read
   * @returns {Promise<string>}
   */
  async sync(req, user = null) {
    const version = this.bundle.schema_version;
    checkSchema(req.schema, version);
    const access = this.bundle.access ?? null;
    const budget = new Budget(this.queryLimit);
    const db = this.db;
    const hash = await keyHash(req.key);
    let { changes, tooLarge } = req;
    let pages = changes.length ? chunks(changes) : [];
    if (pages.some((p) => p.length * 3 > D1_MAX_VALUE_BYTES && encoder.encode(p).length > D1_MAX_VALUE_BYTES)) {
      const { kept, refused } = unbindable(changes); // a chunk of one change, over 2 MB
      changes = kept;
      tooLarge = [...tooLarge, ...refused];
      pages = changes.length ? chunks(changes) : [];
    }
    const { rejected, horizon, read, write } = await this.#check(pages, req, hash, budget, user);
    // The seqs CHECK refused, as SQL compares them: PUSH's ?3 leaves them out.
    const exclude = JSON.stringify(rejected.map((r) => r.seq).filter((s) => s !== null));
    rejected.push(...tooLarge);

    const register = db.prepare(this.sql.register).bind(req.replica, hash);
    let pull = this.#pullStatements(req, horizon);
    /** @type {{statements: Statement[], read: (r: Result[]) => any, done: boolean} | null} */
    let accessPull = null;
    if (access) {
      budget.take();
      const plan = /** @type {any} */ (await db.prepare(access.bucket_plan).bind(req.replica, read).first());
      const parsed = { lost: JSON.parse(plan.lost), pending: JSON.parse(plan.pending),
        gained: JSON.parse(plan.gained), live: JSON.parse(plan.live) };
      accessPull = pullAccess(db, access, this.bundle.protocol, this.sql.log_end, req, horizon, read, parsed);
      const owned = req.changes.length
        ? [db.prepare(access.acked_buckets).bind(req.replica, JSON.stringify(req.changes.map((c) => [c[0]])))]
        : [];
      const ap = accessPull;
      pull = {
        statements: [...owned, ...ap.statements, db.prepare(this.sql.server_hlc)],
        read: (/** @type {Result[]} */ r) => {
          const out = ap.read(r.slice(owned.length));
          const buckets = owned.length ? `"buckets":${/** @type {any} */ (Object.values(r[0].results[0]))[0]},` : "";
          return { ...out, snapshot: out.snapshot + buckets };
        },
      };
    }
    this.session = access
      ? {
          before: [db.prepare(access.bind_user).bind(req.replica, user), db.prepare(access.session_start).bind(user, write)],
          after: [db.prepare(access.session_end)],
        }
      : { before: [], after: [] };
    let handled = changes.length; // changes settled, in page order (all, unless the budget ran out)
    /** @type {Result[]} */
    let pulled;
    budget.take();
    try {
      // The whole page, then the pull: one atomic batch, one round trip.
      const push = pages.map((page) => db.prepare(this.sql.push).bind(page, req.replica, exclude, hash));
      const { before, after } = this.session;
      pulled = (await db.batch([register, ...before, ...push, ...after, ...pull.statements])).slice(
        -pull.statements.length,
      );
    } catch (e) {
      if (refusal(e) === null) throw e;
      const done = await this.#bisect(changes, req.replica, hash, exclude, budget, e);
      rejected.push(...done.rejected);
      handled = done.handled;
      budget.take();
      pulled = await db.batch([register, ...this.session.before.slice(0, 1), ...pull.statements]);
      pulled = pulled.slice(-pull.statements.length);
    }
    if (accessPull) {
      // (Read once: `done` is known after the snapshot page ran.)
      const out = pull.read(pulled);
      pull = { ...pull, read: () => out };
      if (accessPull.done && access) {
        // The buckets sent are now the replica's. A query of its own: whether the snapshot is
        // done is known only now. Lost, a later request sends the snapshot again (harmless).
        budget.take();
        await db.prepare(access.buckets_live).bind(req.replica).run();
      }
    }

    const seqs = [...changes.slice(0, handled).map((c) => c[0]), ...tooLarge.map((r) => r.seq)].filter(isInt);
    let acked = seqs.length ? Math.max(...seqs) : 0;
    let answered = rejected;
    if (handled < changes.length) {
      // Out of queries: acknowledge only the changes before the first unsettled one, so
      // the replica sends the rest again (a replayed change changes nothing).
      acked = Math.min(acked, /** @type {number} */ (changes[handled][0]) - 1);
      answered = rejected.filter((r) => !isInt(r.seq) || r.seq <= acked);
    }
    const hlc = /** @type {any} */ (pulled[pulled.length - 1].results[0]).hlc;
    const { page, cursor, more, remaining, snapshot } = pull.read(pulled);
    return (
      `{"v":${this.bundle.protocol.version},"acked":${acked},"rejected":${JSON.stringify(answered)},` +
      `"changes":${page},"cursor":${cursor},"more":${more ? "true" : "false"},` +
      `"remaining":${remaining},${snapshot}"server_hlc":"${hlc}","schema":${version}}`
    );
  }

  /**
   * The statements of the pull half (the log, or a snapshot page; then the clock), and how
   * to read their results into the answer's fields (as Primary._pull in primary.py).
   * @param {SyncRequest} req
   * @param {number} horizon
   */
  #pullStatements(req, horizon) {
    const db = this.db;
    const bytes = this.bundle.protocol.pull_page_bytes;
    const hlc = db.prepare(this.sql.server_hlc);
    let snap = req.snapshot;
    if (snap === null && req.cursor < horizon) {
      // The log before the horizon holds values from before a migration: start from the state.
      snap = { at: null, tbl: "", pk: "", bucket: "" };
    }
    if (snap === null) {
      const scan = this.bundle.protocol.pull_scan_rows;
      return {
        statements: [db.prepare(this.sql.pull).bind(req.cursor, req.replica, req.limit, bytes, scan), hlc],
        /** @param {Result[]} r */
        read: (r) => {
          const row = /** @type {any} */ (r[0].results[0]);
          return {
            page: row.page, cursor: row.next_cursor, more: !!row.remaining, remaining: row.remaining, snapshot: "",
          };
        },
      };
    }
    const s = snap;
    const logEnd = s.at === null ? [db.prepare(this.sql.log_end)] : [];
    if (req.limit === 0) {
      // A push only: the snapshot stays where it is.
      return {
        statements: [...logEnd, hlc],
        /** @param {Result[]} r */
        read: (r) => {
          const at = s.at ?? /** @type {any} */ (r[0].results[0]).seq;
          return {
            page: "[]", cursor: req.cursor, more: true, remaining: 1,
            snapshot: `"snapshot":${snapshotJson(at, s.tbl, s.pk, false)},`,
          };
        },
      };
    }
    return {
      statements: [...logEnd, db.prepare(this.sql.snapshot).bind(s.tbl, s.pk, req.limit, bytes), hlc],
      /** @param {Result[]} r */
      read: (r) => {
        const at = s.at ?? /** @type {any} */ (r[0].results[0]).seq;
        const row = /** @type {any} */ (r[logEnd.length].results[0]);
        const more = !!row.more;
        const field = snapshotJson(at, row.last_tbl ?? s.tbl, row.last_pk ?? s.pk, !more);
        // Done: the log continues from where the snapshot started.
        return { page: row.page, cursor: more ? req.cursor : at, more: true, remaining: 1, snapshot: `"snapshot":${field},` };
      },
    };
  }

  /**
   * Who owns the replica id (and, with access rules, its user and the user's buckets),
   * then CHECK on the page (one read batch): the changes CHECK refuses, and the horizon.
   * Throws the request's refusal (another device's id, a copy behind itself, a seq pushed
   * with other content, another user's replica).
   * @param {string[]} pages
   * @param {SyncRequest} req
   * @param {string} hash
   * @param {Budget} budget
   * @param {string | null} user
   * @returns {Promise<{rejected: Rejection[], horizon: number, read: string, write: string}>}
   */
  async #check(pages, req, hash, budget, user) {
    const db = this.db;
    const access = this.bundle.access ?? null;
    budget.take();
    const head = [db.prepare(this.sql.replica).bind(req.replica)];
    if (access) {
      head.push(db.prepare(access.replica_user).bind(req.replica), db.prepare(access.user_buckets).bind(user));
    }
    const statements = [...head, ...pages.map((p) => db.prepare(this.sql.check).bind(p, req.replica))];
    const results = await db.batch(statements, "read");
    const owner = /** @type {{key_hash: string | null, high: number, horizon: number}} */ (results[0].results[0]);
    checkReplica(req, hash, owner.key_hash, owner.high);
    let read = "[]";
    let write = "[]";
    if (access) {
      checkUser(user, /** @type {any} */ (results[1].results[0]).user);
      ({ read, write } = /** @type {any} */ (results[2].results[0]));
    }
    /** @type {Rejection[]} */
    const rejected = [];
    // CHECK answers one row of one column (a JSON array), whatever the column is called.
    for (const r of results.slice(head.length)) {
      rejected.push(...JSON.parse(Object.values(/** @type {Record<string, string>} */ (r.results[0]))[0]));
    }
    if (rejected.some((r) => r.code === "replica_conflict")) {
      throw new ProtocolError(
        409,
        "replica_conflict",
        "another copy of this database already pushed different changes under this replica id " +
          "(a restored backup or a copied file): take a new replica id and push again",
      );
    }
    return { rejected, horizon: owner.horizon, read, write };
  }

  /**
   * @param {unknown[][]} changes
   * @param {string} replica
   * @param {string} hash
   * @param {string} exclude
   */
  #pushStatements(changes, replica, hash, exclude) {
    return [
      // The id's owner again: a failed batch rolled the first registration back.
      this.db.prepare(this.sql.register).bind(replica, hash),
      ...this.session.before,
      ...chunks(changes).map((p) => this.db.prepare(this.sql.push).bind(p, replica, exclude, hash)),
      ...this.session.after,
    ];
  }

  /**
   * Find the changes D1 refuses by splitting in halves; each half is its own atomic batch.
   * @param {unknown[][]} changes a page that failed as a whole with ``error``
   * @param {string} replica
   * @param {string} hash the digest of the replica's key
   * @param {string} exclude
   * @param {Budget} budget
   * @param {unknown} error
   * @returns {Promise<{rejected: Rejection[], handled: number}>} rejections, and how many
   *   leading changes were applied or rejected (fewer than all when the budget ran out)
   */
  async #bisect(changes, replica, hash, exclude, budget, error) {
    const reason = refusal(error);
    if (changes.length === 1) {
      const seq = /** @type {number} */ (changes[0][0]);
      const message = reason ?? String(error);
      // An apply trigger refused the user (access rules): "forbidden", as on the embedded primary.
      const forbidden = message.startsWith(FORBIDDEN);
      const rejection = forbidden
        ? { seq, code: "forbidden", reason: message.slice(FORBIDDEN.length) }
        : { seq, code: "constraint", reason: message };
      return { rejected: [rejection], handled: 1 };
    }
    const mid = changes.length >> 1;
    const left = await this.#tryPush(changes.slice(0, mid), replica, hash, exclude, budget);
    if (left.handled < mid) return left;
    const right = await this.#tryPush(changes.slice(mid), replica, hash, exclude, budget);
    return { rejected: [...left.rejected, ...right.rejected], handled: mid + right.handled };
  }

  /**
   * @param {unknown[][]} changes
   * @param {string} replica
   * @param {string} hash
   * @param {string} exclude
   * @param {Budget} budget
   * @returns {Promise<{rejected: Rejection[], handled: number}>}
   */
  async #tryPush(changes, replica, hash, exclude, budget) {
    if (!budget.takeForPush()) return { rejected: [], handled: 0 };
    try {
      await this.db.batch(this.#pushStatements(changes, replica, hash, exclude));
      return { rejected: [], handled: changes.length };
    } catch (e) {
      if (refusal(e) === null) throw e;
      return this.#bisect(changes, replica, hash, exclude, budget, e);
    }
  }
}
