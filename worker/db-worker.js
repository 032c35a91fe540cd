/**
 * The DB worker: owns SQLite-Wasm and the OPFS databases of this tab.
 *
 * Messages from the page (postMessage):
 *   {type: 'sab', buffer}        start serving synchronous calls through a SharedArrayBuffer
 *   {type: 'req', id, body}      a request (JSON text, see codec.js); answered {type: 'res', id, body}
 * Requests: open, execute, executemany, batch, script, tx, close (see engine.js);
 * every answer is JSON text {ok: true, ...} or {ok: false, error: {code, name, message, kind}}.
 *
 * Storage: each database gets its own opfs-sahpool VFS (its own OPFS
 * directory), so each can have its own owner tab. Where OPFS is missing the
 * database opens in memory and says so: the open answer carries
 * storage: "memory" and a warning, and the warning is logged here.
 */

import sqlite3InitModule from '../vendor/sqlite-wasm/index.mjs';
import { benchOp } from './bench-ops.js';
import { parseRequest } from './codec.js';
import { Database, errorJson } from './engine.js';
import { SyncError, Syncer } from './sync.js';
import { EdgeError, SQLITE_CANTOPEN, SQLITE_MISUSE } from './errors.js';
import * as L from './sab-layout.js';

/** OPFS slots per database: the file, its journal, and room to spare. */
const POOL_CAPACITY = 4;
/** After answering a fast-path call, block this long for the next one before yielding. */
const HOT_WAIT_MS = 1;

let sqlite3Promise = null;
/** @type {Map<string, Promise<Database>>} */
const databases = new Map();
/** @type {Map<number, Database>} */
const sessions = new Map();
/** The sahpool VFS of each database, kept (paused) after the database closes. */
const pools = new Map();
let nextSession = 1;

function initSqlite() {
  if (!sqlite3Promise) {
    // Only opfs-sahpool is used; without this the "opfs" and "opfs-wl" VFSes
    // start two helper workers each time the module loads.
    globalThis.sqlite3ApiConfig = { disable: { vfs: { opfs: true, 'opfs-wl': true } } };
    sqlite3Promise = sqlite3InitModule({
      print: (...a) => console.log('[sqlite]', ...a),
      printErr: (...a) => console.warn('[sqlite]', ...a),
    });
  }
  return sqlite3Promise;
}

function poolName(path) {
  // VFS names and OPFS directory names are derived from the database name,
  // so two databases never share a pool (and a lock).
  return 'edgesql-' + path.replace(/[^A-Za-z0-9_.-]/g, '_');
}

async function openDatabase(path, options) {
  const sqlite3 = await initSqlite();
  let oo1db;
  let storage = 'opfs-sahpool';
  let warning = null;
  const name = poolName(path);
  if (options.storage === 'memory') {
    oo1db = new sqlite3.oo1.DB(':memory:', 'c');
    storage = 'memory';
  } else {
    let pool = null;
    try {
      pool = await sqlite3.installOpfsSAHPoolVfs({
        name, directory: `.edgesql/${name}`, initialCapacity: POOL_CAPACITY, preserveOnInitFailure: true,
      });
      pools.set(name, pool);
    } catch (e) {
      if (e && e.name === 'NoModificationAllowedError') {
        throw new EdgeError(
          `the database ${path} is open in another tab of this browser; close that tab or let edgesql route through it`,
          SQLITE_CANTOPEN, 'OperationalError');
      }
      warning = `OPFS is not available here (${e && e.message ? e.message : e}); ` +
        `the database ${path} lives in memory and will be lost on reload`;
      console.warn('[edgesql]', warning);
    }
    if (pool) {
      if (pool.isPaused()) await pool.unpauseVfs();
      if (pool.getCapacity() - pool.getFileCount() < 2) await pool.addCapacity(2);
      oo1db = new pool.OpfsSAHPoolDb('/' + path);
    } else {
      oo1db = new sqlite3.oo1.DB(':memory:', 'c');
      storage = 'memory';
    }
  }
  const db = new Database(sqlite3, oo1db, {
    name: path, storage, persistent: storage !== 'memory', warning,
  });
  db.pool = storage === 'memory' ? null : pools.get(name);
  // opfs-sahpool has no WAL. PERSIST keeps the journal file and zeroes its
  // header instead of deleting it, which saves an OPFS truncate per commit.
  db.exec('PRAGMA journal_mode = PERSIST');
  db.exec('PRAGMA synchronous = NORMAL');
  db.exec('PRAGMA temp_store = MEMORY');
  db.exec('PRAGMA foreign_keys = ON');
  return db;
}

