#!/usr/bin/env node
// Run the edgesql Worker locally on workerd (Cloudflare's runtime) with a local D1,
// through Miniflare — no wrangler, no account, no network: Node 20 is enough.
//
//   node cloudflare/dev.mjs [--persist DIR] [--migrations DIR] [--bundle FILE]
//                           [--turso-url URL] [--host 127.0.0.1] [--port 0] [--exit-on-stdin-eof]
//
// With --turso-url (a local sqld's http://127.0.0.1:PORT, or a Turso database's
// libsql:// URL, its token in EDGESQL_TURSO_TOKEN) the Worker fronts that database
// instead of a local D1: the same Worker, configured as it would be deployed for Turso.
//
// It applies the migrations to the database (as `wrangler d1 migrations apply
// --local` would), then prints one JSON line on stdout:
//   {"event": "ready", "url": "http://127.0.0.1:PORT/", "applied": [...], "pid": N}
// Everything else (workerd's and the Worker's own logs) goes to stderr.
//
// Configuration comes from the environment, else from cloudflare/.dev.vars:
// EDGESQL_TOKEN, EDGESQL_ALLOWED_ORIGIN, EDGESQL_ALLOW_ANONYMOUS, EDGESQL_D1_QUERY_LIMIT,
// EDGESQL_TURSO_TOKEN, EDGESQL_TURSO_TIMEOUT_MS, and the users' JWT settings (src/jwt.js):
// EDGESQL_JWT_SECRET, EDGESQL_JWT_KEY, EDGESQL_JWKS, EDGESQL_JWT_AUDIENCE, EDGESQL_JWT_ISSUER.
// `serve.py --primary d1-local` starts it with --exit-on-stdin-eof and keeps its
// stdin open: when serve.py dies, however it dies, the pipe closes and this exits.

import { existsSync, readFileSync, readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { build } from "esbuild";
import { Miniflare } from "miniflare";
import { applyMigrations } from "./local/migrate.mjs";
import { HranaDatabase } from "./src/hrana.js";
import { TURSO_CONCURRENCY, TURSO_TIMEOUT_MS } from "./src/limits.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const VARS = [
  "EDGESQL_TOKEN",
  "EDGESQL_ALLOWED_ORIGIN",
  "EDGESQL_ALLOW_ANONYMOUS",
  "EDGESQL_D1_QUERY_LIMIT",
  "EDGESQL_TURSO_TOKEN",
  "EDGESQL_TURSO_TIMEOUT_MS",
  "EDGESQL_JWT_SECRET",
  "EDGESQL_JWT_KEY",
  "EDGESQL_JWKS",
  "EDGESQL_JWT_AUDIENCE",
  "EDGESQL_JWT_ISSUER",
];

