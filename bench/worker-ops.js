/**
 * The benchmark's own requests, added to the DB worker of benchmark pages
 * only: they time work inside the worker, so a benchmark can put the cost of
 * SQLite itself next to the cost of the trip from Python. They run on the
 * same Database object the app uses.
 *
 * The production worker never imports this file: bench/browser.py serves it
 * at /bench/worker-ops.js to its own pages and has their worker import it
 * first, and it adds its ops through worker/extra-ops.js.
 *
 *   {op: 'bench.ping'}                               answers at once (the raw round trip)
 *   {op: 'bench.clock'}                              the worker's performance.now() resolution
 *   {op: 'bench.repeat', s, sql, params: [[...]...]} runs sql once per parameter set, timing
 *                                                    each run: {ok, us: [per-run microseconds]}
 *   {op: 'bench.loop', s, sql, params, level}        the same runs back to back under one timer
 *                                                    (performance.now() is 5 µs coarse in an
 *                                                    isolated worker, 100 µs otherwise, and a
 *                                                    point query takes about 10 µs):
 *                                                    {ok, n, total_us}. level 'sqlite' times
 *                                                    Database.run (bind, step, row to JSON);
 *                                                    'request' times what a real request costs
 *                                                    here: parse the request text, handle it,
 *                                                    write the answer text. wrap 'tx' runs the
 *                                                    loop inside one read transaction, 'exclusive'
 *                                                    with PRAGMA locking_mode=EXCLUSIVE (both show
 *                                                    what SQLite's per-statement locking costs).
 *   {op: 'bench.bulk', s, table, n, mode}            inserts the bench rows 1..n into table in
 *                                                    one transaction: {ok, rows, ms}. mode
 *                                                    'engine' goes through Database.runMany (what
 *                                                    executemany runs after parsing); 'raw' binds
 *                                                    with the C API directly (the floor).
 *   {op: 'bench.parse', text}                        times parsing a request text the way the
 *                                                    worker does (JSON.parse with the type
 *                                                    reviver), and plain JSON.parse for scale:
 *                                                    {ok, ms, plain_ms, bytes}
 *
 * These requests do not queue behind another session's transaction: run
 * them on a database nothing else is using.
 *
 * The bench rows are (i, 'name ' + i zero-padded to 6 digits, i * 0.25 as a
 * REAL): bench/inpage.py builds exactly the same rows in Python.
 */

import { parseRequest, Real } from '../worker/codec.js';
import { addOps } from '../worker/extra-ops.js';

/** @typedef {import('../worker/engine.js').Database} Database */

/** @param {Database | null} db @param {number} s @returns {Database} */
function database(db, s) {
  if (!db) throw new Error(`bench: session ${s} is not on a database this worker owns`);
  return db;
}

/** The i-th bench row, as the engine binds it. @param {number} i */
export function benchRow(i) {
  return [i, 'name ' + String(i).padStart(6, '0'), new Real(i * 0.25)];
}

/** Time the runs back to back under one timer, wrapped as asked. @returns {number} microseconds */
function timeLoop(db, req) {
  const wrap = req.wrap || 'none';
  if (wrap === 'none') return timeRuns(db, req);
  if (wrap === 'tx') {
    db.run('BEGIN', []);
    try {
      return timeRuns(db, req);
    } finally {
      db.run('COMMIT', []);
    }
  }
  if (wrap === 'exclusive') {
    const before = JSON.parse(db.run('PRAGMA locking_mode', []).rows[0])[0];
    if (before === 'exclusive') return timeRuns(db, req);
    db.run('PRAGMA locking_mode = EXCLUSIVE', []);
    try {
      return timeRuns(db, req);
    } finally {
      // The old mode takes effect when the exclusive lock is next released: run one statement.
      db.run(`PRAGMA locking_mode = ${before === 'normal' ? 'NORMAL' : 'EXCLUSIVE'}`, []);
      db.run('SELECT 1 FROM sqlite_schema LIMIT 1', []);
    }
  }
  throw new Error(`bench.loop: unknown wrap ${wrap}`);
}

