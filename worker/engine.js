/**
 * One SQLite database inside the worker, and the requests it answers.
 *
 * The engine is synchronous on purpose: a request that can run now returns
 * its response text at once, so the SharedArrayBuffer fast path can answer
 * without a trip through the event loop. A request that must wait (another
 * session holds an interactive transaction) returns a Promise instead.
 *
 * Sessions: every `connect()` in a page (and, through the tab router, in
 * other tabs) is a session. SQLite has one connection per database here, so
 * while a session holds an explicit transaction the others queue, up to
 * BUSY_TIMEOUT_MS.
 */

import { Real, realToJson, toBase64 } from './codec.js';
import {
  errorToData, EdgeError, SQLITE_BUSY, SQLITE_MISUSE, SQLITE_TOOBIG, SQLITE_MISMATCH,
} from './errors.js';
import { SQLITE_IOERR, storageFull, takeStorageFull } from './quota.js';

const SQLITE_ROW = 100;
const SQLITE_DONE = 101;
const SQLITE_INTEGER = 1;
const SQLITE_FLOAT = 2;
const SQLITE_TEXT = 3;
const SQLITE_BLOB = 4;
const TWO53 = 2 ** 53;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
/** Statements kept prepared per database; beyond this the oldest is finalized. */
const STMT_CACHE_SIZE = 256;
/** How long a request waits for another session's transaction before SQLITE_BUSY. */
export const BUSY_TIMEOUT_MS = 5000;

const decoder = new TextDecoder();

/**
 * @typedef {{op: string, s?: number, sql?: string, params?: any, rows?: any[],
 *   stmts?: any[], action?: string, name?: string, mode?: string}} Request
 */

export class Database {
  /**
   * @param {any} sqlite3 the initialised SQLite-Wasm module
   * @param {any} oo1db an open sqlite3.oo1.DB
   * @param {{name: string, storage: string, persistent: boolean, warning: string|null}} info
   */
  constructor(sqlite3, oo1db, info) {
    this.sqlite3 = sqlite3;
    this.capi = sqlite3.capi;
    this.wasm = sqlite3.wasm;
    this.oo1 = oo1db;
    this.p = oo1db.pointer;
    this.info = info;
    /** @type {Map<string, number>} */
    this.stmts = new Map();
    /** What each prepared statement reads and writes (from the authorizer). @type {Map<number, {reads: Set<string>, writes: Set<string>}>} */
    this.meta = new Map();
    /** Tables written by the open transaction (or the statement), told to listeners on commit. */
    this.dirty = new Set();
    /** Called with the set of tables a committed change touched (live queries). */
    this.onChange = null;
    this.collecting = null;
    this.installAuthorizer();
    /** Session holding the open transaction, or 0. */
    this.txOwner = 0;
    /** @type {{s: number, run: () => void, timer: any}[]} */
    this.waiting = [];
    /** Resolvers of whenIdle(). @type {(() => void)[]} */
    this.idle = [];
    /** The sync engine, when the database syncs (sync.js). */
    this.syncer = null;
    /** SQL run inside a write transaction just before COMMIT (the outbox unit marker). */
    this.beforeCommit = [];
    /** Called after every committed change with the set of tables written (live queries). */
    this.onCommit = null;
    this.sessions = new Set();
    this.nextSession = 1;
    /** True while answerOnce wraps a request in its own transaction. */
    this.wrapping = false;
    this.keysReady = false;
  }

  /** A new session (a connect() in some tab's page). */
  openSession() {
    const s = this.nextSession++;
    this.sessions.add(s);
    return s;
  }

  // -- requests sent again after an owner tab went away (see tabs.js) ------------------

  ensureKeys() {
    if (this.keysReady) return;
    this.run('CREATE TABLE IF NOT EXISTS _edgesql_requests (client TEXT NOT NULL, id INTEGER NOT NULL, ' +
      'response TEXT NOT NULL, PRIMARY KEY (client, id)) WITHOUT ROWID', []);
    this.keysReady = true;
  }

  storedAnswer(key) {
    this.ensureKeys();
    const rows = this.query('SELECT response FROM _edgesql_requests WHERE client = ? AND id = ?', [key.client, key.id]);
    return rows.length ? rows[0][0] : null;
  }

