/**
 * Interrupt signals that reach a worker busy running a statement.
 *
 * A worker stepping a long statement runs synchronously: no message, from
 * its page or from another tab, is read until the statement ends. So
 * `db.interrupt()` must put its signal where the statement's progress
 * handler (interrupts.js) can read it synchronously:
 *
 * - the page's own worker: a SharedArrayBuffer the page writes (db-worker.js
 *   hands it to interrupts.js), where the page is cross-origin isolated;
 * - any other case (another tab's statement, a page without isolation): a
 *   small OPFS file per database, opened by every worker of that database
 *   with `readwrite-unsafe` sync access handles, which several workers (of
 *   several tabs) may hold at once. Reading 8 bytes of it takes microseconds.
 *
 * Each connection has a random 31-bit key (Python picks it) and counts its
 * interrupts (gen). A slot holds one (key, gen) pair, at `key % SLOTS`; a
 * statement sent at gen g is stopped once its slot holds its key with a gen
 * above g. Two live connections whose keys share a slot can only lose an
 * interrupt when both are interrupted within the same millisecond.
 */

/** Slots in each signal file and in the page's SharedArrayBuffer. */
export const SIGNAL_SLOTS = 1024;
/** Bytes per slot: the key and the gen, 32 bits each. */
const SLOT_BYTES = 8;

/**
 * The pair as one 64-bit value, so a reader never sees a key with another key's gen.
 * @param {number} key @param {number} gen @returns {bigint}
 */
export function pack(key, gen) {
  return (BigInt(key >>> 0) << 32n) | BigInt(gen >>> 0);
}

/**
 * The gen stored for `key` in a packed slot, or 0 when the slot holds another key.
 * @param {bigint} slot @param {number} key @returns {number}
 */
export function genOf(slot, key) {
  return Number(slot >> 32n) === key >>> 0 ? Number(slot & 0xffffffffn) : 0;
}

/** One database's signal file, open in this worker. */
export class SignalFile {
  /** @param {any} handle a FileSystemSyncAccessHandle (readwrite-unsafe) */
  constructor(handle) {
    this.handle = handle;
    this.buf = new BigUint64Array(1);
  }

  /** @param {number} key @returns {number} the latest gen signalled for key (0: none) */
  read(key) {
    this.buf[0] = 0n;
    this.handle.read(this.buf, { at: (key % SIGNAL_SLOTS) * SLOT_BYTES });
    return genOf(this.buf[0], key);
  }

  /** @param {number} key @param {number} gen */
  write(key, gen) {
    this.buf[0] = pack(key, gen);
    this.handle.write(this.buf, { at: (key % SIGNAL_SLOTS) * SLOT_BYTES });
  }

  close() {
    try {
      this.handle.close();
    } catch {
      // already closed with its worker's OPFS state: nothing to free
    }
  }
}

/**
 * Open the signal file of a database (`name` as store.js names its OPFS pool).
 * Resolves to null where OPFS or shared sync handles are missing: interrupts
 * then reach a statement only when its worker is free (and statement_timeout
 * works regardless, from the worker's own clock).
 * @param {string} name @returns {Promise<SignalFile | null>}
 */
export async function openSignals(name) {
  try {
    const root = await navigator.storage.getDirectory();
    const dir = await root.getDirectoryHandle('.edgesql', { create: true });
    const file = await dir.getFileHandle(`${name}.interrupts`, { create: true });
    const handle = await file.createSyncAccessHandle({ mode: 'readwrite-unsafe' });
    if (handle.getSize() < SIGNAL_SLOTS * SLOT_BYTES) handle.truncate(SIGNAL_SLOTS * SLOT_BYTES);
    return new SignalFile(handle);
  } catch (e) {
    console.warn('[edgesql] interrupt signals between tabs are unavailable here:', e && e.message ? e.message : e);
    return null;
  }
}
