// Bearer tokens: the app's token(s) live in the Worker secret EDGESQL_TOKEN
// (`wrangler secret put EDGESQL_TOKEN`; `.dev.vars` locally), never in code or logs.
//
// EDGESQL_TOKEN is one token, spaces and all, or — when it starts with "[" — a JSON
// array of tokens (to rotate them: add the new one, update the apps, drop the old).
// It used to be split on whitespace, so a passphrase "correct horse battery staple"
// let `Bearer horse` in (issue 12). A token is printable ASCII with no whitespace at
// either end: HTTP strips that whitespace from the header, and browsers refuse or
// re-encode other characters, so such a token could never match; the Worker says so
// (500 not_configured) rather than run with it. serve.py reads EDGESQL_AUTH_TOKEN by
// the same rules (py/edgesql/server/tokens.py), and passes d1-local a JSON array.
// In a request, the token is everything after the one space that follows "Bearer".

/**
 * @typedef {object} AuthEnv
 * @property {string} [EDGESQL_TOKEN] one token, or a JSON array of tokens
 * @property {string} [EDGESQL_ALLOW_ANONYMOUS] "true": no token needed (local development only)
 */

const encoder = new TextEncoder();
const PRINTABLE_ASCII = /^[\x20-\x7e]+$/;

/**
 * Why ``token`` can never arrive in a header, or null when it can.
 * @param {string} token
 */
function tokenProblem(token) {
  if (!token) return "is empty";
  if (token !== token.trim()) {
    return "has whitespace at its start or end, which HTTP strips from the header, so no client could send it";
  }
  if (!PRINTABLE_ASCII.test(token)) {
    return "holds characters other than printable ASCII, which browsers refuse or change in headers";
  }
  return null;
}

/**
 * The accepted tokens ([] when anyone may sync), or why the Worker cannot serve.
 * The problem names a token by its place, never by its value.
 * @param {AuthEnv} env
 * @returns {{tokens: string[]} | {problem: string}}
 */
export function readTokens(env) {
  const value = env.EDGESQL_TOKEN ?? "";
  if (value === "") {
    if (env.EDGESQL_ALLOW_ANONYMOUS === "true") return { tokens: [] };
    return {
      problem:
        "the Worker has no token: set one with `wrangler secret put EDGESQL_TOKEN` " +
        "(or EDGESQL_ALLOW_ANONYMOUS=true for local development)",
    };
  }
  if (!value.startsWith("[")) {
    const problem = tokenProblem(value);
    return problem ? { problem: `EDGESQL_TOKEN ${problem}: set it again without that` } : { tokens: [value] };
  }
  let list;
  try {
    list = JSON.parse(value);
  } catch {
    list = null;
  }
  if (!Array.isArray(list) || !list.every((t) => typeof t === "string")) {
    return {
      problem:
        'EDGESQL_TOKEN starts with "[" but is not a JSON array of strings: write ["token one", "token two"], ' +
        'or one token that does not start with "["',
    };
  }
  if (!list.length) return { problem: "EDGESQL_TOKEN is an empty JSON array, which holds no token: give one" };
  for (const [i, token] of list.entries()) {
    const problem = tokenProblem(token);
    if (problem) return { problem: `token ${i + 1} of EDGESQL_TOKEN ${problem}: set it again without that` };
  }
  return { tokens: list };
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
