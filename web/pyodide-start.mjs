/**
 * The demo app's Python interpreter, started as early as the page can: Pyodide
 * from this device's snapshot when there is one (snapshot.js), edgesql installed.
 *
 * index.html loads this module before PyScript, and web/app/pyscript.json
 * names it (same URL, so the same module) as PyScript's "interpreter".
 * Python starts when the module is first evaluated, so its start overlaps
 * PyScript's own loading; PyScript's `loadPyodide(options)` then gets that
 * interpreter, with PyScript's stdout and stderr put in place. Evaluating
 * it also warms the DB worker: SQLite-Wasm starts and the app's database
 * opens while Python starts (the names come from this module's query
 * string: `?open=app.db`).
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

const started = startPyodide();
started.catch(() => {}); // reported to PyScript when it asks for the interpreter

/** PyScript's call: the interpreter started above, printing where PyScript says. */
export async function loadPyodide(options = {}) {
  const pyodide = await started;
  if (options.stdout) pyodide.setStdout({ batched: options.stdout });
  if (options.stderr) pyodide.setStderr({ batched: options.stderr });
  return pyodide;
}
