/**
 * Make this app version's Python snapshot, away from the page (see snapshot.js).
 *
 * Started by snapshot.js once the page is ready, when no snapshot for this
 * version exists: it starts Pyodide with `_makeSnapshot`, installs the edgesql
 * wheel, runs the recipe (the imports), takes the snapshot and stores it in
 * OPFS, under a temporary name moved into place once whole (a page never
 * reads half a snapshot), deleting the snapshots of other versions. A page restores it
 * on its main thread: nothing in the recipe holds on to a JavaScript object,
 * so nothing in the snapshot depends on this worker's globals.
 *
 *   in:  {name, dir, wheelUrl, recipe, indexURL}   dir: the OPFS folder's path, as a list
 *   out: {ok: true} once stored, or {ok: false, error}
 */

self.onmessage = async (ev) => {
  const { name, dir: path, wheelUrl, recipe, indexURL } = ev.data;
  try {
    const { loadPyodide } = await import(new URL('pyodide.mjs', indexURL).href);
    const pyodide = await loadPyodide({ indexURL, _makeSnapshot: true });
    const res = await fetch(wheelUrl);
    if (!res.ok) throw new Error(`GET ${wheelUrl} answered ${res.status}`);
    pyodide.unpackArchive(new Uint8Array(await res.arrayBuffer()), 'wheel');
    pyodide.runPython(recipe);
    const snapshot = pyodide.makeMemorySnapshot();
    let dir = await navigator.storage.getDirectory();
    for (const part of path) dir = await dir.getDirectoryHandle(part, { create: true });
    const tmp = await dir.getFileHandle(`${name}.part`, { create: true });
    const handle = await tmp.createSyncAccessHandle();
    try {
      handle.truncate(0);
      if (handle.write(snapshot, { at: 0 }) !== snapshot.length) throw new Error('the snapshot was not written whole');
      handle.flush();
    } finally {
      handle.close();
    }
    for await (const old of dir.keys()) if (old !== `${name}.part`) await dir.removeEntry(old);
    await tmp.move(name);
    postMessage({ ok: true });
  } catch (e) {
    postMessage({ ok: false, error: String(e && e.message ? e.message : e) });
  }
};
