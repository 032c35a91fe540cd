/**
 * Start Python on a page: Pyodide from /vendor/pyodide (or this device's
 * snapshot of it, see snapshot.js), edgesql from /wheels.
 *
 *   import { bootPython } from '/boot.js';
 *   const pyodide = await bootPython();
 *
 * Everything is served by this project (serve.py or the service worker);
 * nothing is fetched from outside. Failures throw with what went wrong.
 */

/**
 * Pyodide with edgesql installed: from this device's snapshot when there is
 * one (snapshot.js), else started the slow way.
 * @param {{status?: (text: string) => void}} [opts]
 */
export async function bootPython(opts = {}) {
  const { startPyodide } = await import('/snapshot.js');
  return startPyodide({ status: opts.status });
}

/**
 * Run a page's Python file, then expose the contract tests rely on:
 * window.pyodide and <html data-ready="true">.
 * @param {string} pySrcUrl
 */
export async function runPage(pySrcUrl, opts = {}) {
  const pyodide = await bootPython(opts);
  const res = await fetch(pySrcUrl);
  if (!res.ok) throw new Error(`cannot load ${pySrcUrl}: ${res.status}`);
  const code = await res.text();
  await pyodide.runPythonAsync(code, { filename: pySrcUrl });
  globalThis.pyodide = pyodide;
  document.documentElement.dataset.ready = 'true';
  return pyodide;
}
