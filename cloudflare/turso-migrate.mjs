#!/usr/bin/env node
// Apply the generated migrations (cloudflare/migrations, from `python -m edgesql d1-migrations`)
// to a Turso database, as `wrangler d1 migrations apply` does to D1: in name order, each file
// once and atomically, recorded in the same d1_migrations table. Node 20, no other tool.
//
//   EDGESQL_TURSO_TOKEN=<token> node cloudflare/turso-migrate.mjs --url libsql://<db>-<org>.turso.io
//                                [--migrations cloudflare/migrations]
//
// Prints the files it applied, one JSON line: {"applied": [...]}. The token comes from the
// environment only (a flag would show in the process list). The database must use Turso's
// libSQL engine: edgesql's tables are WITHOUT ROWID, which the newer "Turso engine" refuses.

import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { applyMigrations } from "./local/migrate.mjs";
import { HranaDatabase } from "./src/hrana.js";
import { TURSO_CONCURRENCY, TURSO_TIMEOUT_MS } from "./src/limits.js";

const HERE = dirname(fileURLToPath(import.meta.url));

const { values: args } = parseArgs({
  options: {
    url: { type: "string" },
    migrations: { type: "string", default: join(HERE, "migrations") },
  },
});
if (!args.url) {
  process.stderr.write("turso-migrate.mjs: give --url libsql://<db>-<org>.turso.io (turso db show --url <db>)\n");
  process.exit(2);
}
const db = new HranaDatabase(args.url, process.env.EDGESQL_TURSO_TOKEN ?? "", {
  timeoutMs: 10 * TURSO_TIMEOUT_MS, // a first migration of a large schema takes a while
  concurrency: TURSO_CONCURRENCY,
});
try {
  const applied = await applyMigrations(/** @type {any} */ (db), args.migrations);
  process.stdout.write(`${JSON.stringify({ applied })}\n`);
} catch (e) {
  const message = e instanceof Error ? e.message : String(e);
  const hint = /without rowid/i.test(message)
    ? " — this database runs the Turso engine, which refuses WITHOUT ROWID tables: create one with the libSQL engine"
    : "";
  process.stderr.write(`turso-migrate.mjs: ${message}${hint}\n`);
  process.exit(1);
}