  /** Record a request's answer in the transaction that applied it. */
  recordAnswer(key, body) {
    this.run('INSERT OR REPLACE INTO _edgesql_requests (client, id, response) VALUES (?, ?, ?)', [key.client, key.id, body]);
    // Only the newest answers per client matter: a resend follows its request within seconds.
    this.run('DELETE FROM _edgesql_requests WHERE client = ? AND id < ?', [key.client, key.id - 1000]);
  }

  /** Could this request change the database (so a resend must not run it twice)? */
  mayWrite(req) {
    switch (req.op) {
      case 'executemany': case 'batch': case 'script': return true;
      case 'execute':
        try {
          return !this.isReadonly(req.sql);
        } catch {
          return false; // it will fail to prepare again, changing nothing
        }
      default: return false;
    }
  }

  /**
   * Answer a request that carries a key (client, id): a request that already
   * ran is answered from its record, and a write records its answer in its own
   * transaction, so it runs exactly once however often it is sent.
   */
  answerOnce(req, key) {
    const s = req.s || 0;
    if (req.op === 'tx.check') {
      const stored = this.storedAnswer(req.key);
      if (stored !== null) return stored;
      return errorJson(new EdgeError('the tab that held the database closed before this transaction committed, ' +
        'so it was rolled back; run the whole transaction again', 4, 'OperationalError', 'SQLITE_ABORT'), false);
    }
    if (this.txOwner && this.txOwner !== s) return this.wait(req, key);
    const stored = this.storedAnswer(key);
    if (stored !== null) return stored;
    if (req.op === 'tx' && req.action === 'commit' && this.inTx()) {
      try {
        this.recordAnswer(key, '{"ok":true,"tx":false}');
      } catch (e) {
        return errorJson(e, this.inTx());
      }
      return this.answer(req);
    }
    if (this.inTx() || !this.mayWrite(req)) return this.answer(req);
    let body;
    this.run('BEGIN IMMEDIATE', []);
    this.wrapping = true;
    try {
      body = this.dispatch(req, s);
    } catch (e) {
      body = errorJson(e, false);
    } finally {
      this.wrapping = false;
    }
    try {
      if (body.startsWith('{"ok":true')) {
        this.recordAnswer(key, body);
        this.commit();
      } else {
        this.run('ROLLBACK', []);
        this.dirty.clear();
      }
    } catch (e) {
      if (this.inTx()) this.run('ROLLBACK', []);
      this.dirty.clear();
      body = errorJson(e, false);
    }
    this.settle(s);
    return body;
  }

  /**
   * SQLite calls the authorizer while it compiles a statement, triggers
   * included: recording its table accesses tells live queries which tables a
   * query reads and which a write touches, without parsing SQL.
   */
  installAuthorizer() {
    const SQLITE_DELETE = 9;
    const SQLITE_INSERT = 18;
    const SQLITE_READ = 20;
    const SQLITE_UPDATE = 23;
    this.capi.sqlite3_set_authorizer(this.p, (_pV, code, s0) => {
      const c = this.collecting;
      // edgesql's own tables count too: devtools watch the outbox and the clock.
      if (c && s0 && !s0.startsWith('sqlite_')) {
        if (code === SQLITE_READ) c.reads.add(s0);
        else if (code === SQLITE_INSERT || code === SQLITE_UPDATE || code === SQLITE_DELETE) c.writes.add(s0);
      }
      return 0;
    }, 0);
  }

  /** The tables a statement reads and writes. */
  tablesOf(sql) {
    const p = this.prepare(sql);
    return this.meta.get(p) || { reads: new Set(), writes: new Set() };
  }

  /** After a successful commit (or autocommit write): tell listeners which tables changed. */
  flushDirty() {
    if (!this.dirty.size || this.inTx()) return;
    const tables = this.dirty;
    this.dirty = new Set();
    if (this.onChange) this.onChange(tables);
  }

  // -- statements -------------------------------------------------------------

