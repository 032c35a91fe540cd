/**
 * Stopping a statement that runs too long: `db.interrupt()` and
 * `connect(..., statement_timeout=...)`.
 *
 * SQLite calls a progress handler every PROGRESS_STEPS steps of its virtual
 * machine; returning 1 stops the statement with SQLITE_INTERRUPT. While a
 * page's request runs, the handler here checks its deadline and whether its
 * connection was interrupted since it was sent (signals.js says where the
 * page leaves that signal). The worker's own work (sync) runs unguarded.
 *
 * A request carries what the page knew when it sent it: `g`, how many
 * interrupts its connection had seen (absent: none), and `dl`, its deadline
 * in epoch milliseconds (absent: no limit). A request whose deadline passed
 * before its turn came does not start at all: the page has stopped waiting
 * for it, and must not see it happen afterwards. An interrupt stops what
 * runs; requests queued behind another session's transaction are answered
 * at once when the interrupt message reaches the worker (sessions.js).
 * Like sqlite3_interrupt, it leaves alone what starts after it.
 *
 * What an interrupted request undoes is what SQLite undoes: the statement
 * (or the all-or-nothing unit: executemany, batch, script), and, when it was
 * a write inside the session's transaction, that whole transaction — SQLite
 * always ends a transaction whose write it interrupts. The error data says
 * which (`stop: {why, started, lost_tx}`); Python words the message.
 */

import { EdgeError } from './errors.js';
import { genOf, SIGNAL_SLOTS } from './signals.js';

export const SQLITE_INTERRUPT = 9;
/**
 * Virtual-machine steps between two checks: each check costs well under a
 * microsecond and a few thousand steps take tens of microseconds, so a
 * statement stops within a fraction of a millisecond of its signal.
 */
const PROGRESS_STEPS = 2000;
/** How often the signal file is read while a statement runs (the SharedArrayBuffer is read at every check). */
const FILE_EVERY_MS = 1;

/** The page's interrupt slots (a SharedArrayBuffer it writes), set by db-worker.js. @type {BigUint64Array | null} */
let pageSlots = null;

/** @param {BigUint64Array | null} slots */
export function setPageSlots(slots) {
  pageSlots = slots;
}

/** Epoch milliseconds, the clock requests' deadlines are written in (Python's time.time()). */
export function epochMs() {
  return performance.timeOrigin + performance.now();
}

/**
 * Has a request's deadline passed before it could start?
 * @param {any} req @returns {boolean}
 */
export function late(req) {
  return !!req.dl && epochMs() > req.dl;
}

/**
 * The error for a request stopped by an interrupt or its deadline.
 * @param {string} why @param {boolean} started @param {boolean} lostTx @param {string} [prefix]
 */
export function interruptedError(why, started, lostTx, prefix = '') {
  const e = new EdgeError(`${prefix}interrupted`, SQLITE_INTERRUPT, 'OperationalError', 'SQLITE_INTERRUPT');
  e.extra = { stop: { why, started, lost_tx: lostTx } };
  return e;
}

/** The guard of one database's connection. */
export class Interrupts {
  /** @param {{capi: any, p: number, inTx: () => boolean, changes: {discard: () => void}}} db */
  constructor(db) {
    this.db = db;
    /** The database's signal file (signals.js), once opened. @type {import('./signals.js').SignalFile | null} */
    this.file = null;
    /** The interrupt key of each session (engine session -> key), from its open request. */
    this.keys = new Map();
    /** The request running now, when it can be stopped. */
    this.current = null;
    db.capi.sqlite3_progress_handler(db.p, PROGRESS_STEPS, () => this.check(), 0);
  }

  /** @returns {0 | 1} 1 stops the running statement */
  check() {
    const c = this.current;
    if (c === null || c.why !== null) return 0; // fired once: the rollback after it must run
    const now = performance.now();
    if (now > c.until) {
      c.why = 'timeout';
      return 1;
    }
    if (c.key) {
      if (c.page && pageSlots && genOf(Atomics.load(pageSlots, c.key % SIGNAL_SLOTS), c.key) > c.g) {
        c.why = 'interrupt';
        return 1;
      }
      if (this.file && now - c.readAt >= FILE_EVERY_MS) {
        c.readAt = now;
        if (this.file.read(c.key) > c.g) {
          c.why = 'interrupt';
          return 1;
        }
      }
    }
    return 0;
  }

  /**
   * Run a page's request so that it can be stopped; refuse it if it is late or interrupted already.
   * @template T @param {any} req @param {boolean} hadTx its session holds a transaction
   * @param {() => T} work @returns {T}
   */
  guard(req, hadTx, work) {
    if (late(req)) throw interruptedError('timeout', false, false);
    const key = this.keys.get(req.s || 0) || 0;
    const now = performance.now();
    const c = {
      key,
      g: req.g || 0,
      page: !!req.$page,
      until: req.dl ? now + (req.dl - epochMs()) : Infinity,
      readAt: now,
      why: null,
    };
    this.current = c;
    try {
      return work();
    } catch (e) {
      if (c.why !== null && e instanceof EdgeError && (e.code & 0xff) === SQLITE_INTERRUPT) {
        const prefix = e.message.endsWith('interrupted') ? e.message.slice(0, -'interrupted'.length) : '';
        const lostTx = hadTx && !this.db.inTx();
        if (lostTx) this.db.changes.discard(); // what the transaction wrote never happened
        throw interruptedError(c.why, true, lostTx, prefix);
      }
      throw e;
    } finally {
      this.current = null;
    }
  }
}
