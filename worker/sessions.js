/**
 * Sessions on one database: who holds the transaction, who waits for it.
 *
 * Every `connect()` in a page (and, through the tab router, in other tabs)
 * is a session. SQLite has one connection per database here, so while a
 * session holds an explicit transaction the others' requests queue, up to
 * BUSY_TIMEOUT_MS, and the worker's own work (sync) waits in whenIdle().
 * After every request `settle()` records who holds the transaction now and,
 * once nobody does, reports committed changes and lets the queue run.
 */

import { EdgeError, SQLITE_BUSY } from './errors.js';
import { errorJson } from './dispatch.js';
import { epochMs, interruptedError } from './interrupts.js';

/** How long a request waits for another session's transaction before SQLITE_BUSY. */
export const BUSY_TIMEOUT_MS = 5000;

/** @typedef {{s: number, req: any, run: () => void, fail: (body: string) => void, timer: any}} Waiting */

export class Sessions {
  /** @param {import('./engine.js').Database} db */
  constructor(db) {
    this.db = db;
    /** Session holding the open transaction, or 0. */
    this.txOwner = 0;
    /** @type {Waiting[]} */
    this.waiting = [];
    /** Resolvers of whenIdle(). @type {(() => void)[]} */
    this.idle = [];
    /** @type {Set<number>} */
    this.open = new Set();
    this.next = 1;
  }

  /** A new session (a connect() in some tab's page). @returns {number} */
  add() {
    const s = this.next++;
    this.open.add(s);
    return s;
  }

  /** @param {number} s @returns {boolean} another session holds the transaction */
  blocked(s) {
    return this.txOwner !== 0 && this.txOwner !== s;
  }

  /**
   * Queue a request of session `s` behind another session's transaction,
   * for BUSY_TIMEOUT_MS or until its deadline (`req.dl`), whichever is sooner.
   * @param {number} s @param {() => string | Promise<string>} run answers it once its turn comes
   * @param {any} req the request (its deadline, and the interrupts it was sent after)
   * @returns {Promise<string>}
   */
  wait(s, run, req) {
    return new Promise((resolve) => {
      const untilDeadline = req && req.dl ? req.dl - epochMs() : Infinity;
      const busy = BUSY_TIMEOUT_MS <= untilDeadline;
      /** @type {Waiting} */
      const entry = {
        s,
        req,
        run: () => resolve(run()),
        fail: (body) => {
          this.waiting.splice(this.waiting.indexOf(entry), 1);
          clearTimeout(entry.timer);
          resolve(body);
        },
        timer: setTimeout(() => entry.fail(busy
          ? errorJson(new EdgeError(
            `database is locked: another connection has held a transaction open for more than ${BUSY_TIMEOUT_MS / 1000} s; commit or roll it back (async with db.transaction() does this for you)`,
            SQLITE_BUSY, 'OperationalError'), false)
          : errorJson(interruptedError('timeout', false, false), false)), Math.max(0, Math.min(BUSY_TIMEOUT_MS, untilDeadline))),
      };
      this.waiting.push(entry);
    });
  }

  /**
   * Session `s` was interrupted (its gen is now `gen`): its requests queued
   * here, sent before that, are answered as interrupted without running.
   * @param {number} s @param {number} gen
   */
  interrupted(s, gen) {
    for (const entry of this.waiting.filter((w) => w.s === s && ((w.req && w.req.g) || 0) < gen)) {
      entry.fail(errorJson(interruptedError('interrupt', false, false), false));
    }
  }

  /**
   * After a request of session `s`: record who holds the transaction, and
   * when nobody does, report committed changes and wake the waiters.
   * @param {number} s
   */
  settle(s) {
    const db = this.db;
    this.txOwner = db.inTx() ? s : 0;
    if (!this.txOwner) db.changes.flush(db);
    while (!this.txOwner && this.waiting.length) {
      const entry = this.waiting.shift();
      clearTimeout(entry.timer);
      entry.run();
    }
    if (!this.txOwner && this.idle.length) {
      const waiters = this.idle;
      this.idle = [];
      for (const resolve of waiters) resolve();
    }
  }

  /** Resolves when no session holds a transaction (the worker's own work waits for that). */
  async whenIdle() {
    while (this.txOwner) {
      await new Promise((resolve) => this.idle.push(resolve));
    }
  }

  /** A session goes away: its open transaction is rolled back. @param {number} s */
  end(s) {
    const db = this.db;
    this.open.delete(s);
    if (this.txOwner === s) {
      if (db.inTx()) db.run('ROLLBACK', []);
      db.changes.discard();
      this.settle(0);
    }
    // Its queued requests can no longer be answered to anyone.
    this.waiting = this.waiting.filter((w) => {
      if (w.s !== s) return true;
      clearTimeout(w.timer);
      return false;
    });
  }
}
