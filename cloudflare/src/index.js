// edgesql's primary on Cloudflare: a Worker in front of one D1 database, or of a Turso
// (libSQL) database over HTTP (executor.js chooses; the flow is the same).
//
// It speaks exactly the /sync protocol of the embedded primary (serve.py):
//   POST /sync          push a page of changes, get the next page of others' changes
//   GET  /sync/schema   the schema document (migrations and the client's SQL)
// Errors are {"error": code, "message": ...} with the embedded primary's statuses
// and codes. Apart from authentication and validation it decides nothing: the SQL
// comes from generated/bundle.json, written by `python -m edgesql d1-migrations`.
//
// Environment (wrangler.toml [vars], secrets, or .dev.vars locally):
//   DB                      the D1 binding
//   EDGESQL_TURSO_URL       instead of D1: a Turso/libSQL URL; its token in the secret EDGESQL_TURSO_TOKEN
//   EDGESQL_TOKEN           secret: the bearer token apps must send, or a JSON array of them
//   EDGESQL_ALLOWED_ORIGIN  the app's origin(s) for CORS, e.g. https://app.example.com
//   EDGESQL_ALLOW_ANONYMOUS "true" to sync without a token (local development only)
//   EDGESQL_D1_QUERY_LIMIT  D1 queries per invocation: 1000 (Paid, default) or 50 (Free)

import { authorized, readTokens } from "./auth.js";
import { jwtCaller, jwtConfigured } from "./jwt.js";
import { BUNDLE } from "./bundle.js";
import { allowedOrigins, corsHeaders, originRefusal, preflight } from "./cors.js";
import { decodeBody, readBody, requireJson } from "./http.js";
import { MIGRATION_CHECK_QUERIES, queryLimit } from "./limits.js";
import { databaseProblem, openDatabase } from "./executor.js";
import { D1Primary } from "./primary.js";
import { ProtocolError, parseRequest } from "./protocol.js";

/**
 * @typedef {object} Env
 * @property {D1Database} [DB]
 * @property {string} [EDGESQL_TURSO_URL]
 * @property {string} [EDGESQL_TURSO_TOKEN]
 * @property {string} [EDGESQL_TURSO_TIMEOUT_MS]
 * @property {string} [EDGESQL_TOKEN]
 * @property {string} [EDGESQL_ALLOWED_ORIGIN]
 * @property {string} [EDGESQL_ALLOW_ANONYMOUS]
 * @property {string} [EDGESQL_D1_QUERY_LIMIT]
 * @property {string} [EDGESQL_JWT_SECRET]
 * @property {string} [EDGESQL_JWT_KEY]
 * @property {string} [EDGESQL_JWKS]
 * @property {string} [EDGESQL_JWT_AUDIENCE]
 * @property {string} [EDGESQL_JWT_ISSUER]
 */

const JSON_HEADERS = { "content-type": "application/json", "cache-control": "no-store" };

/** Set once this isolate has seen the database at the bundle's schema version and server setup. */
let migrated = false;

/**
 * @param {number} status
 * @param {string} body
 * @param {Record<string, string>} extra
 */
function reply(status, body, extra) {
  return new Response(body, { status, headers: { ...JSON_HEADERS, ...extra } });
}

/**
 * @param {ProtocolError} e
 * @param {Record<string, string>} extra
 */
function error(e, extra) {
  return reply(e.status, JSON.stringify(e.body()), extra);
}

/**
 * Has D1 been migrated to what this Worker's bundle expects? Throws a 503 saying what to run.
 * @param {import("./executor.js").Database} db
 * @param {string} name the database's name for messages (D1, Turso)
 * @returns {Promise<number>} the queries it made (none once this isolate has seen it)
 */
