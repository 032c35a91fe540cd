/**
 * Start Python on a page: Pyodide from /vendor/pyodide, edgesql from /wheels.
 *
 *   import { bootPython } from '/boot.js';
 *   const pyodide = await bootPython();
 *
 * Everything is served by this project (serve.py or the service worker);
 * nothing is fetched from outside. Failures throw with what went wrong.
 */

/** @param {{status?: (text: string) => void}} [opts] */
export async function bootPython(opts = {}) {
  const status = opts.status || (() => {});
  status('Loading Python…');
  const { loadPyodide } = await import('/vendor/pyodide/pyodide.mjs');
  const pyodide = await loadPyodide({ indexURL: new URL('/vendor/pyodide/', location.href).href });
  status('Loading edgesql…');
  const res = await fetch('/wheels/edgesql.json');
  if (!res.ok) throw new Error(`cannot find the edgesql wheel: GET /wheels/edgesql.json answered ${res.status}`);
  const { url } = await res.json();
  // loadPackage does not throw when a package fails: it logs and returns [].
  const loaded = await pyodide.loadPackage(new URL(url, location.href).href);
  if (!loaded || loaded.length === 0) throw new Error(`installing ${url} into Pyodide failed (see the console)`);
  return pyodide;
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
