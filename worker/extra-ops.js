/**
 * Request ops a page adds to its own DB worker, beyond the app's.
 *
 * The benchmark pages add theirs (bench/worker-ops.js: timers inside the
 * worker, next to the trip from Python); the app adds none, so the
 * production worker carries no benchmark code and the service worker never
 * precaches any. A module that calls addOps() must be imported into the
 * worker before requests come (bench/browser.py does it for its pages). Its
 * ops are answered before routing, on the fast path and by postMessage
 * alike, like any other request.
 */

/**
 * Answers one added request; `router` finds the page's database (Router.ownedDatabase).
 * @typedef {(req: any, router: import('./router.js').Router) => string | Promise<string>} Handler
 */

/** Op prefix (e.g. 'bench.') → its handler. @type {Map<string, Handler>} */
const handlers = new Map();

/**
 * Answer every request whose op starts with `prefix` with `handler`.
 * @param {string} prefix @param {Handler} handler
 */
export function addOps(prefix, handler) {
  if (!prefix.endsWith('.')) throw new Error(`an op prefix ends with a dot: ${prefix}`);
  handlers.set(prefix, handler);
}

/**
 * The handler an added op has, or null (always null in the app).
 * @param {unknown} op @returns {Handler | null}
 */
export function addedOp(op) {
  if (handlers.size === 0 || typeof op !== 'string') return null;
  const dot = op.indexOf('.');
  return dot < 0 ? null : handlers.get(op.slice(0, dot + 1)) || null;
}
