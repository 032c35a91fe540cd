/**
 * The JavaScript half of the benchmark, injected into console.html by
 * bench/browser.py (a classic script: it defines globalThis.edgesqlBench).
 *
 * It times the raw round trip from JavaScript through the very bridge and
 * worker Python uses (bridge.js's getBridge() is one per page, so this is
 * the same worker and the same SharedArrayBuffer), with the same request
 * text Python would send. Nothing here is part of edgesql.
 */
'use strict';

globalThis.edgesqlBench = {
  /** The page's bridge: the same module instance edgesql._browser loaded. */
  async bridge() {
    const mod = await import(new URL('/bridge.js', location.href).href);
    return mod.getBridge();
  },

  /**
   * Send each request text through the bridge back to back, as Python does:
   * callSync, and wait only when the answer did not come back at once.
   * The first `warm` calls are not timed.
   * @param {string[]} texts
   * @param {number} warm
   * @returns {Promise<{us: number[], waited: boolean[], total_us: number, sync: number, bytes: number}>}
   */
  async roundTrips(texts, warm) {
    const bridge = await this.bridge();
    let bytes = 0;
    for (let i = 0; i < warm; i++) {
      let out = bridge.callSync(texts[i % texts.length]);
      if (typeof out !== 'string') out = await bridge.wait(out);
      bytes += out.length;
    }
    const us = new Array(texts.length);
    const waited = new Array(texts.length);
    let sync = 0;
    const start = performance.now();
    for (let i = 0; i < texts.length; i++) {
      const t0 = performance.now();
      let out = bridge.callSync(texts[i]);
      waited[i] = typeof out !== 'string';
      if (waited[i]) out = await bridge.wait(out);
      else sync++;
      us[i] = (performance.now() - t0) * 1000;
      bytes += out.length;
    }
    const total_us = (performance.now() - start) * 1000;
    if (bytes === 0) throw new Error('roundTrips: no answers');
    return { us, waited, total_us, sync, bytes };
  },

  /** The smallest step performance.now() takes on this page, in microseconds. */
  clockResolution() {
    let best = Infinity;
    for (let k = 0; k < 200; k++) {
      const t0 = performance.now();
      let t1 = t0;
      while (t1 === t0) t1 = performance.now();
      best = Math.min(best, t1 - t0);
    }
    return best * 1000;
  },

  /** Returns the length of a string: Python → JS string conversion without a copy back. */
  length(s) {
    return s.length;
  },
};

/**
 * Raw IndexedDB from page JavaScript: the contender a JavaScript developer
 * reaches for first (bench/workloads/indexeddb.py). One database
 * 'edgesql-bench-idb' with three object stores keyed by `id`: 'points'
 * holds the same rows as the point-query table (kept across page loads),
 * 'writes' and 'bulk' take the write workloads. Each call is timed with
 * performance.now() around the request and its transaction's completion.
 */
Object.assign(globalThis.edgesqlBench, {
  idbName: 'edgesql-bench-idb',

  /** @returns {Promise<IDBDatabase>} */
  idbOpen() {
    if (this._idb) return Promise.resolve(this._idb);
    return new Promise((resolve, reject) => {
      const req = indexedDB.open(this.idbName, 1);
      req.onupgradeneeded = () => {
        for (const name of ['points', 'writes', 'bulk']) req.result.createObjectStore(name, { keyPath: 'id' });
      };
      req.onsuccess = () => {
        this._idb = req.result;
        resolve(req.result);
      };
      req.onerror = () => reject(req.error);
    });
  },

  /** Resolve when the transaction commits (its data is then where its durability says). */
  idbDone(tx) {
    return new Promise((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error || new Error('transaction aborted'));
    });
  },

  /** The i-th bench row as an IndexedDB record (bench/inpage.py bench_row). */
  idbRow(i) {
    return { id: i, name: 'name ' + String(i).padStart(6, '0'), value: i * 0.25 };
  },

  /** Make 'points' hold exactly the rows 1..n; returns {created, ms}. */
  async idbEnsurePoints(n) {
    const db = await this.idbOpen();
    const t0 = performance.now();
    const tx0 = db.transaction('points', 'readonly');
    const count = await new Promise((resolve, reject) => {
      const req = tx0.objectStore('points').count();
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    if (count === n) return { created: false, ms: performance.now() - t0 };
    const tx = db.transaction('points', 'readwrite');
    const store = tx.objectStore('points');
    store.clear();
    for (let i = 1; i <= n; i++) store.put(this.idbRow(i));
    await this.idbDone(tx);
    return { created: true, ms: performance.now() - t0 };
  },

  /** Clear a store, untimed. */
  async idbClear(name) {
    const db = await this.idbOpen();
    const tx = db.transaction(name, 'readwrite');
    tx.objectStore(name).clear();
    await this.idbDone(tx);
  },

  /**
   * get(key) in its own read-only transaction, back to back, for each key
   * (the first `warm` untimed): per-call µs, checked against the key.
   */
  async idbGets(keys, warm) {
    const db = await this.idbOpen();
    const get = (k) =>
      new Promise((resolve, reject) => {
        const req = db.transaction('points', 'readonly').objectStore('points').get(k);
        req.onsuccess = () => resolve(req.result);
        req.onerror = () => reject(req.error);
      });
    for (let i = 0; i < warm; i++) await get(keys[i % keys.length]);
    const us = new Array(keys.length);
    let wrong = 0;
    for (let i = 0; i < keys.length; i++) {
      const t0 = performance.now();
      const row = await get(keys[i]);
      us[i] = (performance.now() - t0) * 1000;
      if (!row || row.id !== keys[i]) wrong++;
    }
    return { us, wrong };
  },

  /**
   * put(row) + commit, one read-write transaction per row with the given
   * durability ('relaxed' or 'strict'), back to back into a cleared
   * 'writes' store: per-write µs (until the transaction completes), total µs.
   */
  async idbPuts(n, durability) {
    await this.idbClear('writes');
    const db = await this.idbOpen();
    const us = new Array(n);
    const start = performance.now();
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      const tx = db.transaction('writes', 'readwrite', { durability });
      tx.objectStore('writes').put(this.idbRow(i + 1));
      await this.idbDone(tx);
      us[i] = (performance.now() - t0) * 1000;
    }
    const total_us = (performance.now() - start) * 1000;
    return { us, total_us, count: await this.idbCount('writes') };
  },

  /** n rows put in one read-write transaction into a cleared 'bulk' store: {ms, count}. */
  async idbBulk(n) {
    await this.idbClear('bulk');
    const db = await this.idbOpen();
    const t0 = performance.now();
    const tx = db.transaction('bulk', 'readwrite');
    const store = tx.objectStore('bulk');
    for (let i = 1; i <= n; i++) store.put(this.idbRow(i));
    await this.idbDone(tx);
    const ms = performance.now() - t0;
    const count = await this.idbCount('bulk');
    await this.idbClear('bulk');
    return { ms, count };
  },

  async idbCount(name) {
    const db = await this.idbOpen();
    return new Promise((resolve, reject) => {
      const req = db.transaction(name, 'readonly').objectStore(name).count();
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  },
});