async function open(req) {
  const path = String(req.path || '');
  if (!path || path.includes('/') || path === '.' || path === '..') {
    throw new EdgeError(`invalid database name ${JSON.stringify(path)}: use a plain file name such as "app.db"`,
      SQLITE_CANTOPEN, 'ProgrammingError');
  }
  const options = req.options || {};
  const key = options.storage === 'memory' ? `memory:${path}` : path;
  let pending = databases.get(key);
  if (!pending) {
    pending = openDatabase(path, options);
    databases.set(key, pending);
    pending.catch(() => databases.delete(key));
  }
  const db = await pending;
  const s = nextSession++;
  sessions.set(s, db);
  db.sessions.add(s);
  const sqliteVersion = db.sqlite3.capi.sqlite3_libversion();
  return JSON.stringify({
    ok: true, s, storage: db.info.storage, persistent: db.info.persistent,
    warning: db.info.warning, path, sqlite_version: sqliteVersion,
  });
}

async function close(req) {
  const db = sessions.get(req.s);
  if (!db) return '{"ok":true}';
  sessions.delete(req.s);
  db.endSession(req.s);
  if (db.sessions.size === 0) {
    // The last session is gone: close the file and let go of its OPFS
    // handles, so another tab (or a later open) can have them.
    const key = db.info.storage === 'memory' ? `memory:${db.info.name}` : db.info.name;
    databases.delete(key);
    if (db.syncer) db.syncer.stop();
    db.close();
    if (db.pool) db.pool.pauseVfs();
  }
  return '{"ok":true}';
}

/**
 * Answer one request text.
 * @param {string} text
 * @returns {string | Promise<string>}
 */
function handleText(text) {
  let req;
  try {
    req = parseRequest(text);
  } catch (e) {
    return errorJson(new EdgeError(`malformed request: ${e.message}`, SQLITE_MISUSE, 'InterfaceError'), false);
  }
  try {
    if (req.op === 'open') return open(req).catch((e) => errorJson(e, false));
    if (req.op === 'close') return close(req).catch((e) => errorJson(e, false));
    if (req.op.startsWith('bench.')) return benchOp(req, sessions);
    if (req.op.startsWith('sync.')) return syncOp(req).catch((e) => errorJson(syncErrorData(e), false));
    const db = sessions.get(req.s);
    if (!db) {
      throw new EdgeError('Cannot operate on a closed database: connect again with edgesql.connect()',
        SQLITE_MISUSE, 'ProgrammingError');
    }
    return db.handle(req);
  } catch (e) {
    return errorJson(e, false);
  }
}

// -- sync ---------------------------------------------------------------------------

function syncErrorData(e) {
  if (e instanceof SyncError) {
    const err = new EdgeError(e.message, 1, 'SyncError');
    err.extra = { sync_code: e.code, status: e.status, retry_after: e.retryAfter };
    return err;
  }
  return e;
}

/** Tell every page about pulled changes and sync status. */
function broadcast(db, event) {
  postMessage({ type: 'event', db: db.info.name, event });
}