/** @param {string} text a .dev.vars file: KEY=VALUE lines, # comments */
function parseDevVars(text) {
  /** @type {Record<string, string>} */
  const out = {};
  for (const line of text.split("\n")) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (m && !line.trimStart().startsWith("#")) out[m[1]] = m[2].replace(/^(["'])(.*)\1$/, "$2");
  }
  return out;
}

/** @param {string} key a top-level `key = "value"` of wrangler.toml */
function wranglerSetting(key) {
  const toml = readFileSync(join(HERE, "wrangler.toml"), "utf8");
  const m = new RegExp(`^${key}\\s*=\\s*"([^"]*)"`, "m").exec(toml);
  if (!m) throw new Error(`wrangler.toml has no ${key}`);
  return m[1];
}

/**
 * The npm packages the Worker imports (jose), each as one ES module named as imported: what
 * wrangler's bundling does at deploy, done here for Miniflare, which runs the files as they are.
 * @returns {Promise<{type: "ESModule", path: string, contents: string}[]>}
 */
async function packageModules() {
  return Promise.all(
    ["jose"].map(async (name) => {
      const out = await build({
        stdin: { contents: `export * from "${name}";`, resolveDir: HERE },
        bundle: true,
        format: "esm",
        platform: "browser",
        write: false,
        logLevel: "silent",
      });
      // workerd resolves a bare `import ... from "jose"` in src/*.js as the module src/jose.
      return { type: /** @type {const} */ ("ESModule"), path: join(HERE, "src", name), contents: out.outputFiles[0].text };
    }),
  );
}

/** @param {string} dir @returns {string[]} every .js file under dir */
function jsFiles(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? jsFiles(join(dir, e.name)) : e.name.endsWith(".js") ? [join(dir, e.name)] : [],
  );
}

async function main() {
  const { values: args } = parseArgs({
    options: {
      persist: { type: "string", default: join(HERE, ".wrangler", "edgesql-local") },
      migrations: { type: "string", default: join(HERE, "migrations") },
      bundle: { type: "string", default: join(HERE, "generated", "bundle.json") },
      "turso-url": { type: "string" },
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "0" },
      "exit-on-stdin-eof": { type: "boolean", default: false },
    },
  });
  const devVarsFile = join(HERE, ".dev.vars");
  const devVars = existsSync(devVarsFile) ? parseDevVars(readFileSync(devVarsFile, "utf8")) : {};
  /** @type {Record<string, string>} */
  const bindings = {};
  for (const key of VARS) {
    const value = process.env[key] ?? devVars[key];
    if (value !== undefined) bindings[key] = value;
  }
  const turso = args["turso-url"];
  if (turso) bindings.EDGESQL_TURSO_URL = turso;
  const main = resolve(HERE, wranglerSetting("main"));
  const sources = jsFiles(join(HERE, "src")).filter((f) => f !== main);
  const mf = new Miniflare({
    modules: [
      { type: "ESModule", path: main },
      ...sources.map((path) => ({ type: /** @type {const} */ ("ESModule"), path })),
      ...(await packageModules()),
      // The bundle for the schema being served (serve.py generates one per --schema).
      { type: "Text", path: join(HERE, "generated", "bundle.json"), contents: readFileSync(args.bundle, "utf8") },
    ],
    modulesRoot: HERE,
    compatibilityDate: wranglerSetting("compatibility_date"),
    ...(turso ? {} : { d1Databases: { DB: "edgesql-local" }, d1Persist: args.persist }),
    bindings,
    host: args.host,
    port: Number(args.port),
    cf: false, // no request to Cloudflare for the `cf` object: nothing leaves this machine
    /** @param {import("node:stream").Readable} stdout @param {import("node:stream").Readable} stderr */
    handleRuntimeStdio(stdout, stderr) {
      stdout.pipe(process.stderr); // stdout carries only this script's JSON lines
      stderr.pipe(process.stderr);
    },
  });
  let closing = false;
  const shutdown = async (/** @type {number} */ code) => {
    if (closing) return;
    closing = true;
    try {
      await mf.dispose();
    } finally {
      process.exit(code);
    }
  };
  process.on("SIGINT", () => shutdown(0));
  process.on("SIGTERM", () => shutdown(0));
  if (args["exit-on-stdin-eof"]) {
    process.stdin.on("end", () => shutdown(0));
    process.stdin.on("close", () => shutdown(0));
    process.stdin.resume();
  }
  try {
    const url = await mf.ready;
    const db = turso
      ? new HranaDatabase(turso, bindings.EDGESQL_TURSO_TOKEN ?? "", {
          timeoutMs: 10 * TURSO_TIMEOUT_MS, // a first migration of a large schema takes a while
          concurrency: TURSO_CONCURRENCY,
        })
      : await mf.getD1Database("DB");
    const applied = await applyMigrations(/** @type {any} */ (db), args.migrations);
    process.stdout.write(`${JSON.stringify({ event: "ready", url: url.href, applied, pid: process.pid })}\n`);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    const hint = /without rowid/i.test(message)
      ? " — this Turso database runs the Turso engine, which refuses WITHOUT ROWID tables: use the libSQL engine"
      : "";
    process.stderr.write(`dev.mjs: ${message}${hint}\n`);
    await shutdown(1);
  }
}

await main();
