/**
 * The SQLocal contender (bench/workloads/sqlocal.py): SQLocal's client, bundled by esbuild into
 * build/sqlocal/client.js and imported by the fast-path benchmark page; it defines
 * globalThis.edgesqlSqlocal. SQLocal's worker is bundled beside it (build/sqlocal/worker.js, with
 * the sqlite3.wasm and OPFS async proxy of the SQLite-Wasm SQLocal depends on), and handed to the
 * client as its processor: what Vite would do for an app. Every call is timed with
 * performance.now() in page JavaScript, around SQLocal's public API (sql, transaction, batch).
 * Nothing here is part of edgesql.
 */
import { SQLocal } from 'sqlocal';

/** Statements per batch() in the bulk insert (one batch of 100k throws a RangeError in SQLocal 0.18). */
const BULK_CHUNK = 5000;

globalThis.edgesqlSqlocal = {
  /** @type {SQLocal | null} */
  db: null,

  /**
   * Open the database in SQLocal's worker and say where it really is: SQLocal falls back to an
   * in-memory database silently (a console warning) when OPFS cannot be used.
   */
  async open(path) {
    if (this.db) await this.close();
    const worker = new Worker(new URL('worker.js', import.meta.url), { type: 'module' });
    this.db = new SQLocal({ databasePath: path, processor: worker });
    const t0 = performance.now();
    const version = (await this.db.sql('SELECT sqlite_version() AS v'))[0].v;
    const open_ms = performance.now() - t0;
    const info = await this.db.getDatabaseInfo();
    const pragmas = {};
    for (const p of ['journal_mode', 'synchronous', 'page_size']) {
      pragmas[p] = Object.values((await this.db.sql(`PRAGMA ${p}`))[0])[0];
    }
    return { ...info, version, open_ms, pragmas, isolated: globalThis.crossOriginIsolated === true };
  },

  async close() {
    if (this.db) await this.db.destroy();
    this.db = null;
  },

  /** Run statements one by one (untimed setup). */
  async run(statements) {
    for (const s of statements) await this.db.sql(s);
  },

  /** The first row of a query, as an array of values. */
  async row(sql) {
    const rows = await this.db.sql(sql);
    return rows.length ? Object.values(rows[0]) : null;
  },

  /**
   * One statement per parameter set, back to back, each its own db.sql() call (the first `warm`
   * untimed): per-call µs, and how many answers did not have `expect` rows.
   */
  async reads(sql, params, warm, expect) {
    for (let i = 0; i < warm; i++) await this.db.sql(sql, ...params[i % params.length]);
    const us = new Array(params.length);
    let wrong = 0;
    const start = performance.now();
    for (let i = 0; i < params.length; i++) {
      const t0 = performance.now();
      const rows = await this.db.sql(sql, ...params[i]);
      us[i] = (performance.now() - t0) * 1000;
      if (rows.length !== expect) wrong++;
    }
    return { us, wrong, total_us: (performance.now() - start) * 1000 };
  },

  /**
   * The writes table emptied (untimed), `synchronous` set, then one autocommit INSERT per row,
   * back to back: per-write µs, total µs, and the rows the table then holds.
   */
  async writes(table, setup, synchronous, insert, rows) {
    await this.run([...setup, `PRAGMA synchronous=${synchronous}`]);
    const us = new Array(rows.length);
    const start = performance.now();
    for (let i = 0; i < rows.length; i++) {
      const t0 = performance.now();
      await this.db.sql(insert, ...rows[i]);
      us[i] = (performance.now() - t0) * 1000;
    }
    const total_us = (performance.now() - start) * 1000;
    return { us, total_us, count: (await this.row(`SELECT count(*) FROM ${table}`))[0] };
  },

  /**
   * Rows 1..n (bench_row) inserted in one transaction, in batch() calls of BULK_CHUNK statements,
   * into the emptied writes table: {ms, count}.
   */
  async bulk(table, setup, insert, n) {
    await this.run(setup);
    const row = (i) => [i, 'name ' + String(i).padStart(6, '0'), i * 0.25];
    const t0 = performance.now();
    await this.db.transaction(async (tx) => {
      for (let first = 1; first <= n; first += BULK_CHUNK) {
        const last = Math.min(n, first + BULK_CHUNK - 1);
        await tx.batch((sql) => {
          const out = [];
          for (let i = first; i <= last; i++) out.push(sql(insert, ...row(i)));
          return out;
        });
      }
    });
    const ms = performance.now() - t0;
    return { ms, count: (await this.row(`SELECT count(*) FROM ${table}`))[0], chunk: BULK_CHUNK };
  },
};
