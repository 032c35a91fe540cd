/**
 * The Database a worker owns: one SQLite connection with its transactions,
 * sessions, request log and change tracking, put together.
 *
 * Each of those jobs lives in its own file (statements.js, transactions.js,
 * sessions.js, request-log.js, changes.js, dispatch.js); this class wires
 * them and is the one interface the rest of the worker uses, so each part
 * can change behind it. What sync.js relies on — query, exec, runProgram,
 * runScript, inTx (statements.js), atomicInternal, whenIdle, beforeCommit,
 * onCommit — keeps these names and meanings.
 */

import { ChangeTracker } from './changes.js';
import { Cursors } from './cursors.js';
import { answer } from './dispatch.js';
import { Interrupts } from './interrupts.js';
import { RequestLog } from './request-log.js';
import { Sessions } from './sessions.js';
import { Statements } from './statements.js';
import { atomic, atomicInternal, commit } from './transactions.js';

export class Database extends Statements {
  /**
   * @param {any} sqlite3 the initialised SQLite-Wasm module
   * @param {any} oo1db an open sqlite3.oo1.DB
   * @param {{name: string, storage: string, persistent: boolean, warning: string|null}} info
   */
  constructor(sqlite3, oo1db, info) {
    super(sqlite3, oo1db, new ChangeTracker(sqlite3.capi, oo1db.pointer));
    this.info = info;
    /** The opfs-sahpool VFS the file lives in, or null in memory (store.js). */
    this.pool = null;
    /** The sync engine, when the database syncs (sync-host.js). */
    this.syncer = null;
    /** SQL run inside an app's write transaction just before COMMIT (sync's outbox unit marker). */
    this.beforeCommit = [];
    /** Called after every commit of the app's (sync pushes soon). */
    this.onCommit = null;
    this.sessions = new Sessions(this);
    this.log = new RequestLog(this);
    /** Stops a page's statement on db.interrupt() or its deadline (interrupts.js). */
    this.interrupts = new Interrupts(this);
    /** Open db.iterate() statements, read page by page (cursors.js). */
    this.cursors = new Cursors(this);
  }

  /** Called with the set of tables each committed change touched (live queries). */
  set onChange(fn) {
    this.changes.onChange = fn;
  }

  get onChange() {
    return this.changes.onChange;
  }

  // -- sessions and their requests ---------------------------------------------------------

  /**
   * A new session (a connect() in some tab's page).
   * @param {number} [key] its interrupt key (signals.js), 0 or absent for none
   * @returns {number}
   */
  openSession(key = 0) {
    const s = this.sessions.add();
    if (key) this.interrupts.keys.set(s, key);
    return s;
  }

  /** A session goes away: its cursors close, its open transaction is rolled back. @param {number} s */
  endSession(s) {
    this.cursors.closeSession(s);
    this.interrupts.keys.delete(s);
    this.sessions.end(s);
  }

  close() {
    this.cursors.closeAll();
    super.close();
  }

  /**
   * Answer one request for a session; it queues while another session holds
   * the transaction (a close never waits).
   * @param {import('./dispatch.js').Request} req
   * @returns {string | Promise<string>} answer JSON text
   */
  handle(req) {
    const s = req.s || 0;
    if (req.op !== 'close' && this.sessions.blocked(s)) return this.sessions.wait(req.s, () => this.handle(req), req);
    return answer(this, req);
  }

  /**
   * Answer a request that carries a key exactly once (request-log.js).
   * @param {any} req @param {import('./request-log.js').RequestKey} key
   * @returns {string | Promise<string>}
   */
  answerOnce(req, key) {
    return this.log.answerOnce(req, key);
  }

  /** Resolves when no session holds a transaction (the worker's own work waits for that). */
  whenIdle() {
    return this.sessions.whenIdle();
  }

  // -- transactions (transactions.js) ---------------------------------------------------------

  /** Commit the app's transaction, with sync's hooks. */
  commit() {
    commit(this);
  }

  /** @template T @param {() => T} work all or nothing @returns {T} */
  atomic(work) {
    return atomic(this, work);
  }

  /**
   * The worker's own atomic work (sync, migrations): no outbox marker, no
   * onCommit. Call after whenIdle().
   * @template T @param {() => T} work @returns {T}
   */
  atomicInternal(work) {
    return atomicInternal(this, work);
  }

  /** The tables a statement reads and writes. @param {string} sql */
  tablesOf(sql) {
    return this.changes.tablesOf(this.prepare(sql));
  }
}
