/**
 * Telling "the site's storage quota is full" from other I/O errors.
 *
 * When an OPFS write would go past the origin's quota, Chromium 156's
 * FileSystemSyncAccessHandle.write() neither throws QuotaExceededError nor
 * writes less: it returns 4294967288, which is base::File's FILE_ERROR_NO_SPACE
 * (-8) read as an unsigned long (seen with CDP Storage.overrideQuotaForOrigin;
 * other browsers may throw or write short). opfs-sahpool (SQLite-Wasm 3.54.1)
 * turns any of these into a plain SQLITE_IOERR, "disk I/O error", which says
 * nothing a person can act on. So the handle's write() and truncate() are wrapped here, once, to note
 * when the quota stopped a write; the engine then reports the failed statement
 * as SQLITE_FULL with what to do (see engine.js, Database.error). SQLite rolls
 * the statement (or transaction) back as for any I/O error: earlier commits stay.
 */

import { EdgeError } from './errors.js';

export const SQLITE_IOERR = 10;
export const SQLITE_FULL = 13;
/** A quota failure this recent explains an I/O error (the same statement, in practice). */
const RECENT_MS = 5000;

let fullAt = 0;

/** Wrap the sync access handle's writers (idempotent; a no-op where OPFS is missing). */
export function watchQuota() {
  const proto = globalThis.FileSystemSyncAccessHandle?.prototype;
  if (!proto || proto.edgesqlWatched) return;
  const { write, truncate } = proto;
  proto.write = function (buffer, options) {
    try {
      const n = write.call(this, buffer, options);
      if (n !== buffer.byteLength) fullAt = performance.now(); // short, or an error code (see above)
      return n;
    } catch (e) {
      if (e && e.name === 'QuotaExceededError') fullAt = performance.now();
      throw e;
    }
  };
  proto.truncate = function (size) {
    try {
      return truncate.call(this, size);
    } catch (e) {
      if (e && e.name === 'QuotaExceededError') fullAt = performance.now();
      throw e;
    }
  };
  Object.defineProperty(proto, 'edgesqlWatched', { value: true });
}

/** Did the quota stop a write just now? (Answers once per failure.) */
export function takeStorageFull() {
  const hit = fullAt !== 0 && performance.now() - fullAt < RECENT_MS;
  fullAt = 0;
  return hit;
}

/** Is `e` the browser refusing storage for lack of quota? */
export function isQuotaError(e) {
  return !!e && (e.name === 'QuotaExceededError' || /storage quota/i.test(String(e.message)));
}

/**
 * The error for a write (or an open) the full quota refused.
 * @param {string} what what failed, e.g. "this write was not saved"
 */
export function storageFull(what) {
  return new EdgeError(
    `storage is full: the browser's quota for this site is used up, so ${what}; earlier writes are ` +
    'safe. Free space (delete data you no longer need, or other data of this site) or ask the browser ' +
    'for more (navigator.storage.persist()), then try again',
    SQLITE_FULL, 'OperationalError', 'SQLITE_FULL');
}