async function syncOp(req) {
  const db = sessions.get(req.s);
  if (!db) {
    throw new EdgeError('Cannot operate on a closed database: connect again with edgesql.connect()',
      SQLITE_MISUSE, 'ProgrammingError');
  }
  switch (req.op) {
    case 'sync.start': {
      if (!db.syncer) {
        const syncer = new Syncer(db, { url: req.url, token: req.token || null, interval: req.interval },
          (event) => broadcast(db, event));
        await syncer.start();
        db.syncer = syncer;
      }
      return '{"ok":true}';
    }
    case 'sync.now': {
      const syncer = requireSyncer(db);
      const r = await syncer.sync();
      return JSON.stringify({ ok: true, pushed: r.pushed, pulled: r.pulled });
    }
    case 'sync.status':
      return JSON.stringify({ ok: true, status: requireSyncer(db).status() });
    default:
      throw new EdgeError(`unknown request ${req.op}`, SQLITE_MISUSE, 'InterfaceError');
  }
}

function requireSyncer(db) {
  if (!db.syncer) {
    throw new EdgeError('this database does not sync: connect with sync_url=... to sync with a primary',
      SQLITE_MISUSE, 'ProgrammingError');
  }
  return db.syncer;
}

// -- the SharedArrayBuffer fast path --------------------------------------------

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A macrotask boundary (setTimeout would be clamped to 4 ms when nested). */
function yieldToEventLoop() {
  return new Promise((resolve) => {
    const ch = new MessageChannel();
    ch.port1.onmessage = () => resolve();
    ch.port2.postMessage(0);
  });
}

async function serveSab(buffer) {
  const ctl = new Int32Array(buffer, 0, L.HEADER_BYTES / 4);
  const data = new Uint8Array(buffer, L.HEADER_BYTES, L.DATA_BYTES);
  // The page may have written its first call before this worker was listening.
  let seen = Atomics.load(ctl, L.RESP_SEQ);
  for (;;) {
    if (Atomics.load(ctl, L.REQ_SEQ) === seen) {
      const w = Atomics.waitAsync(ctl, L.REQ_SEQ, seen);
      if (w.async) await w.value;
      if (Atomics.load(ctl, L.REQ_SEQ) === seen) continue; // a kick: messages were handled meanwhile
    } else {
      await yieldToEventLoop(); // left the hot loop for a kick: let the messages in first
    }
    // Serve calls back to back; between them, block briefly in Atomics.wait
    // (cheaper to wake than waitAsync) before going back to the event loop.
    for (;;) {
      seen = Atomics.load(ctl, L.REQ_SEQ);
      const n = Atomics.load(ctl, L.REQ_LEN);
      // TextDecoder refuses views of a SharedArrayBuffer: copy out first.
      const text = decoder.decode(data.slice(0, n));
      let body = handleText(text);
      if (typeof body !== 'string') body = await body;
      const bytes = encoder.encode(body);
      if (bytes.length <= L.DATA_BYTES) {
        data.set(bytes);
        Atomics.store(ctl, L.RESP_LEN, bytes.length);
      } else {
        Atomics.store(ctl, L.RESP_LEN, L.RESP_BY_MESSAGE);
        postMessage({ type: 'res', id: -seen, body });
      }
      Atomics.store(ctl, L.RESP_SEQ, seen);
      Atomics.notify(ctl, L.RESP_SEQ);
      const kick = Atomics.load(ctl, L.KICK);
      if (Atomics.wait(ctl, L.REQ_SEQ, seen, HOT_WAIT_MS) === 'timed-out') break;
      if (Atomics.load(ctl, L.REQ_SEQ) === seen || Atomics.load(ctl, L.KICK) !== kick) break;
    }
  }
}

// -- messages -----------------------------------------------------------------------

self.onmessage = async (ev) => {
  const msg = ev.data;
  if (msg.type === 'sab') {
    serveSab(msg.buffer);
    return;
  }
  if (msg.type === 'req') {
    let body = handleText(msg.body);
    if (typeof body !== 'string') body = await body;
    postMessage({ type: 'res', id: msg.id, body });
  }
};

postMessage({ type: 'ready' });
