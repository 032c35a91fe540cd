// Apply wrangler-format migrations (NNNN_name.sql) to a D1 binding, as
// `wrangler d1 migrations apply --local` does: in name order, each file once, as one
// atomic db.batch, recorded in the d1_migrations table wrangler itself uses.

import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { splitStatements } from "./split.mjs";

/** wrangler's own table of applied migrations (same name and columns). */
const TABLE = "d1_migrations";

/**
 * Apply the migrations in ``dir`` that ``db`` has not seen yet.
 * @param {D1Database} db
 * @param {string} dir
 * @returns {Promise<string[]>} the names applied now
 */
export async function applyMigrations(db, dir) {
  await db
    .prepare(
      `CREATE TABLE IF NOT EXISTS ${TABLE}(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE, ` +
        "applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL)",
    )
    .run();
  const { results } = await db.prepare(`SELECT name FROM ${TABLE} ORDER BY id`).all();
  const applied = new Set(results.map((/** @type {any} */ r) => r.name));
  const files = readdirSync(dir)
    .filter((f) => f.endsWith(".sql"))
    .sort();
  const now = [];
  for (const name of files) {
    if (applied.has(name)) continue;
    const record = `INSERT INTO ${TABLE} (name) VALUES ('${name.replace(/'/g, "''")}');`;
    const sql = `${readFileSync(join(dir, name), "utf8")}\n${record}`;
    try {
      await db.batch(splitStatements(sql).map((s) => db.prepare(s)));
    } catch (e) {
      throw new Error(`migration ${name} failed (nothing of it was applied): ${e instanceof Error ? e.message : e}`);
    }
    now.push(name);
  }
  return now;
}
