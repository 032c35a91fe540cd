/**
 * A page's messenger for db.interrupt() where the page has no SharedArrayBuffer.
 *
 * The DB worker of the page's own tab may be the one running the statement
 * to stop, and then reads no message until it ends; so a page that is not
 * cross-origin isolated hands its interrupts to this small worker instead,
 * which writes them into the database's signal file (signals.js), where the
 * running statement's progress handler finds them. web/bridge.js starts it
 * on the first interrupt of such a page.
 *
 *   {name, key, gen}   signal file `name`: connection `key` is now at interrupt `gen`
 */

import { openSignals } from './signals.js';

/** @type {Map<string, Promise<import('./signals.js').SignalFile | null>>} */
const files = new Map();

self.onmessage = async (ev) => {
  const { name, key, gen } = ev.data;
  if (!files.has(name)) files.set(name, openSignals(name));
  const file = await files.get(name);
  if (file) file.write(key, gen);
};
