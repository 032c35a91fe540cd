// Users: who is calling, from a signed JWT (the `sub`), checked with `jose` on WebCrypto.
//
// A schema with access rules serves each user their own rows, so /sync must know the user.
// The Worker checks the same tokens serve.py does (py/edgesql/server/identity.py):
//
//   EDGESQL_JWT_SECRET   HS256 tokens signed with this secret (`wrangler secret put`);
//   EDGESQL_JWT_KEY      an EdDSA, ES256 or RS256 public key (PEM, SPKI);
//   EDGESQL_JWKS         the identity provider's JWKS: its https:// URL (fetched and cached
//                        by jose), or the document itself (JSON);
//   EDGESQL_JWT_AUDIENCE / EDGESQL_JWT_ISSUER   the `aud` / `iss` tokens must carry.
//
// `exp` and `sub` are required, with 60 s of leeway for clocks. An expired token gets
// 401 token_expired, any other refused one 401 bad_token: a replica with a token provider
// (connect(auth=...)) asks it again on both. With none of these set, the static tokens of
// auth.js stay in charge (one user, every device alike).

import { createLocalJWKSet, createRemoteJWKSet, errors, importSPKI, jwtVerify } from "jose";
import { ProtocolError } from "./protocol.js";

/**
 * @typedef {object} JwtEnv
 * @property {string} [EDGESQL_JWT_SECRET]
 * @property {string} [EDGESQL_JWT_KEY]
 * @property {string} [EDGESQL_JWKS]
 * @property {string} [EDGESQL_JWT_AUDIENCE]
 * @property {string} [EDGESQL_JWT_ISSUER]
 */

/** Clocks of the token's issuer and of the Worker may differ by this much (identity.JWT_LEEWAY_S). */
const LEEWAY_S = 60;
/** Never "none", never HS256 for a public key (the key decides the algorithm). */
const PUBLIC_ALGORITHMS = ["EdDSA", "ES256", "RS256"];

/** @type {Map<string, {key: any, algorithms: string[]}>} keys made once per isolate, by their setting */
const keys = new Map();

/** Are users signed in with JWTs here (any JWT setting present)? @param {JwtEnv} env */
export function jwtConfigured(env) {
  return Boolean(env.EDGESQL_JWT_SECRET || env.EDGESQL_JWT_KEY || env.EDGESQL_JWKS);
}

/**
 * The key (or JWKS function) and algorithms the settings describe; made once per isolate.
 * @param {JwtEnv} env
 */
async function verifier(env) {
  const setting = env.EDGESQL_JWT_SECRET
    ? `s:${env.EDGESQL_JWT_SECRET}`
    : env.EDGESQL_JWT_KEY
      ? `k:${env.EDGESQL_JWT_KEY}`
      : `j:${env.EDGESQL_JWKS}`;
  let v = keys.get(setting);
  if (v) return v;
  if (env.EDGESQL_JWT_SECRET) {
    v = { key: new TextEncoder().encode(env.EDGESQL_JWT_SECRET), algorithms: ["HS256"] };
  } else if (env.EDGESQL_JWT_KEY) {
    v = { key: await importPublic(env.EDGESQL_JWT_KEY), algorithms: PUBLIC_ALGORITHMS };
  } else {
    const jwks = /** @type {string} */ (env.EDGESQL_JWKS).trim();
    const key = jwks.startsWith("{") ? createLocalJWKSet(JSON.parse(jwks)) : createRemoteJWKSet(new URL(jwks));
    v = { key, algorithms: PUBLIC_ALGORITHMS };
  }
  keys.set(setting, v);
  return v;
}

/**
 * A PEM public key, for whichever of the public algorithms it was made for.
 * @param {string} pem
 */
async function importPublic(pem) {
  for (const alg of PUBLIC_ALGORITHMS) {
    try {
      return await importSPKI(pem, alg);
    } catch {
      // not a key of this algorithm: the next
    }
  }
  throw new ProtocolError(
    500,
    "not_configured",
    "EDGESQL_JWT_KEY is not an EdDSA (Ed25519), ES256 (P-256) or RS256 public key in PEM: set it again",
  );
}

/**
 * Who the bearer token names: `{id, user}`; ProtocolError 401 when it is not a token the
 * settings accept.
 * @param {string | null} authorization the request's Authorization header
 * @param {JwtEnv} env
 * @returns {Promise<{id: string, user: string}>}
 */
export async function jwtCaller(authorization, env) {
  const m = /^Bearer (.+)$/.exec(authorization ?? "");
  if (!m) {
    throw new ProtocolError(401, "unauthorized", "send the user's token as 'Authorization: Bearer <JWT>' (connect(auth=...))");
  }
  const { key, algorithms } = await verifier(env);
  let payload;
  try {
    ({ payload } = await jwtVerify(m[1], key, {
      algorithms,
      clockTolerance: LEEWAY_S,
      requiredClaims: ["exp", "sub"],
      ...(env.EDGESQL_JWT_AUDIENCE ? { audience: env.EDGESQL_JWT_AUDIENCE } : {}),
      ...(env.EDGESQL_JWT_ISSUER ? { issuer: env.EDGESQL_JWT_ISSUER } : {}),
    }));
  } catch (e) {
    if (e instanceof errors.JWTExpired) {
      throw new ProtocolError(401, "token_expired", "the token expired: get a new one (connect(auth=...) asks for it itself)");
    }
    if (e instanceof errors.JOSEError) {
      throw new ProtocolError(401, "bad_token", `the token was refused (${e.code}): sign in again`);
    }
    throw e; // the JWKS could not be fetched, or a bug: the caller's 503
  }
  if (typeof payload.sub !== "string" || !payload.sub) {
    throw new ProtocolError(401, "bad_token", "the token names no user (`sub`): issue it with one");
  }
  return { id: `user:${payload.sub}`, user: payload.sub };
}