  /** Prepare (or reuse) one statement; refuses SQL holding several. */
  prepare(sql) {
    const cached = this.stmts.get(sql);
    if (cached) {
      // Re-insert to keep the Map in least-recently-used order.
      this.stmts.delete(sql);
      this.stmts.set(sql, cached);
      return cached;
    }
    const { capi, wasm } = this;
    const [pSql, nSql] = wasm.allocCString(sql, true);
    const stack = wasm.pstack.pointer;
    let pStmt = 0;
    const tables = { reads: new Set(), writes: new Set() };
    try {
      const ppStmt = wasm.pstack.allocPtr();
      const ppTail = wasm.pstack.allocPtr();
      this.collecting = tables;
      let rc;
      try {
        rc = capi.sqlite3_prepare_v3(this.p, pSql, nSql, 0, ppStmt, ppTail);
      } finally {
        this.collecting = null;
      }
      if (rc) throw this.error(rc);
      pStmt = wasm.peekPtr(ppStmt);
      const pTail = wasm.peekPtr(ppTail);
      if (!pStmt) {
        throw new EdgeError('the SQL holds no statement (only blanks or comments)', SQLITE_MISUSE, 'ProgrammingError');
      }
      if (pTail && pTail < pSql + nSql && this.hasStatement(pTail, pSql + nSql - pTail)) {
        capi.sqlite3_finalize(pStmt);
        throw new EdgeError(
          'You can only execute one statement at a time: use executescript() or batch() for several',
          SQLITE_MISUSE, 'ProgrammingError');
      }
    } finally {
      wasm.pstack.restore(stack);
      wasm.dealloc(pSql);
    }
    this.stmts.set(sql, pStmt);
    this.meta.set(pStmt, tables);
    if (this.stmts.size > STMT_CACHE_SIZE) {
      const [oldSql, oldStmt] = this.stmts.entries().next().value;
      this.stmts.delete(oldSql);
      this.meta.delete(oldStmt);
      capi.sqlite3_finalize(oldStmt);
    }
    return pStmt;
  }

  /** True if the n bytes at pSql hold another statement (not just blanks/comments). */
  hasStatement(pSql, n) {
    const { capi, wasm } = this;
    const stack = wasm.pstack.pointer;
    try {
      const pp = wasm.pstack.allocPtr();
      const rc = capi.sqlite3_prepare_v3(this.p, pSql, n, 0, pp, null);
      const p = wasm.peekPtr(pp);
      if (p) capi.sqlite3_finalize(p);
      return rc !== 0 || !!p;
    } finally {
      wasm.pstack.restore(stack);
    }
  }

  /** @returns {EdgeError} SQLite's own error for this connection */
  error(rc, prefix = '') {
    const { capi } = this;
    const code = capi.sqlite3_extended_errcode(this.p) || rc;
    const msg = capi.sqlite3_errmsg(this.p);
    // opfs-sahpool reports a full quota as a plain I/O error: say what it is (quota.js).
    if ((code & 0xff) === SQLITE_IOERR && takeStorageFull()) {
      return storageFull(`${prefix}this write was not saved (SQLite: ${msg})`);
    }
    return new EdgeError(prefix + msg, code, undefined, capi.sqlite3_js_rc_str(code));
  }

  bind(pStmt, params) {
    const { capi } = this;
    const count = capi.sqlite3_bind_parameter_count(pStmt);
    if (Array.isArray(params)) {
      if (params.length !== count) {
        throw new EdgeError(
          `Incorrect number of bindings supplied. The current statement uses ${count}, and there are ${params.length} supplied.`,
          SQLITE_MISUSE, 'ProgrammingError');
      }
      for (let i = 0; i < count; i++) this.bindValue(pStmt, i + 1, params[i], i);
      return;
    }
    if (params === null || typeof params !== 'object') {
      throw new EdgeError('params must be a list or a dict', SQLITE_MISUSE, 'ProgrammingError');
    }
    for (let i = 1; i <= count; i++) {
      const name = capi.sqlite3_bind_parameter_name(pStmt, i);
      if (!name) {
        throw new EdgeError(
          `parameter ${i} is positional (?) but the parameters were given as a dict; pass a sequence`,
          SQLITE_MISUSE, 'ProgrammingError');
      }
      const key = name.slice(1);
      if (!Object.prototype.hasOwnProperty.call(params, key)) {
        throw new EdgeError(`You did not supply a value for binding parameter ${name}.`,
          SQLITE_MISUSE, 'ProgrammingError');
      }
      this.bindValue(pStmt, i, params[key], key);
    }
  }

