/**
 * Imported first by worker.js. SQLite-Wasm's `opfs` VFS starts its OPFS async proxy as a nested
 * worker, `new Worker(new URL('sqlite3-opfs-async-proxy.js', import.meta.url))`. Playwright's
 * routing, which serves build/sqlocal/ to the benchmark page, does not answer requests for a
 * worker started by a worker (net::ERR_FAILED), so the proxy (copied beside this bundle by
 * bench/workloads/sqlocal.py) is read here once, synchronously, and started from a blob: URL
 * with the same source; a blob worker inherits this worker's cross-origin isolation. An app
 * served by a real web server needs none of this.
 */
const PROXY = 'sqlite3-opfs-async-proxy.js';
const url = new URL(PROXY, import.meta.url).href;
const xhr = new XMLHttpRequest();
xhr.open('GET', url, false);
xhr.send();
if (xhr.status !== 200) throw new Error(`${url}: HTTP ${xhr.status}`);
const blobUrl = URL.createObjectURL(new Blob([xhr.responseText], { type: 'text/javascript' }));
const NativeWorker = globalThis.Worker;
globalThis.Worker = class extends NativeWorker {
  constructor(scriptUrl, options) {
    super(String(scriptUrl).endsWith('/' + PROXY) ? blobUrl : scriptUrl, options);
  }
};
