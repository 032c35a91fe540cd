/**
 * The demo app's Python interpreter, as PyScript loads it: Pyodide from this
 * device's snapshot when there is one (snapshot.js), edgesql installed.
 *
 * web/app/pyscript.json names this module as its "interpreter"; PyScript
 * imports it and calls `loadPyodide(options)` as it would Pyodide's own
 * module. Importing it also warms the DB worker: SQLite-Wasm starts and the
 * app's database opens while Python starts (the names come from this
 * module's query string: `?open=app.db`).
 */

import { getBridge } from './bridge.js';
import { startPyodide } from './snapshot.js';

export { version } from './vendor/pyodide/pyodide.mjs';

const toOpen = new URL(import.meta.url).searchParams.getAll('open');
if (toOpen.length) {
  // Workers wait for pwa.js's go-ahead (a tab reloading for an update starts none before it).
  Promise.resolve(globalThis.edgesqlWorkersMayStart).then(() => {
    const bridge = getBridge();
    for (const path of toOpen) bridge.warm(path);
  });
}

/** PyScript's call: its options (stdout, stderr, ...) go to loadPyodide. */
export function loadPyodide(options = {}) {
  const { indexURL: _ignored, ...rest } = options; // PyScript derives it from this module's URL
  return startPyodide(rest);
}
