/**
 * The statement layer: one SQLite-Wasm connection, its prepared statements,
 * and running SQL on them.
 *
 * Everything here is synchronous on purpose: a request that can run now
 * returns its answer at once, so the SharedArrayBuffer fast path can answer
 * without a trip through the event loop. Statements are prepared once and
 * kept (an LRU of STMT_CACHE_SIZE), because preparing costs more than running
 * a point query. Each prepared statement's tables go to the change tracker
 * (changes.js), and each write marks them dirty there.
 */

import { EdgeError, SQLITE_MISUSE } from './errors.js';
import { SQLITE_IOERR, storageFull, takeStorageFull } from './quota.js';
import { bindParams, columnJson, columnValue } from './values.js';

const SQLITE_ROW = 100;
const SQLITE_DONE = 101;
/** Statements kept prepared per database; beyond this the oldest is finalized. */
const STMT_CACHE_SIZE = 256;

/** @typedef {{cols: string[], rows: string[], n: number, rowid: string}} RunResult */

export class Statements {
  /**
   * @param {any} sqlite3 the initialised SQLite-Wasm module
   * @param {any} oo1db an open sqlite3.oo1.DB
   * @param {import('./changes.js').ChangeTracker} changes
   */
  constructor(sqlite3, oo1db, changes) {
    this.sqlite3 = sqlite3;
    this.capi = sqlite3.capi;
    this.wasm = sqlite3.wasm;
    this.oo1 = oo1db;
    this.p = oo1db.pointer;
    this.changes = changes;
    /** @type {Map<string, number>} */
    this.stmts = new Map();
  }

  /**
   * Prepare (or reuse) one statement; refuses SQL holding several.
   * @param {string} sql @returns {number} the statement pointer
   */
  prepare(sql) {
    const cached = this.stmts.get(sql);
    if (cached) {
      // Re-insert to keep the Map in least-recently-used order.
      this.stmts.delete(sql);
      this.stmts.set(sql, cached);
      return cached;
    }
    const { pStmt, tables } = this.compile(sql);
    this.stmts.set(sql, pStmt);
    this.changes.remember(pStmt, tables);
    if (this.stmts.size > STMT_CACHE_SIZE) {
      const [oldSql, oldStmt] = this.stmts.entries().next().value;
      this.stmts.delete(oldSql);
      this.changes.forget(oldStmt);
      this.capi.sqlite3_finalize(oldStmt);
    }
    return pStmt;
  }

  /**
   * Prepare one statement that the caller owns (and finalizes); refuses SQL holding several.
   * @param {string} sql
   * @returns {{pStmt: number, tables: import('./changes.js').Tables}} the statement and the tables it touches
   */
  compile(sql) {
    const { capi, wasm } = this;
    const [pSql, nSql] = wasm.allocCString(sql, true);
    const stack = wasm.pstack.pointer;
    let pStmt = 0;
    let tables;
    try {
      const ppStmt = wasm.pstack.allocPtr();
      const ppTail = wasm.pstack.allocPtr();
      let rc;
      tables = this.changes.collect(() => {
        rc = capi.sqlite3_prepare_v3(this.p, pSql, nSql, 0, ppStmt, ppTail);
      });
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
    return { pStmt, tables };
  }

  /** Bind a request's parameters to a statement. @param {number} pStmt @param {any} params */
  bind(pStmt, params) {
    bindParams(this, pStmt, params);
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

  /**
   * SQLite's own error for this connection.
   * @param {number} rc @param {string} [prefix] @returns {EdgeError}
   */
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

  /**
   * Run a prepared statement to completion; rows come back as JSON text.
   * @param {string} sql @param {any} params @returns {RunResult}
   */
  run(sql, params) {
    const { capi } = this;
    const pStmt = this.prepare(sql);
    const before = capi.sqlite3_total_changes(this.p);
    const rows = [];
    let ncol = 0;
    try {
      bindParams(this, pStmt, params);
      ncol = capi.sqlite3_column_count(pStmt);
      const vals = new Array(ncol);
      for (;;) {
        const rc = capi.sqlite3_step(pStmt);
        if (rc === SQLITE_ROW) {
          for (let i = 0; i < ncol; i++) vals[i] = columnJson(this, pStmt, i);
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
      this.changes.wrote(pStmt);
      n = Number(capi.sqlite3_changes64(this.p));
      rowid = String(capi.sqlite3_last_insert_rowid(this.p));
    }
    return { cols, rows, n, rowid };
  }

  /**
   * Run SQL with no result wanted (internal statements).
   * @param {string} sql @param {any} [params] @returns {RunResult}
   */
  exec(sql, params = []) {
    return this.run(sql, params);
  }

  /**
   * Run SQL for the worker's own use (sync): rows of JS values, integers
   * beyond 2^53 as BigInt.
   * @param {string} sql @param {any} [params] @returns {any[][]}
   */
  query(sql, params = []) {
    const { capi } = this;
    const pStmt = this.prepare(sql);
    const rows = [];
    try {
      bindParams(this, pStmt, params);
      const ncol = capi.sqlite3_column_count(pStmt);
      for (;;) {
        const rc = capi.sqlite3_step(pStmt);
        if (rc === SQLITE_DONE) break;
        if (rc !== SQLITE_ROW) throw this.error(rc);
        const row = new Array(ncol);
        for (let i = 0; i < ncol; i++) row[i] = columnValue(this, pStmt, i);
        rows.push(row);
      }
    } finally {
      capi.sqlite3_reset(pStmt);
      capi.sqlite3_clear_bindings(pStmt);
    }
    return rows;
  }

  /**
   * Run a named program's statements (generated SQL, see sync/clientsql.py).
   * @param {string[]} statements @param {any} params
   */
  runProgram(statements, params) {
    for (const sql of statements) this.run(sql, params);
  }

  /**
   * One statement for each parameter set (executemany); results are discarded.
   * @param {string} sql @param {any[]} rowsOfParams @returns {RunResult}
   */
  runMany(sql, rowsOfParams) {
    const { capi } = this;
    const pStmt = this.prepare(sql);
    let total = 0;
    const before = capi.sqlite3_total_changes(this.p);
    const ncol = capi.sqlite3_column_count(pStmt);
    for (let n = 0; n < rowsOfParams.length; n++) {
      try {
        bindParams(this, pStmt, rowsOfParams[n]);
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
    if (changed) this.changes.wrote(pStmt);
    return { cols, rows: [], n: total, rowid: changed ? String(capi.sqlite3_last_insert_rowid(this.p)) : 'null' };
  }

  /**
   * Run every statement of a script, each prepared for this run only.
   * @param {string} sql
   */
  runScript(sql) {
    this.changes.wroteAnything();
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

  /** @param {string} sql @returns {boolean} the statement cannot change the database */
  isReadonly(sql) {
    const p = this.prepare(sql);
    return this.capi.sqlite3_stmt_readonly(p) !== 0;
  }

  /** @returns {boolean} a transaction is open on the connection */
  inTx() {
    return this.capi.sqlite3_get_autocommit(this.p) === 0;
  }

  close() {
    for (const p of this.stmts.values()) this.capi.sqlite3_finalize(p);
    this.stmts.clear();
    this.oo1.close();
  }
}
