/**
 * Make this app version's Python snapshot, away from the page (see snapshot.js).
 *
 * Started by snapshot.js once the page is ready, when no snapshot for this
 * version exists: it starts Pyodide with `_makeSnapshot`, installs the edgesql
 * wheel, runs the recipe (the imports), takes the snapshot and stores it in
 * Cache Storage, deleting the snapshots of other versions. A page restores it
 * on its main thread: nothing in the recipe holds on to a JavaScript object,
 * so nothing in the snapshot depends on this worker's globals.
 *
 *   in:  {url, cache, wheelUrl, recipe, indexURL}
 *   out: {ok: true} once stored, or {ok: false, error}
 */

self.onmessage = async (ev) => {
  const { url, cache, wheelUrl, recipe, indexURL } = ev.data;
  try {
    const { loadPyodide } = await import(new URL('pyodide.mjs', indexURL).href);
    const pyodide = await loadPyodide({ indexURL, _makeSnapshot: true });
    const res = await fetch(wheelUrl);
    if (!res.ok) throw new Error(`GET ${wheelUrl} answered ${res.status}`);
    pyodide.unpackArchive(new Uint8Array(await res.arrayBuffer()), 'wheel');
    pyodide.runPython(recipe);
    const snapshot = pyodide.makeMemorySnapshot();
    const store = await caches.open(cache);
    for (const old of await store.keys()) if (old.url !== url) await store.delete(old);
    await store.put(url, new Response(snapshot, { headers: { 'Content-Type': 'application/octet-stream' } }));
    postMessage({ ok: true });
  } catch (e) {
    postMessage({ ok: false, error: String(e && e.message ? e.message : e) });
  }
};
