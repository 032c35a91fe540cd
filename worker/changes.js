/**
 * Change tracking for live queries: which tables each statement reads and
 * writes, which tables the open transaction has written, and the
 * notification once they are committed.
 *
 * SQLite calls an authorizer while it compiles a statement, triggers
 * included: recording its table accesses tells which tables a query reads
 * and which a write touches, without parsing SQL. A watch re-runs only when
 * one of its tables is among those a commit reports (docs/architecture.md).
 */

const SQLITE_DELETE = 9;
const SQLITE_INSERT = 18;
const SQLITE_READ = 20;
const SQLITE_UPDATE = 23;

/** @typedef {{reads: Set<string>, writes: Set<string>}} Tables */

export class ChangeTracker {
  /** @param {any} capi SQLite-Wasm's C API @param {number} pDb the connection */
  constructor(capi, pDb) {
    /** What each prepared statement reads and writes. @type {Map<number, Tables>} */
    this.meta = new Map();
    /** Tables written by the open transaction (or the statement), told to listeners on commit. */
    this.dirty = new Set();
    /** Called with the set of tables a committed change touched (live queries). */
    this.onChange = null;
    /** The statement being compiled collects its tables here. @type {Tables | null} */
    this.collecting = null;
    capi.sqlite3_set_authorizer(pDb, (_pV, code, s0) => {
      const c = this.collecting;
      // edgesql's own tables count too: devtools watch the outbox and the clock.
      if (c && s0 && !s0.startsWith('sqlite_')) {
        if (code === SQLITE_READ) c.reads.add(s0);
        else if (code === SQLITE_INSERT || code === SQLITE_UPDATE || code === SQLITE_DELETE) c.writes.add(s0);
      }
      return 0;
    }, 0);
  }

  /**
   * Compile with `compile()` and return the tables it touched.
   * @param {() => void} compile @returns {Tables}
   */
  collect(compile) {
    const tables = { reads: new Set(), writes: new Set() };
    this.collecting = tables;
    try {
      compile();
    } finally {
      this.collecting = null;
    }
    return tables;
  }

  /** @param {number} pStmt @param {Tables} tables */
  remember(pStmt, tables) {
    this.meta.set(pStmt, tables);
  }

  /** The statement was finalized. @param {number} pStmt */
  forget(pStmt) {
    this.meta.delete(pStmt);
  }

  /** @param {number} pStmt @returns {Tables} */
  tablesOf(pStmt) {
    return this.meta.get(pStmt) || { reads: new Set(), writes: new Set() };
  }

  /** The statement changed rows: its tables are dirty until the commit. @param {number} pStmt */
  wrote(pStmt) {
    const meta = this.meta.get(pStmt);
    if (meta) for (const t of meta.writes) this.dirty.add(t);
  }

  /** A script may touch anything: every live query re-checks. */
  wroteAnything() {
    this.dirty.add('*');
  }

  /** The transaction rolled back: nothing it wrote happened. */
  discard() {
    this.dirty.clear();
  }

  /**
   * After a commit (or an autocommit write): tell the listener which tables changed.
   * Nothing is told while a transaction is still open: nothing is committed yet.
   * @param {{inTx: () => boolean}} conn
   */
  flush(conn) {
    if (!this.dirty.size || conn.inTx()) return;
    const tables = this.dirty;
    this.dirty = new Set();
    if (this.onChange) this.onChange(tables);
  }
}
