/**
 * Request dispatch: what each request of a session does on the database,
 * and its answer as JSON text.
 *
 * Ops: execute, executemany, batch, script, tx, tables, cursor.open,
 * cursor.next, cursor.close (py/edgesql/_browser.py sends them). Every op
 * but a transaction's end runs guarded (interrupts.js): late or interrupted,
 * it does not start; running, it stops. An answer is always text, never an exception: a failure
 * becomes {ok: false, error: {code, name, message, kind}} (errors.js), which
 * Python turns into the matching exception with SQLite's code. Every answer
 * says whether the session now holds a transaction (`tx`), which the tab
 * router uses to tell which requests a lost owner took with it.
 */

import { errorToData, EdgeError, SQLITE_MISUSE } from './errors.js';
import { atomic, txControl } from './transactions.js';

/** @typedef {{op: string, s?: number, sql?: string, params?: any, rows?: any[],
 *   stmts?: any[], action?: string, name?: string, mode?: string, key?: any,
 *   c?: number, n?: number, g?: number, dl?: number, $page?: boolean}} Request */

/**
 * Run a request now and settle the session; errors become an error answer.
 * @param {import('./engine.js').Database} db @param {Request} req @returns {string}
 */
export function answer(db, req) {
  const s = req.s || 0;
  let body;
  try {
    body = dispatch(db, req, false);
  } catch (e) {
    body = errorJson(e, db.inTx());
  }
  db.sessions.settle(s);
  return body;
}

/**
 * Run one request and return its answer; throws on failure.
 * @param {import('./engine.js').Database} db @param {Request} req
 * @param {boolean} wrapped the request log runs it inside a transaction of its own
 *   (the session itself then holds none)
 * @returns {string}
 */
export function dispatch(db, req, wrapped) {
  // A transaction's end finishes what already ran, and a cursor's close frees a statement: never refused.
  if ((req.op === 'tx' && req.action !== 'begin') || req.op === 'cursor.close') return run(db, req, wrapped);
  return db.interrupts.guard(req, db.inTx() && !wrapped, () => run(db, req, wrapped));
}

/** Run a statement as `execute` runs it. @param {import('./engine.js').Database} db @param {Request} req */
function execute(db, req) {
  const sql = req.sql;
  const write = db.beforeCommit.length && !db.inTx() && !db.isReadonly(sql);
  const commitNow = db.beforeCommit.length && db.inTx() && /^\s*(COMMIT|END)\b/i.test(sql);
  if (commitNow) {
    // A COMMIT typed by the user still closes a unit of the outbox.
    for (const hook of db.beforeCommit) db.run(hook, []);
  }
  const r = write ? atomic(db, () => db.run(sql, req.params ?? [])) : db.run(sql, req.params ?? []);
  if (commitNow && db.onCommit) db.onCommit();
  return r;
}

/** @param {import('./engine.js').Database} db @param {Request} req @param {boolean} wrapped */
function run(db, req, wrapped) {
  const tx = () => (db.inTx() && !wrapped ? 'true' : 'false');
  switch (req.op) {
    case 'execute':
      return resultJson(execute(db, req), tx());
    case 'cursor.open': {
      const s = req.s || 0;
      const fields = db.cursors.runsAtOnce(req.sql)
        ? db.cursors.openRows(s, execute(db, req), req.n)
        : `"n":0,"rowid":null,${db.cursors.openLazy(s, req.sql, req.params ?? [], req.n)}`;
      return `{"ok":true,${fields},"tx":${tx()}}`;
    }
    case 'cursor.next':
      return `{"ok":true,${db.cursors.nextPage(req.s || 0, req.c, req.n)},"tx":${tx()}}`;
    case 'cursor.close':
      db.cursors.close(req.c);
      return `{"ok":true,"tx":${tx()}}`;
    case 'executemany': {
      const r = atomic(db, () => db.runMany(req.sql, req.rows));
      return resultJson(r, tx());
    }
    case 'batch': {
      const results = atomic(db, () => req.stmts.map(([sql, params], n) => {
        try {
          return db.run(sql, params);
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
      atomic(db, () => db.runScript(req.sql));
      return `{"ok":true,"tx":${tx()}}`;
    }
    case 'tx': {
      txControl(db, req.action, req.name, req.mode);
      return `{"ok":true,"tx":${tx()}}`;
    }
    case 'tables': {
      const t = db.changes.tablesOf(db.prepare(req.sql));
      return JSON.stringify({ ok: true, reads: [...t.reads], writes: [...t.writes] });
    }
    default:
      throw new EdgeError(`unknown request ${JSON.stringify(req.op)}`, SQLITE_MISUSE, 'InterfaceError');
  }
}

/**
 * The answer for a failed request.
 * @param {any} e @param {boolean} inTx @returns {string}
 */
export function errorJson(e, inTx) {
  return JSON.stringify({ ok: false, error: errorToData(e), tx: !!inTx });
}

/**
 * @param {import('./statements.js').RunResult} r
 * @param {string|null} tx 'true'/'false', or null inside a batch's list of results
 */
function resultJson(r, tx) {
  const head = `{"ok":true,"cols":${JSON.stringify(r.cols)},"rows":[${r.rows.join(',')}],"n":${r.n},"rowid":${r.rowid}`;
  return tx === null ? head + '}' : `${head},"tx":${tx}}`;
}
