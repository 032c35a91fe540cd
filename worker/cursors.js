/**
 * Cursors: a statement's rows handed out a page at a time (`db.iterate()`).
 *
 * A read-only statement gets a prepared statement of its own (not the
 * statement cache's: requests in between may run the same SQL) and is
 * stepped one page per request, so neither the worker nor the page ever
 * holds more than a page of a big result; between pages the worker answers
 * everyone else. A statement that writes runs at once, exactly as `execute`
 * runs it (all or nothing, with sync's capture), and only its rows
 * (RETURNING) are paged out. A page ends at the rows asked for or at
 * PAGE_BYTES of answer, whichever comes first.
 *
 * A cursor is closed when its last page is read, when the page asks, when a
 * page fails, and when its session ends.
 */

import { EdgeError, SQLITE_MISUSE } from './errors.js';
import { columnJson } from './values.js';

const SQLITE_ROW = 100;
const SQLITE_DONE = 101;
/** A page stops growing at this much JSON: well inside the 1 MiB SharedArrayBuffer of the fast path. */
const PAGE_BYTES = 512 * 1024;
/** Open cursors per session: more means cursors nobody closes (each holds a statement and a read snapshot). */
const MAX_PER_SESSION = 64;
/** Statements that control transactions run at once, never stepped lazily. */
const TX_CONTROL = /^\s*(BEGIN|COMMIT|END|ROLLBACK|SAVEPOINT|RELEASE)\b/i;

/**
 * @typedef {{id: number, s: number, cols: string[], pStmt: number, rows: string[] | null, at: number}} Cursor
 * A lazy cursor has pStmt (and rows null); a written one has its rows and
 * the position `at` of the next one.
 */

export class Cursors {
  /** @param {import('./engine.js').Database} db */
  constructor(db) {
    this.db = db;
    /** @type {Map<number, Cursor>} */
    this.open = new Map();
    this.next = 1;
  }

  /**
   * Does `sql` run at once (it may write), rather than page by page?
   * @param {string} sql
   */
  runsAtOnce(sql) {
    return TX_CONTROL.test(sql) || !this.db.isReadonly(sql);
  }

  /**
   * Open a lazy cursor on a read-only statement and read its first page.
   * @param {number} s @param {string} sql @param {any} params @param {number} n
   * @returns {string} the answer's fields after {"ok":true,
   */
  openLazy(s, sql, params, n) {
    this.checkRoom(s);
    const db = this.db;
    const pStmt = db.compile(sql).pStmt;
    const cur = { id: this.next++, s, cols: [], pStmt, rows: null, at: 0 };
    try {
      const { capi } = db;
      db.bind(pStmt, params);
      const ncol = capi.sqlite3_column_count(pStmt);
      for (let i = 0; i < ncol; i++) cur.cols.push(capi.sqlite3_column_name(pStmt, i));
    } catch (e) {
      db.capi.sqlite3_finalize(pStmt);
      throw e;
    }
    this.open.set(cur.id, cur);
    return this.page(cur, n);
  }

  /**
   * A cursor over rows already produced (a statement that wrote).
   * @param {number} s @param {import('./statements.js').RunResult} r @param {number} n
   */
  openRows(s, r, n) {
    const head = `"n":${r.n},"rowid":${r.rowid},`;
    if (r.rows.length <= n) {
      return `${head}"c":0,"cols":${JSON.stringify(r.cols)},"rows":[${r.rows.join(',')}],"done":true`;
    }
    this.checkRoom(s);
    const cur = { id: this.next++, s, cols: r.cols, pStmt: 0, rows: r.rows, at: 0 };
    this.open.set(cur.id, cur);
    return head + this.page(cur, n);
  }

  /**
   * The next page of cursor `id` of session `s`.
   * @param {number} s @param {number} id @param {number} n
   */
  nextPage(s, id, n) {
    const cur = this.open.get(id);
    if (!cur || cur.s !== s) {
      throw new EdgeError('this cursor is gone (its connection or the tab holding the database closed, or a page failed); ' +
        'iterate again with db.iterate()', SQLITE_MISUSE, 'ProgrammingError');
    }
    return this.page(cur, n);
  }

  /**
   * Read up to n rows (and at most PAGE_BYTES) of a cursor; it closes when done or on an error.
   * @param {Cursor} cur @param {number} n @returns {string}
   */
  page(cur, n) {
    const rows = [];
    let done = false;
    if (cur.rows) {
      let bytes = 0;
      while (rows.length < n && cur.at < cur.rows.length && (bytes < PAGE_BYTES || !rows.length)) {
        const row = cur.rows[cur.at++];
        bytes += row.length;
        rows.push(row);
      }
      done = cur.at >= cur.rows.length;
    } else {
      const db = this.db;
      const { capi } = db;
      const ncol = cur.cols.length;
      const vals = new Array(ncol);
      let bytes = 0;
      try {
        while (rows.length < n && (bytes < PAGE_BYTES || !rows.length)) {
          const rc = capi.sqlite3_step(cur.pStmt);
          if (rc === SQLITE_DONE) {
            done = true;
            break;
          }
          if (rc !== SQLITE_ROW) throw db.error(rc);
          for (let i = 0; i < ncol; i++) vals[i] = columnJson(db, cur.pStmt, i);
          const row = '[' + vals.join(',') + ']';
          bytes += row.length;
          rows.push(row);
        }
      } catch (e) {
        this.close(cur.id);
        throw e;
      }
    }
    if (done) this.close(cur.id);
    return `"c":${done ? 0 : cur.id},"cols":${JSON.stringify(cur.cols)},"rows":[${rows.join(',')}],"done":${done}`;
  }

  /** @param {number} s */
  checkRoom(s) {
    let mine = 0;
    for (const cur of this.open.values()) if (cur.s === s) mine++;
    if (mine >= MAX_PER_SESSION) {
      throw new EdgeError(`this connection has ${mine} cursors open: close the ones you are done with ` +
        '(await cursor.close(), or `async with db.iterate(...) as cursor:`)', SQLITE_MISUSE, 'ProgrammingError');
    }
  }

  /** @param {number} id */
  close(id) {
    const cur = this.open.get(id);
    if (!cur) return;
    this.open.delete(id);
    if (cur.pStmt) this.db.capi.sqlite3_finalize(cur.pStmt);
  }

  /** Every cursor of session `s` (it ended). @param {number} s */
  closeSession(s) {
    for (const cur of [...this.open.values()]) if (cur.s === s) this.close(cur.id);
  }

  closeAll() {
    for (const id of [...this.open.keys()]) this.close(id);
  }
}
