/**
 * Start Pyodide fast: from a memory snapshot kept on this device, with edgesql imported.
 *
 *   import { startPyodide } from '/snapshot.js';
 *   const pyodide = await startPyodide({ status });   // edgesql installed and importable
 *
 * Starting Python from nothing takes seconds here, nearly all of it
 * CPython's own start and its imports, run by freshly compiled WebAssembly.
 * Pyodide can instead restore the whole interpreter's memory from a snapshot
 * (`loadPyodide({_loadSnapshot})`, the experimental API Cloudflare's Python
 * Workers use), skipping all of that. The snapshot is made on this device,
 * once per app version, by a worker of its own after the page is ready
 * (snapshot-worker.js), and kept in OPFS (`.edgesql/python/`, about 31 MB),
 * beside the databases and out of the service worker's caches. It holds
 * Pyodide's start, every edgesql module and the standard modules the pages
 * use (RECIPE). Only the installed app makes and uses one: a page the
 * service worker serves (a returning visit); a one-off visit costs neither
 * the CPU nor the space, nor the look into OPFS.
 *
 * A snapshot is only used for the version it was made for: its name holds the
 * Pyodide version, the sha256 of the edgesql wheel the server hands out
 * (/wheels/edgesql.json; a new app version is a new wheel) and a hash of the
 * recipe. Anything else starts Python the slow way, and a snapshot that
 * fails to restore (a Pyodide build it does not match) is deleted; either way
 * a new one is made after the page is ready.
 *
 * `globalThis.edgesqlStart` tells pages, tests and benchmarks what happened:
 * `{how: 'snapshot' | 'no-snapshot' | 'bad-snapshot', snapshot: Promise}`,
 * the promise resolving to the snapshot's file name once one for this
 * version is stored (or null when none is made: a first visit, or no way to
 * make one).
 */

import { loadPyodide, version } from './vendor/pyodide/pyodide.mjs';

const PYODIDE_URL = new URL('./vendor/pyodide/', import.meta.url).href;
/** The OPFS folder of the snapshot (one file, named after the version it was made for). */
export const SNAPSHOT_DIR = ['.edgesql', 'python'];
/** After the page says it is ready (<html data-ready>), wait this long before the worker starts: its first interactions go first. */
const MAKE_AFTER_READY_MS = 1500;

/**
 * Python run before a snapshot is taken: every module a page will import,
 * so a restored interpreter has them in memory. A module that needs a
 * CPython-only library fails the same way in every start and is skipped.
 */
export const RECIPE = `
import importlib, pkgutil, edgesql
for _m in pkgutil.walk_packages(edgesql.__path__, "edgesql."):
    if not (_m.name.startswith("edgesql.server") or _m.name == "edgesql.__main__"):
        try:
            importlib.import_module(_m.name)
        except ImportError:
            pass
import asyncio, base64, dataclasses, datetime, html, json, math, random, re, traceback, uuid
import pyodide.code, pyodide.ffi
del _m
`;

/**
 * What runs after every start, restored or not: a restored interpreter would
 * otherwise repeat the snapshot's pseudo-random sequence in every tab.
 */
const AFTER_START = 'import random; random.seed()';

function hash(text) {
  let h = 5381;
  for (let i = 0; i < text.length; i++) h = (h * 33 + text.charCodeAt(i)) >>> 0;
  return h.toString(16);
}

/** The edgesql wheel the server hands out: {url, sha256}. */
async function wheelInfo() {
  const res = await fetch('/wheels/edgesql.json');
  if (!res.ok) throw new Error(`cannot find the edgesql wheel: GET /wheels/edgesql.json answered ${res.status}`);
  return res.json();
}

/** @param {{sha256: string}} wheel @returns {string} the file name of this version's snapshot */
export function snapshotName(wheel) {
  return `snapshot-${version}-${wheel.sha256.slice(0, 20)}-${hash(RECIPE)}.bin`;
}

/** The snapshot folder, or null where OPFS is missing. @param {boolean} create */
export async function snapshotDir(create) {
  try {
    let dir = await navigator.storage.getDirectory();
    for (const name of SNAPSHOT_DIR) dir = await dir.getDirectoryHandle(name, { create });
    return dir;
  } catch {
    return null; // no OPFS, or nothing stored yet
  }
}

async function hasSnapshot(name) {
  const dir = await snapshotDir(false);
  try {
    return !!dir && !!(await dir.getFileHandle(name));
  } catch {
    return false; // none for this version
  }
}

/**
 * The snapshot this device holds, whatever version it is for: {name, bytes}, or null.
 * Read while the wheel's version is still being fetched; its name is checked after.
 */
async function readAnySnapshot() {
  const dir = await snapshotDir(false);
  if (!dir) return null;
  for await (const [name, handle] of dir.entries()) {
    if (handle.kind !== 'file' || !name.endsWith('.bin')) continue; // a .part is still being written
    try {
      return { name, bytes: new Uint8Array(await (await handle.getFile()).arrayBuffer()) };
    } catch {
      return null;
    }
  }
  return null;
}