  bindValue(pStmt, i, v, key) {
    const { capi } = this;
    let rc;
    const where = typeof key === 'number' ? `parameter ${key + 1}` : `parameter :${key}`;
    if (v === null || v === undefined) rc = capi.sqlite3_bind_null(pStmt, i);
    else if (typeof v === 'number') {
      if (Number.isInteger(v)) {
        rc = (v >= -0x80000000 && v <= 0x7fffffff)
          ? capi.sqlite3_bind_int(pStmt, i, v)
          : capi.sqlite3_bind_int64(pStmt, i, BigInt(v));
      } else rc = capi.sqlite3_bind_double(pStmt, i, v);
    } else if (typeof v === 'string') {
      if (!v.isWellFormed()) {
        throw new EdgeError(
          `${where} is a str that is not valid Unicode (it holds a lone surrogate); SQLite TEXT is UTF-8: fix the string or bind it as bytes`,
          SQLITE_MISMATCH, 'ProgrammingError');
      }
      // Copy into wasm memory ourselves: sqlite-wasm 3.54.1's sqlite3_bind_text()
      // throws "pMem is not defined" when handed a JS string.
      const [p, n] = this.wasm.allocCString(v, true);
      rc = capi.sqlite3_bind_text(pStmt, i, p, n, capi.SQLITE_WASM_DEALLOC);
    } else if (typeof v === 'bigint') {
      if (v < INT64_MIN || v > INT64_MAX) {
        throw new EdgeError(
          `${where} is ${v}, outside SQLite's 64-bit INTEGER range [-2**63, 2**63-1]; store it as TEXT or split it`,
          SQLITE_TOOBIG, 'DataError');
      }
      rc = capi.sqlite3_bind_int64(pStmt, i, v);
    } else if (v instanceof Real) rc = capi.sqlite3_bind_double(pStmt, i, v.value);
    else if (typeof v === 'boolean') rc = capi.sqlite3_bind_int(pStmt, i, v ? 1 : 0);
    else if (v instanceof Uint8Array) {
      // An empty blob bound as a null pointer would become NULL, not X''.
      rc = v.length ? capi.sqlite3_bind_blob(pStmt, i, this.wasm.allocFromTypedArray(v), v.length, capi.SQLITE_WASM_DEALLOC)
        : capi.sqlite3_bind_zeroblob(pStmt, i, 0);
    } else {
      throw new EdgeError(`${where} has a type SQLite cannot store`, SQLITE_MISMATCH, 'ProgrammingError');
    }
    if (rc) throw this.error(rc, `${where}: `);
  }

  /** One column of the current row, as JSON text Python reads back exactly. */
  columnJson(pStmt, i) {
    const { capi, wasm } = this;
    switch (capi.sqlite3_column_type(pStmt, i)) {
      case SQLITE_INTEGER: {
        const d = capi.sqlite3_column_double(pStmt, i);
        // Below 2^53 the double is the integer exactly; above, read all 64 bits.
        return (d < TWO53 && d > -TWO53) ? String(d) : String(capi.sqlite3_column_int64(pStmt, i));
      }
      case SQLITE_FLOAT: return realToJson(capi.sqlite3_column_double(pStmt, i));
      case SQLITE_TEXT: {
        const p = wasm.exports.sqlite3_column_text(pStmt, i);
        const n = capi.sqlite3_column_bytes(pStmt, i);
        return JSON.stringify(n ? decoder.decode(wasm.heap8u().subarray(Number(p), Number(p) + n)) : '');
      }
      case SQLITE_BLOB: {
        const p = capi.sqlite3_column_blob(pStmt, i);
        const n = capi.sqlite3_column_bytes(pStmt, i);
        return n ? `{"$b":"${toBase64(wasm.heap8u().subarray(Number(p), Number(p) + n))}"}` : '{"$b":""}';
      }
      default: return 'null';
    }
  }

  /**
   * Run a prepared statement to completion.
   * @returns {{cols: string[], rows: string[], n: number, rowid: string}}
   */
  run(sql, params) {
    const { capi } = this;
    const pStmt = this.prepare(sql);
    const before = capi.sqlite3_total_changes(this.p);
    const rows = [];
    let ncol = 0;
    try {
      this.bind(pStmt, params);
      ncol = capi.sqlite3_column_count(pStmt);
      const vals = new Array(ncol);
      for (;;) {
        const rc = capi.sqlite3_step(pStmt);
        if (rc === SQLITE_ROW) {
          for (let i = 0; i < ncol; i++) vals[i] = this.columnJson(pStmt, i);
          rows.push('[' + vals.join(',') + ']');
        } else if (rc === SQLITE_DONE) break;
        else throw this.error(rc);
      }
    } finally {
      capi.sqlite3_reset(pStmt);
      capi.sqlite3_clear_bindings(pStmt);
    }
    const cols = [];
    for (let i = 0; i < ncol; i++) cols.push(capi.sqlite3_column_name(pStmt, i));
    let n = 0;
    let rowid = 'null';
    if (capi.sqlite3_total_changes(this.p) !== before) {
      const meta = this.meta.get(pStmt);
      if (meta) for (const t of meta.writes) this.dirty.add(t);
      n = Number(capi.sqlite3_changes64(this.p));
      rowid = String(capi.sqlite3_last_insert_rowid(this.p));
    }
    return { cols, rows, n, rowid };
  }

