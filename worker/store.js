/**
 * Opening and closing databases in this worker: SQLite-Wasm and OPFS.
 *
 * Each database gets its own opfs-sahpool VFS (its own OPFS directory), so
 * each can have its own owner tab. Where OPFS is missing the database opens
 * in memory and says so (storage: "memory", a warning, logged here).
 */

import sqlite3InitModule from '../vendor/sqlite-wasm/index.mjs';
import { Database } from './engine.js';
import { EdgeError, SQLITE_CANTOPEN } from './errors.js';
import { isQuotaError, storageFull, watchQuota } from './quota.js';

/** OPFS slots per database: the file, its journal, and room to spare. */
const POOL_CAPACITY = 4;

let sqlite3Promise = null;
/** The sahpool VFS of each database, kept (paused) after the database closes. */
const pools = new Map();

export function initSqlite() {
  if (!sqlite3Promise) {
    watchQuota();
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

/** The name of a database's OPFS pool (and of its interrupt signal file, signals.js). @param {string} path */
export function poolName(path) {
  // VFS names and OPFS directory names are derived from the database name,
  // so two databases never share a pool (and a lock).
  return 'edgesql-' + path.replace(/[^A-Za-z0-9_.-]/g, '_');
}

/** True for the error another tab's open handles cause (opfs-sahpool holds them all). */
export function isLockedError(e) {
  return !!e && (e.name === 'NoModificationAllowedError' || /NoModificationAllowed/.test(String(e && e.message)));
}

/** Is OPFS (with synchronous access handles) there at all? */
export async function hasOpfs() {
  try {
    return typeof FileSystemSyncAccessHandle === 'function' && !!(await navigator.storage.getDirectory());
  } catch {
    return false;
  }
}

/**
 * Open `path` from OPFS, or in memory when asked or when OPFS is missing.
 * Throws an EdgeError with code SQLITE_BUSY-like meaning (`locked: true`)
 * when another tab holds the database's OPFS files.
 */
export async function openDatabase(path, options, retrying = false) {
  const sqlite3 = await initSqlite();
  let oo1db;
  let storage = 'opfs-sahpool';
  let warning = null;
  const name = poolName(path);
  let pool = null;
  if (options.storage === 'memory') {
    storage = 'memory';
  } else {
    try {
      pool = pools.get(name) || await sqlite3.installOpfsSAHPoolVfs({
        name,
        directory: `.edgesql/${name}`,
        initialCapacity: POOL_CAPACITY,
        // Never let a failed start delete the pool: the failure may only mean
        // another tab still holds it.
        preserveOnInitFailure: true,
        forceReinitIfPreviouslyFailed: retrying,
      });
      pools.set(name, pool);
      if (pool.isPaused()) await pool.unpauseVfs();
    } catch (e) {
      if (isLockedError(e)) {
        const err = new EdgeError(`the database ${path} is held by another tab of this browser`, SQLITE_CANTOPEN, 'OperationalError');
        err.locked = true;
        throw err;
      }
      // OPFS is there but full: an empty database in memory would hide this one's data
      // and lose every write made in it. Say so instead.
      if (isQuotaError(e)) throw storageFull(`the database ${path} cannot be opened`);
      pool = null;
      warning = `OPFS is not available here (${e && e.message ? e.message : e}); ` +
        `the database ${path} lives in memory and will be lost on reload`;
      console.warn('[edgesql]', warning);
      storage = 'memory';
    }
  }
  if (pool) {
    if (pool.getCapacity() - pool.getFileCount() < 2) {
      try {
        await pool.addCapacity(2);
      } catch (e) {
        if (isQuotaError(e)) throw storageFull(`the database ${path} cannot be opened`);
        throw e;
      }
    }
    oo1db = new pool.OpfsSAHPoolDb('/' + path);
  } else {
    oo1db = new sqlite3.oo1.DB(':memory:', 'c');
  }
  const db = new Database(sqlite3, oo1db, { name: path, storage, persistent: storage !== 'memory', warning });
  db.pool = pool;
  // This worker is the only connection to the file (opfs-sahpool holds every
  // handle), so EXCLUSIVE locking loses nothing and saves what each
  // transaction otherwise pays to lock, look for a hot journal and re-check
  // the page cache: ~2 ms per autocommit statement on OPFS, measured. It also
  // lets WAL work without shared memory (the WAL index lives in the heap).
  db.exec('PRAGMA locking_mode = EXCLUSIVE');
  // WAL: a commit appends to one file instead of writing a journal and the
  // database (3-5x cheaper on OPFS, measured). With synchronous=NORMAL a
  // commit survives a crash of the tab or the browser (its pages are written
  // to the file before the await returns) but not a power cut or an OS crash;
  // durability: "full" flushes to disk at every commit and survives those too.
  db.exec('PRAGMA journal_mode = WAL');
  db.exec(`PRAGMA synchronous = ${options.durability === 'full' ? 'FULL' : 'NORMAL'}`);
  db.exec('PRAGMA temp_store = MEMORY');
  db.exec('PRAGMA foreign_keys = ON');
  return db;
}

/** Close a database and let go of its OPFS handles, so another tab can open it. */
export function closeDatabase(db) {
  if (db.syncer) db.syncer.stop();
  db.close();
  if (db.pool) db.pool.pauseVfs();
}