async function forget(name) {
  const dir = await snapshotDir(false);
  try {
    if (dir) await dir.removeEntry(name);
  } catch {
    // nothing stored, nothing to delete
  }
}

/**
 * Pyodide with edgesql installed, from this version's snapshot when there is one.
 * @param {{status?: (text: string) => void, [option: string]: any}} [options] loadPyodide's options
 */
export async function startPyodide(options = {}) {
  const { status = () => {}, ...loadOptions } = options;
  // Marks for the start-up benchmark (bench/startup.py): where the time goes.
  performance.mark('python:start');
  // The snapshot, the wheel's version and the wheel are read at the same time: on a first
  // visit there is no snapshot, and Python starts without waiting for the network.
  const wheelP = wheelInfo();
  const wheelBytesP = wheelP.then(async (w) => new Uint8Array(await (await fetch(w.url)).arrayBuffer()));
  wheelBytesP.catch(() => {}); // awaited below; a failure is reported there
  // Only the installed app (a page the service worker serves) makes and uses snapshots: a first
  // visit does not even look (opening OPFS costs a first visit a quarter of a second here).
  const returning = !!navigator.serviceWorker?.controller;
  const found = returning ? await readAnySnapshot() : null;
  const wheel = found ? await wheelP : null;
  const name = wheel ? snapshotName(wheel) : null;
  const bytes = found && found.name === name ? found.bytes : null; // another version's is left for the maker
  performance.mark('python:snapshot-read');
  let pyodide = null;
  let how = 'no-snapshot';
  if (bytes) {
    status('Starting Python…');
    try {
      pyodide = await loadPyodide({ ...loadOptions, indexURL: PYODIDE_URL, _loadSnapshot: bytes });
      how = 'snapshot';
    } catch (e) {
      // Made for another Pyodide build, or damaged: delete it; a new one is made once the page is ready.
      console.warn('[edgesql] the Python snapshot could not be restored; starting without it:', e);
      await forget(name);
      how = 'bad-snapshot';
    }
  }
  if (!pyodide) {
    status('Loading Python…');
    pyodide = await loadPyodide({ ...loadOptions, indexURL: PYODIDE_URL });
  }
  performance.mark('python:interpreter');
  status('Loading edgesql…');
  // The files go on the file system either way: a restored interpreter has the modules in
  // memory, and tracebacks still read their source from here.
  pyodide.unpackArchive(await wheelBytesP, 'wheel');
  pyodide.runPython(AFTER_START);
  performance.mark('python:edgesql');
  const current = await wheelP;
  const snapshot = how === 'snapshot' ? Promise.resolve(name)
    : returning ? makeWhenReady(current, snapshotName(current)) : Promise.resolve(null);
  globalThis.edgesqlStart = { how, snapshot };
  return pyodide;
}

/**
 * Once the page is ready, make this version's snapshot in a worker of its own.
 * One tab at a time makes it (a Web Lock); the others then find it made.
 */
function makeWhenReady(wheel, name) {
  if (typeof Worker !== 'function' || !navigator.storage || !navigator.locks) return Promise.resolve(null);
  return pageReady()
    .then(() => new Promise((resolve) => setTimeout(resolve, MAKE_AFTER_READY_MS)))
    .then(() => navigator.locks.request('edgesql:snapshot', async () => {
      if (await hasSnapshot(name)) return name; // another tab made it meanwhile
      return makeSnapshot(wheel, name);
    }));
}

function makeSnapshot(wheel, name) {
  return new Promise((resolve) => {
    const worker = new Worker(new URL('./snapshot-worker.js', import.meta.url), { type: 'module', name: 'edgesql-snapshot' });
    worker.onmessage = (ev) => {
      worker.terminate();
      if (!ev.data.ok) console.warn('[edgesql] no Python snapshot was made:', ev.data.error);
      resolve(ev.data.ok ? name : null);
    };
    worker.onerror = (ev) => {
      worker.terminate();
      console.warn('[edgesql] the snapshot worker failed:', ev.message);
      resolve(null);
    };
    worker.postMessage({ name, dir: SNAPSHOT_DIR, wheelUrl: new URL(wheel.url, location.href).href, recipe: RECIPE, indexURL: PYODIDE_URL });
  });
}

/** Resolves once <html data-ready="true"> (the pages' contract: console.html, the app). */
function pageReady() {
  const html = document.documentElement;
  if (html.dataset.ready === 'true') return Promise.resolve();
  return new Promise((resolve) => {
    const seen = new MutationObserver(() => {
      if (html.dataset.ready === 'true') {
        seen.disconnect();
        resolve();
      }
    });
    seen.observe(html, { attributes: true, attributeFilter: ['data-ready'] });
  });
}