  /** Run SQL with no result wanted (internal statements). */
  exec(sql, params = []) {
    return this.run(sql, params);
  }

  /**
   * Run SQL for the worker's own use (sync): rows of JS values, integers
   * beyond 2^53 as BigInt.
   * @returns {any[][]}
   */
  query(sql, params = []) {
    const { capi, wasm } = this;
    const pStmt = this.prepare(sql);
    const rows = [];
    try {
      this.bind(pStmt, params);
      const ncol = capi.sqlite3_column_count(pStmt);
      for (;;) {
        const rc = capi.sqlite3_step(pStmt);
        if (rc === SQLITE_DONE) break;
        if (rc !== SQLITE_ROW) throw this.error(rc);
        const row = new Array(ncol);
        for (let i = 0; i < ncol; i++) {
          switch (capi.sqlite3_column_type(pStmt, i)) {
            case SQLITE_INTEGER: {
              const d = capi.sqlite3_column_double(pStmt, i);
              row[i] = (d < TWO53 && d > -TWO53) ? d : capi.sqlite3_column_int64(pStmt, i);
              break;
            }
            case SQLITE_FLOAT: row[i] = capi.sqlite3_column_double(pStmt, i); break;
            case SQLITE_TEXT: {
              const p = wasm.exports.sqlite3_column_text(pStmt, i);
              const n = capi.sqlite3_column_bytes(pStmt, i);
              row[i] = n ? decoder.decode(wasm.heap8u().subarray(Number(p), Number(p) + n)) : '';
              break;
            }
            case SQLITE_BLOB: {
              const p = capi.sqlite3_column_blob(pStmt, i);
              const n = capi.sqlite3_column_bytes(pStmt, i);
              row[i] = wasm.heap8u().slice(Number(p), Number(p) + n);
              break;
            }
            default: row[i] = null;
          }
        }
        rows.push(row);
      }
    } finally {
      capi.sqlite3_reset(pStmt);
      capi.sqlite3_clear_bindings(pStmt);
    }
    return rows;
  }

  /** Run a named program's statements (generated SQL, see sync/clientsql.py). */
  runProgram(statements, params) {
    for (const sql of statements) this.run(sql, params);
  }

  inTx() {
    return this.capi.sqlite3_get_autocommit(this.p) === 0;
  }

  commit() {
    for (const sql of this.beforeCommit) this.run(sql, []);
    this.run('COMMIT', []);
    if (this.onCommit) this.onCommit();
  }

  /**
   * Run work() all or nothing: a transaction of its own, or a savepoint when
   * the session already holds one.
   */
  atomic(work) {
    const outer = !this.inTx();
    this.run(outer ? 'BEGIN' : 'SAVEPOINT edgesql_atomic', []);
    try {
      const out = work();
      if (outer) this.commit(); else this.run('RELEASE edgesql_atomic', []);
      return out;
    } catch (e) {
      if (outer) {
        if (this.inTx()) this.run('ROLLBACK', []);
        this.dirty.clear();
      } else {
        this.run('ROLLBACK TO edgesql_atomic', []);
        this.run('RELEASE edgesql_atomic', []);
      }
      throw e;
    }
  }

  // -- requests -----------------------------------------------------------------

  /**
   * Answer one request for a session.
   * @param {Request} req
   * @returns {string | Promise<string>} response JSON text
   */
  handle(req) {
    const s = req.s || 0;
    if (this.txOwner && this.txOwner !== s && req.op !== 'close') {
      return this.wait(req);
    }
    return this.answer(req);
  }

