/**
 * Transactions on the one connection: all-or-nothing units, the hooks sync
 * adds at each commit, the worker's own atomic work, and the page's
 * transaction requests.
 *
 * A commit made for the app runs `db.beforeCommit` first (the SQL sync.js
 * puts there closes a unit of the outbox) and calls `db.onCommit` after (sync
 * pushes soon). The worker's own work (sync's pulls, migrations) commits
 * without those hooks: it is not a change of the app's to push.
 */

import { EdgeError, SQLITE_MISUSE } from './errors.js';

/**
 * What a transaction needs of the database (engine.js's Database).
 * @typedef {{run: (sql: string, params: any) => any, inTx: () => boolean,
 *   changes: import('./changes.js').ChangeTracker, beforeCommit: string[],
 *   onCommit: (() => void) | null}} Db
 */

/** Commit the app's transaction, with sync's hooks around it. @param {Db} db */
export function commit(db) {
  for (const sql of db.beforeCommit) db.run(sql, []);
  db.run('COMMIT', []);
  if (db.onCommit) db.onCommit();
}

/**
 * Run work() all or nothing: a transaction of its own, or a savepoint when
 * the session already holds one.
 * @template T @param {Db} db @param {() => T} work @returns {T}
 */
export function atomic(db, work) {
  const outer = !db.inTx();
  db.run(outer ? 'BEGIN' : 'SAVEPOINT edgesql_atomic', []);
  try {
    const out = work();
    if (outer) commit(db); else db.run('RELEASE edgesql_atomic', []);
    return out;
  } catch (e) {
    if (outer) {
      // The statement that failed may have ended the transaction already (SQLite
      // rolls back on some errors, e.g. a full disk): roll back only what is open.
      if (db.inTx()) db.run('ROLLBACK', []);
      db.changes.discard();
    } else if (db.inTx()) {
      // Undo this unit only: the session's own transaction goes on.
      db.run('ROLLBACK TO edgesql_atomic', []);
      db.run('RELEASE edgesql_atomic', []);
    } else {
      // SQLite ended the whole transaction (it does when it interrupts a write): nothing is left to undo.
      db.changes.discard();
    }
    throw e;
  }
}

/**
 * The worker's own atomic work (sync, migrations): a transaction with no
 * outbox marker and no change notification of its own making. Call after
 * whenIdle(): no session may hold a transaction.
 * @template T @param {Db} db @param {() => T} work @returns {T}
 */
export function atomicInternal(db, work) {
  if (db.inTx()) {
    throw new EdgeError('internal error: sync work started inside a transaction', SQLITE_MISUSE, 'InternalError');
  }
  db.run('BEGIN IMMEDIATE', []);
  try {
    const out = work();
    db.run('COMMIT', []);
    db.changes.flush(db); // pulled changes are changes: live queries re-run
    return out;
  } catch (e) {
    if (db.inTx()) db.run('ROLLBACK', []);
    db.changes.discard();
    throw e;
  }
}

/**
 * A page's transaction request: begin, commit, rollback, and savepoints.
 * @param {Db} db @param {string} action @param {string} [name] @param {string} [mode]
 */
export function txControl(db, action, name, mode) {
  const quoted = `"${String(name || '').replaceAll('"', '""')}"`;
  switch (action) {
    case 'begin': {
      const m = String(mode || 'deferred').toUpperCase();
      if (!['DEFERRED', 'IMMEDIATE', 'EXCLUSIVE'].includes(m)) {
        throw new EdgeError(`unknown transaction mode ${mode}`, SQLITE_MISUSE, 'ProgrammingError');
      }
      db.run(`BEGIN ${m}`, []);
      return;
    }
    case 'commit': commit(db); return;
    case 'rollback': db.run('ROLLBACK', []); db.changes.discard(); return;
    case 'savepoint': db.run(`SAVEPOINT ${quoted}`, []); return;
    case 'release': db.run(`RELEASE ${quoted}`, []); return;
    case 'rollback_to': db.run(`ROLLBACK TO ${quoted}`, []); return;
    default:
      throw new EdgeError(`unknown transaction action ${action}`, SQLITE_MISUSE, 'InterfaceError');
  }
}
