// Reading a /sync request's body: only JSON, never more than the limit, nothing before the token.
//
// index.js calls these after the route, the origin and the token are checked, so a
// caller without a token never gets a byte of its body read (serve.py's front.py does
// the same, in the same order, for both primaries). A page of another origin can POST
// text/plain or a form without a preflight, but not JSON: anything else is refused
// (415) before the body is touched. A declared Content-Length over the limit is refused
// (413) without reading the body either; a body without one (chunked) is read until
// it passes the limit, and no further.

import { ProtocolError, parseJson } from "./protocol.js";

/**
 * Refuse a request that is not JSON (415).
 * @param {Request} request
 */
export function requireJson(request) {
  const given = request.headers.get("content-type");
  const media = (given ?? "").split(";", 1)[0].trim().toLowerCase();
  if (media === "application/json") return;
  const came = given ? ` (it came as ${JSON.stringify(given.slice(0, 100))})` : "";
  throw new ProtocolError(
    415,
    "unsupported_media_type",
    `a sync request is JSON: send it with 'Content-Type: application/json'${came}`,
  );
}

/**
 * The declared Content-Length, or null when there is none (a chunked body) or it is not a number.
 * @param {Request} request
 * @returns {number | null}
 */
export function declaredLength(request) {
  const text = request.headers.get("content-length");
  return text !== null && /^\d+$/.test(text.trim()) ? Number(text.trim()) : null;
}

/**
 * The request body, or null when it is longer than ``max`` bytes (read no further than that;
 * not at all when its declared length says so).
 * @param {Request} request
 * @param {number} max
 * @returns {Promise<Uint8Array | null>}
 */
export async function readBody(request, max) {
  const declared = declaredLength(request);
  if (declared !== null && declared > max) return null;
  if (!request.body) return new Uint8Array(0);
  const reader = request.body.getReader();
  const parts = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel();
      return null;
    }
    parts.push(value);
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/**
 * Decode and parse a request body as Python's json.loads(bytes) would accept it.
 * @param {Uint8Array} raw
 * @returns {unknown}
 */
export function decodeBody(raw) {
  let text;
  try {
    // A UTF-8 byte order mark is dropped, as Python's json.loads(bytes) drops it. (Python
    // also guesses UTF-16 and UTF-32 from zero bytes; no sync client sends those.)
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(raw);
  } catch (e) {
    throw new ProtocolError(400, "bad_json", `the body is not JSON: it is not UTF-8 (${String(e)})`);
  }
  try {
    return parseJson(text);
  } catch (e) {
    throw new ProtocolError(400, "bad_json", `the body is not JSON: ${e instanceof Error ? e.message : e}`);
  }
}
