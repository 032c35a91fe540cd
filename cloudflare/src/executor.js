// The database a primary runs its statements on, and how its errors read.
//
// The request flow (primary.js, access.js) needs only what D1's binding offers: prepare a
// statement, bind it, run it alone (first / run / all), or run several as ONE atomic
// batch. D1's binding is one implementation; HranaDatabase (hrana.js: Hrana over HTTP to
// sqld or Turso Cloud) is the other, so the Worker fronts either with the same flow.
//
// Error contract of every implementation:
//   * a statement SQLite refuses throws, and `sqliteError(e)` (dberror.js) reads its SQLite
//     code and message (D1 puts them in the message text, Hrana in fields);
//   * a failed batch changed nothing;
//   * anything else (unreachable, timed out, locked, overloaded) throws too, and the Worker
//     answers 503 with Retry-After: nothing was half-applied, a retry replays harmlessly.
//
// Environment: EDGESQL_TURSO_URL set (libsql://, https:// or http://) selects Turso, with
// the token in the secret EDGESQL_TURSO_TOKEN; otherwise the D1 binding DB.

import { HranaDatabase, pipelineUrl } from "./hrana.js";
import { TURSO_CONCURRENCY, TURSO_TIMEOUT_MS } from "./limits.js";

/**
 * A bound statement, as the flow uses it (D1PreparedStatement's subset).
 * @typedef {object} Statement
 * @property {(...values: unknown[]) => Statement} bind
 * @property {(column?: string) => Promise<any>} first
 * @property {() => Promise<Result>} run
 * @property {() => Promise<Result>} all
 */

/**
 * @typedef {object} Result
 * @property {Record<string, unknown>[]} results
 */

/**
 * The database (D1Database's subset): `batch` is atomic. Its mode says whether the batch
 * only reads ("read": a database with locks need not take the write lock for it; D1
 * ignores it) or may write ("write", the default).
 * @typedef {object} Database
 * @property {(sql: string) => Statement} prepare
 * @property {(statements: Statement[], mode?: "read" | "write") => Promise<Result[]>} batch
 */

/**
 * @typedef {object} DatabaseEnv
 * @property {D1Database} [DB]
 * @property {string} [EDGESQL_TURSO_URL]
 * @property {string} [EDGESQL_TURSO_TOKEN]
 * @property {string} [EDGESQL_TURSO_TIMEOUT_MS]
 */

/**
 * What is wrong with the Worker's database settings, or null: no database at all, or a
 * Turso URL the Worker cannot use.
 * @param {DatabaseEnv} env
 * @returns {string | null}
 */
export function databaseProblem(env) {
  const url = env.EDGESQL_TURSO_URL ?? "";
  if (!url) {
    return env.DB ? null : "the Worker has no database: bind a D1 database as DB, or set EDGESQL_TURSO_URL";
  }
  try {
    pipelineUrl(url);
    return null;
  } catch (e) {
    return `EDGESQL_TURSO_URL is not a database URL (${e instanceof Error ? e.message : e}): ` +
      "give libsql://<db>-<org>.turso.io, as `turso db show --url <db>` prints it";
  }
}

/** Turso clients, one per URL and token: each holds the isolate's bound on calls in flight. */
const tursoClients = new Map();

/**
 * The database this Worker fronts, and its name for messages.
 * @param {DatabaseEnv} env
 * @returns {{db: Database, name: string}}
 */
export function openDatabase(env) {
  const url = env.EDGESQL_TURSO_URL ?? "";
  if (!url) return { db: /** @type {Database} */ (/** @type {unknown} */ (env.DB)), name: "D1" };
  const token = env.EDGESQL_TURSO_TOKEN ?? "";
  const timeout = Number(env.EDGESQL_TURSO_TIMEOUT_MS ?? "");
  const key = `${url}\n${token}\n${timeout}`;
  let db = tursoClients.get(key);
  if (!db) {
    db = new HranaDatabase(url, token, {
      timeoutMs: Number.isFinite(timeout) && timeout > 0 ? timeout : TURSO_TIMEOUT_MS,
      concurrency: TURSO_CONCURRENCY,
    });
    tursoClients.set(key, db);
  }
  return { db, name: "Turso" };
}
