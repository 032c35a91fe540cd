// Cloudflare D1's limits, each with the reason it matters here.
// Source: https://developers.cloudflare.com/d1/platform/limits/ (checked on workerd's local D1).

/** Bound parameters per statement. A page of changes is therefore ONE JSON parameter,
 *  expanded with json_each in SQL, never one parameter per value. */
export const D1_MAX_PARAMS = 100;

/** Bytes of SQL text per statement. The generator (python -m edgesql d1-migrations)
 *  refuses any statement over it, so nothing here builds SQL. */
export const D1_MAX_SQL_BYTES = 100_000;

/** Bytes per string, BLOB or row. A pushed page is bound as one string, so a page
 *  whose JSON is longer is bound in chunks under this size, all in one atomic batch. */
export const D1_MAX_VALUE_BYTES = 2_000_000;

/** D1 queries (subrequests) one Worker invocation may make: 1,000 on Workers Paid,
 *  50 on the Free plan. Set EDGESQL_D1_QUERY_LIMIT=50 on Free. Each db.batch() call
 *  counts as one here. */
export const D1_QUERIES_PER_INVOCATION = 1_000;

/** Queries a push keeps back for what must follow it: the pull batch. */
export const QUERIES_KEPT_FOR_PULL = 1;

/** Queries the first request of an isolate spends checking that D1 is migrated. */
export const MIGRATION_CHECK_QUERIES = 2;

/** The fewest queries with which a request still settles at least one change: the migration
 *  check, CHECK, the page's batch, 13 halvings down to one failing change of 5,000, the pull. */
export const MIN_QUERIES = MIGRATION_CHECK_QUERIES + 16;

/** The queries this invocation may make, from the environment or the Paid plan's default.
 * @param {{EDGESQL_D1_QUERY_LIMIT?: string}} env
 */
export function queryLimit(env) {
  const n = Number(env.EDGESQL_D1_QUERY_LIMIT ?? "");
  return Number.isInteger(n) && n > 0 ? Math.max(n, MIN_QUERIES) : D1_QUERIES_PER_INVOCATION;
}

/** Milliseconds one call to Turso (or sqld) may take, queueing included (EDGESQL_TURSO_TIMEOUT_MS).
 *  A server that stops answering (sqld can wedge under contention) becomes 503s after this
 *  long, never a request that hangs; a whole push page is one call of ~0.1–0.5 s. */
export const TURSO_TIMEOUT_MS = 10_000;

/** Calls to Turso one isolate keeps in flight at once; the others wait in line. sqld runs one
 *  writer at a time, so more only lengthens its lock queue (and its `database is locked`). */
export const TURSO_CONCURRENCY = 8;