  /** Queue a request behind another session's transaction. */
  wait(req, key = null) {
    return new Promise((resolve) => {
      const entry = {
        s: req.s,
        run: () => resolve(key ? this.answerOnce(req, key) : this.handle(req)),
        timer: setTimeout(() => {
          this.waiting.splice(this.waiting.indexOf(entry), 1);
          resolve(errorJson(new EdgeError(
            `database is locked: another connection has held a transaction open for more than ${BUSY_TIMEOUT_MS / 1000} s; commit or roll it back (async with db.transaction() does this for you)`,
            SQLITE_BUSY, 'OperationalError'), false));
        }, BUSY_TIMEOUT_MS),
      };
      this.waiting.push(entry);
    });
  }

  /** After a request: record who holds the transaction, wake waiters when free. */
  settle(s) {
    this.txOwner = this.inTx() ? s : 0;
    if (!this.txOwner) this.flushDirty();
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

  /**
   * The worker's own atomic work (sync, migrations): a transaction with no
   * outbox marker and no change notification. Call after whenIdle().
   */
  atomicInternal(work) {
    if (this.inTx()) {
      throw new EdgeError('internal error: sync work started inside a transaction', SQLITE_MISUSE, 'InternalError');
    }
    this.run('BEGIN IMMEDIATE', []);
    try {
      const out = work();
      this.run('COMMIT', []);
      this.flushDirty(); // pulled changes are changes: live queries re-run
      return out;
    } catch (e) {
      if (this.inTx()) this.run('ROLLBACK', []);
      this.dirty.clear();
      throw e;
    }
  }

  /** Run a request now; errors become an error response, never an exception. */
  answer(req) {
    const s = req.s || 0;
    let body;
    try {
      body = this.dispatch(req, s);
    } catch (e) {
      body = errorJson(e, this.inTx());
    }
    this.settle(s);
    return body;
  }

  dispatch(req, s) {
    // Inside answerOnce's own transaction the session itself holds none.
    const tx = () => (this.inTx() && !this.wrapping ? 'true' : 'false');
    switch (req.op) {
      case 'execute': {
        const sql = req.sql;
        const write = this.beforeCommit.length && !this.inTx() && !this.isReadonly(sql);
        const commitNow = this.beforeCommit.length && this.inTx() && /^\s*(COMMIT|END)\b/i.test(sql);
        if (commitNow) {
          // A COMMIT typed by the user still closes a unit of the outbox.
          for (const hook of this.beforeCommit) this.run(hook, []);
        }
        const r = write ? this.atomic(() => this.run(sql, req.params ?? [])) : this.run(sql, req.params ?? []);
        if (commitNow && this.onCommit) this.onCommit();
        return resultJson(r, tx());
      }
      case 'executemany': {
        const r = this.atomic(() => this.runMany(req.sql, req.rows));
        return resultJson(r, tx());
      }
      case 'batch': {
        const results = this.atomic(() => req.stmts.map(([sql, params], n) => {
          try {
            return this.run(sql, params);
          } catch (e) {
            if (e instanceof EdgeError) {
              throw new EdgeError(`statement ${n} of the batch failed, nothing was applied: ${e.message}`,
                e.code, e.kind, e.codeName);
            }
            throw e;
          }
        }));
        return `{"ok":true,"results":[${results.map((r) => resultJson(r, null)).join(',')}],"tx":${tx()}}`;
      }
      case 'script': {
        this.atomic(() => this.runScript(req.sql));
        return `{"ok":true,"tx":${tx()}}`;
      }
      case 'tx': {
        this.txControl(req.action, req.name, req.mode);
        return `{"ok":true,"tx":${tx()}}`;
      }
      case 'tables': {
        const t = this.tablesOf(req.sql);
        return JSON.stringify({ ok: true, reads: [...t.reads], writes: [...t.writes] });
      }
      default:
        throw new EdgeError(`unknown request ${JSON.stringify(req.op)}`, SQLITE_MISUSE, 'InterfaceError');
    }
  }

  isReadonly(sql) {
    const p = this.prepare(sql);
    return this.capi.sqlite3_stmt_readonly(p) !== 0;
  }

  runMany(sql, rowsOfParams) {
    const { capi } = this;
    const pStmt = this.prepare(sql);
    let total = 0;
    const before = capi.sqlite3_total_changes(this.p);
    const ncol = capi.sqlite3_column_count(pStmt);
    for (let n = 0; n < rowsOfParams.length; n++) {
      try {
        this.bind(pStmt, rowsOfParams[n]);
        let rc;
        while ((rc = capi.sqlite3_step(pStmt)) === SQLITE_ROW) { /* results are discarded */ }
        if (rc !== SQLITE_DONE) throw this.error(rc);
        total += Number(capi.sqlite3_changes64(this.p));
      } catch (e) {
        if (e instanceof EdgeError) {
          throw new EdgeError(`row ${n} of executemany: ${e.message}`, e.code, e.kind, e.codeName);
        }
        throw e;
      } finally {
        capi.sqlite3_reset(pStmt);
        capi.sqlite3_clear_bindings(pStmt);
      }
    }
    const cols = [];
    for (let i = 0; i < ncol; i++) cols.push(capi.sqlite3_column_name(pStmt, i));
    const changed = capi.sqlite3_total_changes(this.p) !== before;
    if (changed) {
      const meta = this.meta.get(pStmt);
      if (meta) for (const t of meta.writes) this.dirty.add(t);
    }
    return { cols, rows: [], n: total, rowid: changed ? String(capi.sqlite3_last_insert_rowid(this.p)) : 'null' };
  }

  runScript(sql) {
    this.dirty.add('*'); // a script may touch anything: every live query re-checks
    const { capi, wasm } = this;
    const [pSql, nSql] = wasm.allocCString(sql, true);
    const end = pSql + nSql;
    let pos = pSql;
    const stack = wasm.pstack.pointer;
    try {
      const ppStmt = wasm.pstack.allocPtr();
      const ppTail = wasm.pstack.allocPtr();
      while (pos < end) {
        const rc = capi.sqlite3_prepare_v3(this.p, pos, end - pos, 0, ppStmt, ppTail);
        if (rc) throw this.error(rc);
        const pStmt = wasm.peekPtr(ppStmt);
        pos = wasm.peekPtr(ppTail);
        if (!pStmt) break;
        try {
          let r;
          while ((r = capi.sqlite3_step(pStmt)) === SQLITE_ROW) { /* discard */ }
          if (r !== SQLITE_DONE) throw this.error(r);
        } finally {
          capi.sqlite3_finalize(pStmt);
        }
      }
    } finally {
      wasm.pstack.restore(stack);
      wasm.dealloc(pSql);
    }
  }

  txControl(action, name, mode) {
    const quoted = `"${String(name || '').replaceAll('"', '""')}"`;
    switch (action) {
      case 'begin': {
        const m = String(mode || 'deferred').toUpperCase();
        if (!['DEFERRED', 'IMMEDIATE', 'EXCLUSIVE'].includes(m)) {
          throw new EdgeError(`unknown transaction mode ${mode}`, SQLITE_MISUSE, 'ProgrammingError');
        }
        this.run(`BEGIN ${m}`, []);
        return;
      }
      case 'commit': this.commit(); return;
      case 'rollback': this.run('ROLLBACK', []); this.dirty.clear(); return;
      case 'savepoint': this.run(`SAVEPOINT ${quoted}`, []); return;
      case 'release': this.run(`RELEASE ${quoted}`, []); return;
      case 'rollback_to': this.run(`ROLLBACK TO ${quoted}`, []); return;
      default:
        throw new EdgeError(`unknown transaction action ${action}`, SQLITE_MISUSE, 'InterfaceError');
    }
  }

  /** A session goes away: its open transaction is rolled back. */
  endSession(s) {
    this.sessions.delete(s);
    if (this.txOwner === s) {
      if (this.inTx()) this.run('ROLLBACK', []);
      this.dirty.clear();
      this.settle(0);
    }
    // Its queued requests can no longer be answered to anyone.
    this.waiting = this.waiting.filter((w) => {
      if (w.s !== s) return true;
      clearTimeout(w.timer);
      return false;
    });
  }

  close() {
    for (const p of this.stmts.values()) this.capi.sqlite3_finalize(p);
    this.stmts.clear();
    this.oo1.close();
  }
}

/** The response for a failed request. */
export function errorJson(e, inTx) {
  return JSON.stringify({ ok: false, error: errorToData(e), tx: !!inTx });
}

/** @param {{cols: string[], rows: string[], n: number, rowid: string}} r @param {string|null} tx */
function resultJson(r, tx) {
  const head = `{"ok":true,"cols":${JSON.stringify(r.cols)},"rows":[${r.rows.join(',')}],"n":${r.n},"rowid":${r.rowid}`;
  return tx === null ? head + '}' : `${head},"tx":${tx}}`;
}

