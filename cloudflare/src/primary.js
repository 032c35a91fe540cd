// The D1 primary: answers one POST /sync with the bundle's SQL, as the embedded
// primary (py/edgesql/server/primary.py) does with the same statements.
//
// It holds no merge logic. Per request:
//   CHECK   one read: the page's problems (unknown table or column, stamps from the
//           future, a replica id used by another copy), as JSON;
//   PUSH    the page's changes, ONE atomic db.batch (a page longer than D1's 2 MB per
//           value is bound in several chunks, still one batch); the apply triggers
//           merge each cell; PULL and SERVER_HLC ride in the same batch;
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
import { ProtocolError, isInt } from "./protocol.js";

/** @typedef {import("./bundle.js").Bundle} Bundle */
/** @typedef {import("./protocol.js").SyncRequest} SyncRequest */
/** @typedef {{seq: number, code: string, reason: string}} Rejection */

const encoder = new TextEncoder();

// D1 reports errors as `D1_ERROR: <SQLite's message>: SQLITE_<CODE> (extended: ...)`, with no
// code property: the SQLite result code at the end is the only structured part. These are the
// codes of a change the app's tables refuse (apsw's ConstraintError, TooBigError, MismatchError).
const CHANGE_REFUSED = /: SQLITE_(CONSTRAINT|TOOBIG|MISMATCH)( \(extended: \w+\))?$/;

/**
 * SQLite's message when D1 refused a change for a constraint, else null.
 * @param {unknown} e
 * @returns {string | null}
 */
export function refusal(e) {
  const message = e instanceof Error ? e.message : String(e);
  if (!CHANGE_REFUSED.test(message)) return null;
  return message.replace(/^D1_ERROR: /, "").replace(CHANGE_REFUSED, "");
}

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
   * @param {D1Database} db
   * @param {Bundle} bundle
   * @param {number} queryLimit D1 queries one invocation may make
   */
  constructor(db, bundle, queryLimit) {
    this.db = db;
    this.bundle = bundle;
    this.sql = bundle.sql;
    this.queryLimit = queryLimit;
  }

  /**
   * Apply a push and answer with the next pull page: the response body.
   * @param {SyncRequest} req
   * @returns {Promise<string>}
   */
  async sync(req) {
    const version = this.bundle.schema_version;
    if (req.schema > version) {
      throw new ProtocolError(
        409,
        "schema_ahead",
        `this replica is at schema version ${req.schema}, the primary at ${version}: ` +
          "the primary was rolled back; restore its migrations",
      );
    }
    const budget = new Budget(this.queryLimit);
    const db = this.db;
    let { changes, tooLarge } = req;
    let pages = changes.length ? chunks(changes) : [];
    if (pages.some((p) => p.length * 3 > D1_MAX_VALUE_BYTES && encoder.encode(p).length > D1_MAX_VALUE_BYTES)) {
      const { kept, refused } = unbindable(changes); // a chunk of one change, over 2 MB
      changes = kept;
      tooLarge = [...tooLarge, ...refused];
      pages = changes.length ? chunks(changes) : [];
    }
    const rejected = await this.#check(pages, req.replica, budget);
    // The seqs CHECK refused, as SQL compares them: PUSH's ?3 leaves them out.
    const exclude = JSON.stringify(rejected.map((r) => r.seq).filter((s) => s !== null));
    rejected.push(...tooLarge);

    const pull = [
      db.prepare(this.sql.pull).bind(req.cursor, req.replica, req.limit, this.bundle.protocol.pull_page_bytes),
      db.prepare(this.sql.server_hlc),
    ];
    let handled = changes.length; // changes settled, in page order (all, unless the budget ran out)
    /** @type {D1Result[]} */
    let pulled;
    budget.take();
    try {
      // The whole page, then the pull: one atomic batch, one round trip.
      const push = pages.map((page) => db.prepare(this.sql.push).bind(page, req.replica, exclude));
      pulled = (await db.batch([...push, ...pull])).slice(-2);
    } catch (e) {
      if (refusal(e) === null) throw e;
      const done = await this.#bisect(changes, req.replica, exclude, budget, e);
      rejected.push(...done.rejected);
      handled = done.handled;
      budget.take();
      pulled = await db.batch(pull);
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
    const page = /** @type {any} */ (pulled[0].results[0]);
    const hlc = /** @type {any} */ (pulled[1].results[0]).hlc;
    return (
      `{"v":1,"acked":${acked},"rejected":${JSON.stringify(answered)},` +
      `"changes":${page.page},"cursor":${page.next_cursor},"more":${page.remaining ? "true" : "false"},` +
      `"remaining":${page.remaining},"server_hlc":"${hlc}","schema":${version}}`
    );
  }

  /**
   * Run CHECK on the page (one batch over its chunks): the changes it refuses.
   * @param {string[]} pages
   * @param {string} replica
   * @param {Budget} budget
   * @returns {Promise<Rejection[]>}
   */
  async #check(pages, replica, budget) {
    if (!pages.length) return [];
    const db = this.db;
    budget.take();
    const checks = await db.batch(pages.map((p) => db.prepare(this.sql.check).bind(p, replica)));
    /** @type {Rejection[]} */
    const rejected = [];
    // CHECK answers one row of one column (a JSON array), whatever the column is called.
    for (const r of checks) {
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
    return rejected;
  }

  /**
   * @param {unknown[][]} changes
   * @param {string} replica
   * @param {string} exclude
   */
  #pushStatements(changes, replica, exclude) {
    return chunks(changes).map((p) => this.db.prepare(this.sql.push).bind(p, replica, exclude));
  }

  /**
   * Find the changes D1 refuses by splitting in halves; each half is its own atomic batch.
   * @param {unknown[][]} changes a page that failed as a whole with ``error``
   * @param {string} replica
   * @param {string} exclude
   * @param {Budget} budget
   * @param {unknown} error
   * @returns {Promise<{rejected: Rejection[], handled: number}>} rejections, and how many
   *   leading changes were applied or rejected (fewer than all when the budget ran out)
   */
  async #bisect(changes, replica, exclude, budget, error) {
    const reason = refusal(error);
    if (changes.length === 1) {
      const seq = /** @type {number} */ (changes[0][0]);
      return { rejected: [{ seq, code: "constraint", reason: reason ?? String(error) }], handled: 1 };
    }
    const mid = changes.length >> 1;
    const left = await this.#tryPush(changes.slice(0, mid), replica, exclude, budget);
    if (left.handled < mid) return left;
    const right = await this.#tryPush(changes.slice(mid), replica, exclude, budget);
    return { rejected: [...left.rejected, ...right.rejected], handled: mid + right.handled };
  }

  /**
   * @param {unknown[][]} changes
   * @param {string} replica
   * @param {string} exclude
   * @param {Budget} budget
   * @returns {Promise<{rejected: Rejection[], handled: number}>}
   */
  async #tryPush(changes, replica, exclude, budget) {
    if (!budget.takeForPush()) return { rejected: [], handled: 0 };
    try {
      await this.db.batch(this.#pushStatements(changes, replica, exclude));
      return { rejected: [], handled: changes.length };
    } catch (e) {
      if (refusal(e) === null) throw e;
      return this.#bisect(changes, replica, exclude, budget, e);
    }
  }
}
