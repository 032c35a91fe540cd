/**
 * Sync on the database this worker owns, for every tab's sessions: one
 * Syncer per database (sync.js), started by the first `sync.start`, and the
 * answers to `sync.now` and `sync.status`.
 *
 * Only the owner runs sync (tabs.js routes the other tabs' sync requests
 * here). This file uses nothing of the Syncer but its public methods —
 * constructor(db, options, notify), start(), sync(), status(), wake(), setToken(); the
 * database stops it when it closes (store.js) — so sync.js can change inside.
 */

import { EdgeError, errorToData, SQLITE_MISUSE } from './errors.js';
import { SyncError, Syncer } from './sync.js';

/**
 * A sync failure as the page's error data: SyncError's code, HTTP status and
 * Retry-After travel as `extra`, so Python raises edgesql.SyncError with them.
 * @param {any} e @returns {any}
 */
export function syncErrorData(e) {
  if (e instanceof SyncError) {
    const err = new EdgeError(e.message, 1, 'SyncError');
    err.extra = { sync_code: e.code, status: e.status, retry_after: e.retryAfter };
    return err;
  }
  return e;
}

/**
 * Start syncing `db` unless it already does.
 * @param {import('./engine.js').Database} db
 * @param {{url: string, token: string|null, interval: number}} params
 * @param {(event: any) => void} emit tells every tab (sync status events)
 */
export async function startSync(db, params, emit) {
  if (db.syncer) return;
  const syncer = new Syncer(db, params, emit);
  await syncer.start();
  db.syncer = syncer;
}

/**
 * Answer a sync.* request on the owner's database.
 * @param {import('./engine.js').Database} db
 * @param {any} req
 * @param {{sync: any} | null} ls this worker's page session that asked (null: another tab's);
 *   it keeps its sync parameters, to start sync again after a takeover
 * @param {(event: any) => void} emit
 * @returns {Promise<string>}
 */
export async function syncRequest(db, req, ls, emit) {
  try {
    switch (req.op) {
      case 'sync.start': {
        const params = { url: req.url, token: req.token || null, interval: req.interval };
        if (ls) ls.sync = params;
        await startSync(db, params, emit);
        return '{"ok":true}';
      }
      case 'sync.now': {
        const r = await requireSyncer(db).sync();
        return JSON.stringify({ ok: true, pushed: r.pushed, pulled: r.pulled });
      }
      case 'sync.token': {
        // The page's token provider gave a new token (after a 'token' event, or a sign-in).
        if (ls && ls.sync) ls.sync = { ...ls.sync, token: req.token };
        await requireSyncer(db).setToken(req.token);
        return '{"ok":true}';
      }
      case 'sync.status':
        return JSON.stringify({ ok: true, status: requireSyncer(db).status() });
      default:
        throw new EdgeError(`unknown request ${req.op}`, SQLITE_MISUSE, 'InterfaceError');
    }
  } catch (e) {
    // No `tx`: a sync request neither opens nor ends the session's transaction,
    // and saying `false` would make Python believe an open one had ended.
    return JSON.stringify({ ok: false, error: errorToData(syncErrorData(e)) });
  }
}

/** The browser came back online: sync now rather than at the next interval. @param {any} db */
export function wakeSync(db) {
  if (db && db.syncer) db.syncer.wake();
}

/** @param {import('./engine.js').Database} db */
function requireSyncer(db) {
  if (!db.syncer) {
    throw new EdgeError('this database does not sync: connect with sync_url=... to sync with a primary',
      SQLITE_MISUSE, 'ProgrammingError');
  }
  return db.syncer;
}
