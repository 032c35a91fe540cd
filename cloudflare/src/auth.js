// Bearer tokens: the app's token(s) live in the Worker secret EDGESQL_TOKEN
// (`wrangler secret put EDGESQL_TOKEN`; `.dev.vars` locally), never in code or logs.

/**
 * @typedef {object} AuthEnv
 * @property {string} [EDGESQL_TOKEN] one token, or several separated by spaces (to rotate them)
 * @property {string} [EDGESQL_ALLOW_ANONYMOUS] "true": no token needed (local development only)
 */

const encoder = new TextEncoder();

/**
 * The accepted tokens; [] when anyone may sync; null when the Worker is not configured.
 * @param {AuthEnv} env
 * @returns {string[] | null}
 */
export function tokens(env) {
  const list = (env.EDGESQL_TOKEN ?? "").split(/\s+/).filter(Boolean);
  if (list.length) return list;
  return env.EDGESQL_ALLOW_ANONYMOUS === "true" ? [] : null;
}

/**
 * Does the Authorization header carry one of the tokens (or are none required)?
 * Compared in constant time: both sides are hashed to 32 bytes and compared with
 * timingSafeEqual, against every token, so timing tells nothing about which matched.
 * @param {string | null} authorization
 * @param {string[]} accepted
 */
export async function authorized(authorization, accepted) {
  if (!accepted.length) return true;
  const header = authorization ?? "";
  const space = header.indexOf(" ");
  const scheme = space < 0 ? header : header.slice(0, space);
  const given = space < 0 ? "" : header.slice(space + 1);
  if (scheme.toLowerCase() !== "bearer" || !given) return false;
  const digest = async (/** @type {string} */ s) => crypto.subtle.digest("SHA-256", encoder.encode(s));
  const mine = await digest(given);
  let matched = false;
  for (const token of accepted) {
    matched = crypto.subtle.timingSafeEqual(mine, await digest(token)) || matched;
  }
  return matched;
}
