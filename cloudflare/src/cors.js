// CORS for the app's own origin only (EDGESQL_ALLOWED_ORIGIN, e.g. "https://app.example.com";
// several separated by spaces). Other origins get no CORS headers, and their preflight a 403.
//
// CORS only keeps a page from reading the answer. A page of another origin can still
// *send* a "simple" request, with no preflight (a POST of text/plain or a form), so any
// request that carries an Origin not in EDGESQL_ALLOWED_ORIGIN is refused with 403
// before anything else (issue 12) — even one equal to the Worker's own origin: locally,
// workerd answers any Host, so a page on a name rebound to its port would be "same
// origin" (a Worker routed on the app's own host lists that origin like any other).
// Requests without an Origin (CPython replicas, serve.py's d1-local proxy, curl) are
// not pages of another origin.

import { ProtocolError } from "./protocol.js";

/**
 * @param {{EDGESQL_ALLOWED_ORIGIN?: string}} env
 * @returns {Set<string>}
 */
export function allowedOrigins(env) {
  return new Set((env.EDGESQL_ALLOWED_ORIGIN ?? "").split(/[\s,]+/).filter(Boolean));
}

/**
 * Headers that let the request's origin read the answer, or {} when it may not.
 * @param {Request} request
 * @param {Set<string>} origins
 * @returns {Record<string, string>}
 */
export function corsHeaders(request, origins) {
  const origin = request.headers.get("origin");
  if (!origin || !origins.has(origin)) return { vary: "Origin" };
  return {
    "access-control-allow-origin": origin,
    "access-control-expose-headers": "retry-after",
    vary: "Origin",
  };
}

/**
 * Why a request from a page of another origin is refused (403), or null when it may go on.
 * @param {Request} request
 * @param {Set<string>} origins
 * @returns {ProtocolError | null}
 */
export function originRefusal(request, origins) {
  const origin = request.headers.get("origin");
  if (origin === null || origins.has(origin)) return null;
  return new ProtocolError(
    403,
    "forbidden_origin",
    `pages of ${JSON.stringify(origin.slice(0, 200))} may not call this Worker: add the app's origin to ` +
      "EDGESQL_ALLOWED_ORIGIN",
  );
}

/**
 * The answer to a preflight (OPTIONS) request.
 * @param {Request} request
 * @param {Set<string>} origins
 * @returns {Response}
 */
export function preflight(request, origins) {
  const origin = request.headers.get("origin");
  if (!origin || !origins.has(origin)) {
    const message = origin
      ? `origin ${origin} may not call this Worker: add it to EDGESQL_ALLOWED_ORIGIN`
      : "a preflight request needs an Origin header";
    return Response.json({ error: "forbidden_origin", message }, { status: 403, headers: { vary: "Origin" } });
  }
  return new Response(null, {
    status: 204,
    headers: {
      "access-control-allow-origin": origin,
      "access-control-allow-methods": "GET, POST",
      "access-control-allow-headers": "authorization, content-type",
      "access-control-max-age": "86400",
      vary: "Origin",
    },
  });
}