async function checkMigrated(db, name) {
  if (migrated) return 0;
  const table = await db
    .prepare("SELECT count(*) AS n FROM sqlite_schema WHERE type = 'table' AND name = '_edgesql_primary'")
    .first("n");
  const row = table
    ? /** @type {{schema_version: number, setup: string} | null} */ (
        await db.prepare("SELECT schema_version, setup FROM _edgesql_primary WHERE id = 1").first()
      )
    : null;
  if (row && row.schema_version === BUNDLE.schema_version && row.setup === BUNDLE.setup) {
    migrated = true;
    return MIGRATION_CHECK_QUERIES;
  }
  const state = row ? `at schema version ${row.schema_version} (server setup ${row.setup})` : "not migrated";
  const fix =
    row && row.schema_version > BUNDLE.schema_version
      ? "deploy the Worker generated from the newer schema (python -m edgesql d1-migrations, then wrangler deploy)"
      : name === "D1"
        ? "apply the migrations: wrangler d1 migrations apply <database> --remote"
        : "apply the migrations: node cloudflare/turso-migrate.mjs --url <database URL>";
  throw new ProtocolError(
    503,
    "not_migrated",
    `the ${name} database is ${state}, but this Worker was built for schema version ${BUNDLE.schema_version} ` +
      `(server setup ${BUNDLE.setup}): ${fix}`,
  );
}

/**
 * Who is calling: the user a JWT names (src/jwt.js) when JWTs are set up, else null after
 * the static tokens let the caller in (auth.js). ProtocolError 401 otherwise.
 * @param {Request} request @param {Env} env @param {string[]} tokens
 * @returns {Promise<string | null>}
 */
async function callerUser(request, env, tokens) {
  const authorization = request.headers.get("authorization");
  if (jwtConfigured(env)) return (await jwtCaller(authorization, env)).user;
  if (await authorized(authorization, tokens)) return null;
  throw new ProtocolError(
    401,
    "unauthorized",
    "send the app's token as 'Authorization: Bearer <token>' (connect(auth_token=...))",
  );
}

/**
 * @param {Request} request
 * @param {Env} env
 * @returns {Promise<Response>}
 */
async function handle(request, env) {
  const path = new URL(request.url).pathname;
  const route = path === "/sync" ? "sync" : path === "/sync/schema" ? "schema" : null;
  const origins = allowedOrigins(env);
  const cors = corsHeaders(request, origins);
  if (route === null) {
    const message = `no ${path} here: the sync endpoints are /sync and /sync/schema`;
    return error(new ProtocolError(404, "not_found", message), cors);
  }
  if (request.method === "OPTIONS") return preflight(request, origins);
  const method = route === "sync" ? "POST" : "GET";
  if (request.method !== method && !(method === "GET" && request.method === "HEAD")) {
    return error(new ProtocolError(405, "method_not_allowed", `${path} takes ${method}`), { ...cors, allow: method });
  }
  const foreign = originRefusal(request, origins);
  if (foreign) return error(foreign, cors);
  // Users with JWTs (src/jwt.js), or the app's static tokens.
  const configured = jwtConfigured(env) ? { tokens: [] } : readTokens(env);
  if ("problem" in configured) return error(new ProtocolError(500, "not_configured", configured.problem), cors);
  const unusable = databaseProblem(env);
  if (unusable) return error(new ProtocolError(500, "not_configured", unusable), cors);
  const { db, name } = openDatabase(env);
  try {
    const user = await callerUser(request, env, configured.tokens);
    if (route === "schema") {
      await checkMigrated(db, name);
      return reply(200, BUNDLE.schema_doc, cors);
    }
    const limits = BUNDLE.protocol;
    requireJson(request);
    const raw = await readBody(request, limits.max_request_bytes);
    if (raw === null) {
      throw new ProtocolError(413, "too_large", `a sync request is at most ${limits.max_request_bytes} bytes`);
    }
    const req = parseRequest(decodeBody(raw), limits);
    const used = await checkMigrated(db, name);
    const body = await new D1Primary(db, BUNDLE, queryLimit(env) - used).sync(req, user);
    return reply(200, body, cors);
  } catch (e) {
    if (e instanceof ProtocolError) return error(e, cors);
    // The database failed (overloaded, locked, unreachable, timed out, a bug). Batches are
    // atomic, so whatever was committed is whole batches, which a retry replays harmlessly; the
    // client backs off. Its words (table names, SQL) go to the log (`wrangler tail`), not to the caller.
    console.error("edgesql: /sync failed:", e instanceof Error ? (e.stack ?? e.message) : e);
    const message = `the database (${name}) could not run this request: retry later (the Worker's log has the details)`;
    return error(new ProtocolError(503, "primary_unavailable", message), { ...cors, "retry-after": "1" });
  }
}

export default {
  /**
   * @param {Request} request
   * @param {Env} env
   */
  fetch(request, env) {
    return handle(request, env);
  },
};