/** @returns {number} microseconds */
function timeRuns(db, req) {
  const { sql, params } = req;
  if (req.level === 'request') {
    const texts = params.map((p) => JSON.stringify({ op: 'execute', s: req.s, sql, params: p }));
    let sink = 0;
    const t0 = performance.now();
    for (let i = 0; i < texts.length; i++) sink += db.handle(parseRequest(texts[i])).length;
    const us = (performance.now() - t0) * 1000;
    if (sink === 0) throw new Error('bench.loop: empty answers');
    return us;
  }
  const t0 = performance.now();
  for (let i = 0; i < params.length; i++) db.run(sql, params[i]);
  return (performance.now() - t0) * 1000;
}

/** Insert bench rows 1..n into `table`, one transaction; returns milliseconds. */
function bulkInsert(db, table, n, mode) {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(table)) throw new Error(`bench.bulk: bad table name ${table}`);
  const sql = `INSERT INTO ${table} (id, name, value) VALUES (?, ?, ?)`;
  if (mode === 'engine') {
    const rows = new Array(n);
    for (let i = 0; i < n; i++) rows[i] = benchRow(i + 1);
    const t0 = performance.now();
    db.atomic(() => db.runMany(sql, rows));
    return performance.now() - t0;
  }
  if (mode !== 'raw') throw new Error(`bench.bulk: unknown mode ${mode}`);
  const { capi, wasm } = db;
  const t0 = performance.now();
  db.run('BEGIN', []);
  try {
    const pStmt = db.prepare(sql);
    for (let i = 1; i <= n; i++) {
      capi.sqlite3_bind_int(pStmt, 1, i);
      const [p, len] = wasm.allocCString('name ' + String(i).padStart(6, '0'), true);
      capi.sqlite3_bind_text(pStmt, 2, p, len, capi.SQLITE_WASM_DEALLOC);
      capi.sqlite3_bind_double(pStmt, 3, i * 0.25);
      const rc = capi.sqlite3_step(pStmt);
      capi.sqlite3_reset(pStmt);
      if (rc !== 101) throw db.error(rc);
    }
    db.run('COMMIT', []);
  } catch (e) {
    if (db.inTx()) db.run('ROLLBACK', []);
    throw e;
  }
  return performance.now() - t0;
}

/** The smallest step performance.now() takes here, in microseconds. */
function clockResolution() {
  let best = Infinity;
  for (let k = 0; k < 200; k++) {
    const t0 = performance.now();
    let t1 = t0;
    while (t1 === t0) t1 = performance.now();
    best = Math.min(best, t1 - t0);
  }
  return best * 1000;
}

/**
 * @param {any} req its `s` is the session's number on the database
 * @param {Database | null} owned the page session's database, when this worker owns it
 * @returns {string}
 */
function benchOp(req, owned) {
  switch (req.op) {
    case 'bench.ping':
      return '{"ok":true}';
    case 'bench.clock':
      return JSON.stringify({ ok: true, resolution_us: clockResolution(), isolated: !!globalThis.crossOriginIsolated });
    case 'bench.repeat': {
      const db = database(owned, req.s);
      const us = new Array(req.params.length);
      for (let i = 0; i < req.params.length; i++) {
        const t0 = performance.now();
        db.run(req.sql, req.params[i]);
        us[i] = (performance.now() - t0) * 1000;
      }
      return JSON.stringify({ ok: true, us });
    }
    case 'bench.loop': {
      const db = database(owned, req.s);
      return JSON.stringify({ ok: true, n: req.params.length, total_us: timeLoop(db, req) });
    }
    case 'bench.bulk': {
      const db = database(owned, req.s);
      const ms = bulkInsert(db, req.table, req.n, req.mode || 'engine');
      return JSON.stringify({ ok: true, rows: req.n, ms });
    }
    case 'bench.parse': {
      const t0 = performance.now();
      parseRequest(req.text);
      const t1 = performance.now();
      JSON.parse(req.text);
      const plain = performance.now() - t1;
      return JSON.stringify({ ok: true, ms: t1 - t0, plain_ms: plain, bytes: req.text.length });
    }
    default:
      throw new Error(`unknown bench request ${req.op}`);
  }
}

addOps('bench.', (req, router) => {
  const owned = router.ownedDatabase(req.s);
  return benchOp({ ...req, s: owned ? owned.s : 0 }, owned ? owned.db : null);
});
