/**
 * Exactly once across a handoff: the owner's log of answered writes, and
 * the one rule for a request whose owner went away while it was in flight.
 *
 * Requests a tab may send again carry a key (the sending worker's id and a
 * counter). The owner records the answer of every write under its key in
 * the same transaction as the write (`_edgesql_requests`), so a request sent
 * again to the next owner is answered from that record instead of running
 * twice. A transaction that was open on a dead owner was rolled back with
 * it: its requests fail with SQLITE_ABORT, saying to run it again; a COMMIT
 * in flight is looked up (it either happened or did not). tabs.js applies
 * these rules (afterHandoff, afterLostTransaction) both when this worker
 * takes over and when it follows a new owner in another tab.
 */

import { answer, dispatch, errorJson } from './dispatch.js';
import { EdgeError } from './errors.js';
import { commit } from './transactions.js';

const SQLITE_ABORT = 4;
/** Answers kept per client: a resend follows its request within seconds. */
const KEPT_PER_CLIENT = 1000;

/** @typedef {{client: string, id: number}} RequestKey */

/**
 * The answer to a request that belonged to a transaction the lost owner rolled back.
 * @param {string} what the request, for the message @returns {string}
 */
function aborted(what) {
  return errorJson(new EdgeError(
    `the tab that held the database closed during this transaction, so the transaction was rolled back (${what}); ` +
    'run the whole transaction again', SQLITE_ABORT, 'OperationalError', 'SQLITE_ABORT'), false);
}

/**
 * What becomes of a page's request that was in flight when its owner went
 * away: sent again where the database now is (the log there answers it if
 * it already ran), or answered at once.
 * @param {any} req the request as the page sent it (parsed)
 * @param {boolean} inTx its session held a transaction when it was sent
 * @param {RequestKey} key the key it was sent with
 * @returns {{resend: any} | {answer: string}}
 */
export function afterHandoff(req, inTx, key) {
  if (req.op === 'tx' && req.action === 'commit') {
    // It either committed before the owner went away or it did not: look it up.
    return { resend: { op: 'tx.check', key } };
  }
  if (inTx) return { answer: aborted(`${req.op} ${req.action || ''}`.trim()) };
  return { resend: req };
}

/**
 * The first request of a session whose transaction died with its owner,
 * before anything told the app: it was meant for that transaction. A begin
 * starts afresh, a rollback is done already, anything else fails as aborted.
 * @param {any} req @returns {string | null} its answer, or null to run it
 */
export function afterLostTransaction(req) {
  if (req.op === 'tx' && req.action === 'begin') return null;
  if (req.op === 'tx' && req.action === 'rollback') return '{"ok":true,"tx":false}';
  return aborted(req.op);
}

export class RequestLog {
  /** @param {import('./engine.js').Database} db */
  constructor(db) {
    this.db = db;
    this.ready = false;
  }

  ensureTable() {
    if (this.ready) return;
    this.db.run('CREATE TABLE IF NOT EXISTS _edgesql_requests (client TEXT NOT NULL, id INTEGER NOT NULL, ' +
      'response TEXT NOT NULL, PRIMARY KEY (client, id)) WITHOUT ROWID', []);
    this.ready = true;
  }

  /** @param {RequestKey} key @returns {string | null} the recorded answer */
  stored(key) {
    this.ensureTable();
    const rows = this.db.query('SELECT response FROM _edgesql_requests WHERE client = ? AND id = ?', [key.client, key.id]);
    return rows.length ? rows[0][0] : null;
  }

  /** Record a request's answer in the transaction that applied it. @param {RequestKey} key @param {string} body */
  record(key, body) {
    this.db.run('INSERT OR REPLACE INTO _edgesql_requests (client, id, response) VALUES (?, ?, ?)', [key.client, key.id, body]);
    this.db.run('DELETE FROM _edgesql_requests WHERE client = ? AND id < ?', [key.client, key.id - KEPT_PER_CLIENT]);
  }

  /** Could this request change the database (so a resend must not run it twice)? */
  mayWrite(req) {
    switch (req.op) {
      case 'executemany': case 'batch': case 'script': return true;
      case 'execute': case 'cursor.open':
        try {
          return !this.db.isReadonly(req.sql);
        } catch {
          return false; // it will fail to prepare again, changing nothing
        }
      default: return false;
    }
  }

  /**
   * Answer a request that carries a key: a request that already ran is
   * answered from its record, and a write records its answer in its own
   * transaction, so it runs exactly once however often it is sent.
   * @param {any} req @param {RequestKey} key @returns {string | Promise<string>}
   */
  answerOnce(req, key) {
    const db = this.db;
    const s = req.s || 0;
    if (req.op === 'tx.check') {
      const stored = this.stored(req.key);
      if (stored !== null) return stored;
      return errorJson(new EdgeError('the tab that held the database closed before this transaction committed, ' +
        'so it was rolled back; run the whole transaction again', SQLITE_ABORT, 'OperationalError', 'SQLITE_ABORT'), false);
    }
    if (db.sessions.blocked(s)) return db.sessions.wait(req.s, () => this.answerOnce(req, key), req);
    const stored = this.stored(key);
    if (stored !== null) return stored;
    if (req.op === 'tx' && req.action === 'commit' && db.inTx()) {
      // The session's own transaction: its commit and its record go in together.
      try {
        this.record(key, '{"ok":true,"tx":false}');
      } catch (e) {
        return errorJson(e, db.inTx());
      }
      return answer(db, req);
    }
    if (db.inTx() || !this.mayWrite(req)) return answer(db, req);
    let body;
    db.run('BEGIN IMMEDIATE', []);
    try {
      body = dispatch(db, req, true);
    } catch (e) {
      body = errorJson(e, false);
    }
    try {
      if (body.startsWith('{"ok":true')) {
        this.record(key, body);
        commit(db);
      } else {
        // The request failed: nothing of it may stay, and nothing is recorded, so a resend runs it again.
        // (SQLite may have rolled back already: an interrupted write ends its transaction.)
        if (db.inTx()) db.run('ROLLBACK', []);
        db.changes.discard();
      }
    } catch (e) {
      // Recording or committing failed (a full disk): the write did not happen after all.
      if (db.inTx()) db.run('ROLLBACK', []);
      db.changes.discard();
      body = errorJson(e, false);
    }
    db.sessions.settle(s);
    return body;
  }
}
