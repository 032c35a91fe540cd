// The sync protocol's transport checks: a faithful port of py/edgesql/sync/protocol.py.
//
// Every primary runs these before any SQL; the rest of validation is the shared
// SQL (serversql.CHECK, in the bundle). The numbers come from the bundle, which
// the generator copies from protocol.py, so both primaries refuse the same
// requests with the same status and code.
//
// One JavaScript detail: JSON.parse turns `1.0` into 1 and 2^60 into an inexact
// double, where Python keeps a float and an exact int. The reviver below keeps
// every number that is not a safe integer as its source text (JSON.rawJSON), so
// the type checks refuse what Python refuses, and the page bound to D1 carries
// the digits the client sent.

/** @typedef {import("./bundle.js").Limits} Limits */

/**
 * A request the primary refuses as a whole: status, code and message for the client.
 */
export class ProtocolError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   */
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }

  /** @returns {{error: string, message: string}} the JSON error body */
  body() {
    return { error: this.code, message: this.message };
  }
}

/**
 * A request that passed the transport checks.
 * @typedef {object} SyncRequest
 * @property {string} replica
 * @property {string} key the replica's key (the primary binds the id to its digest)
 * @property {number} schema
 * @property {number} cursor
 * @property {number} high the highest seq this replica has used
 * @property {{at: number | null, tbl: string, pk: string, bucket: string} | null} snapshot where a snapshot stands
 * @property {unknown[][]} changes the changes small enough to store (each [seq, table, key, hlc, cells, txend])
 * @property {number} limit
 * @property {{seq: number, code: string, reason: string}[]} tooLarge rejections of the others
 */

const encoder = new TextEncoder();

/**
 * Does ``text`` hold a number literal (outside strings) that is not a plain safe integer?
 * A scan is ~20 times cheaper than a reviver, which a request almost never needs.
 * @param {string} text
 */
function hasInexactNumber(text) {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 34 /* " */) {
      for (i = text.indexOf('"', i + 1); i > 0; i = text.indexOf('"', i + 1)) {
        let slashes = 0;
        while (text.charCodeAt(i - 1 - slashes) === 92 /* \ */) slashes++;
        if (slashes % 2 === 0) break;
      }
      if (i < 0) return false; // an unterminated string: JSON.parse will refuse it
    } else if (c === 45 /* - */ || (c >= 48 && c <= 57)) {
      let j = i + 1;
      while (j < text.length && /[0-9.eE+-]/.test(text[j])) j++;
      const literal = text.slice(i, j);
      if (/[.eE]/.test(literal) || !Number.isSafeInteger(Number(literal))) return true;
      i = j - 1;
    }
  }
  return false;
}

/**
 * JSON.parse, keeping numbers that are not safe integers as their source text.
 * @param {string} text
 * @returns {unknown}
 */
export function parseJson(text) {
  if (!hasInexactNumber(text)) return JSON.parse(text);
  return JSON.parse(text, /** @type {any} */ (keepSource));
}

/**
 * A JSON.parse reviver (with the source text access of ES2025): a number that is not a
 * safe integer stays its source text, which JSON.stringify writes back unchanged.
 * @param {string} _key
 * @param {unknown} value
 * @param {{source: string}} context
 */
function keepSource(_key, value, context) {
  return typeof value === "number" && (!Number.isSafeInteger(value) || /[.eE]/.test(context.source))
    ? JSON.rawJSON(context.source)
    : value;
}

/**
 * Python's ``type(v) is int``: a JSON integer (after parseJson, a safe integer number).
 * @param {unknown} v
 * @returns {v is number}
 */
export function isInt(v) {
  return typeof v === "number" && Number.isInteger(v);
}

/**
 * Python's repr-ish rendering of a value for messages (JSON text, cut at 40 characters).
 * @param {unknown} v
 */
function show(v) {
  const text = v === undefined ? "None" : JSON.stringify(v) ?? String(v);
  return text.length > 40 ? text.slice(0, 40) : text;
}

/**
 * @param {Record<string, unknown>} d
 * @param {string} key
 * @param {number} lo
 * @param {number} hi
 */
function int(d, key, lo, hi) {
  const v = d[key];
  if (!isInt(v) || v < lo || v > hi) {
    throw new ProtocolError(400, "bad_request", `'${key}' must be an integer from ${lo} to ${hi}, got ${show(v)}`);
  }
  return v;
}

/**
 * Check a decoded request body; throw ProtocolError saying what is wrong.
 * @param {unknown} body
 * @param {Limits} limits
 * @returns {SyncRequest}
 */
export function parseRequest(body, limits) {
  // (A body that is one big number, kept as its source text by parseJson, is no object either.)
  if (typeof body !== "object" || body === null || Array.isArray(body) || isRawJson(body)) {
    throw new ProtocolError(400, "bad_request", "the body must be a JSON object");
  }
  const d = /** @type {Record<string, unknown>} */ (body);
  if (!isInt(d.v) || d.v !== limits.version) {
    throw new ProtocolError(
      400,
      "unsupported_version",
      `this primary speaks protocol v${limits.version}, not ${show(d.v)}: update edgesql`,
    );
  }
  const replica = d.replica;
  if (typeof replica !== "string" || !new RegExp(limits.replica_pattern).test(replica)) {
    throw new ProtocolError(400, "bad_request", "'replica' must be 8-64 characters of [A-Za-z0-9_-]");
  }
  const schema = int(d, "schema", 0, limits.max_schema);
  const cursor = int(d, "cursor", 0, limits.max_cursor);
  const limit = "limit" in d ? d.limit : limits.default_pull_limit;
  if (!isInt(limit) || limit < 0 || limit > limits.max_pull_limit) {
    throw new ProtocolError(400, "bad_request", `'limit' must be an integer from 0 to ${limits.max_pull_limit}`);
  }
  const changes = "changes" in d ? d.changes : [];
  if (!Array.isArray(changes) || changes.some((c) => !Array.isArray(c))) {
    throw new ProtocolError(400, "bad_request", "'changes' must be an array of arrays");
  }
  if (changes.length > limits.max_page_changes) {
    throw new ProtocolError(
      413,
      "page_too_large",
      `at most ${limits.max_page_changes} changes per page, got ${changes.length}`,
    );
  }
  const key = d.key;
  if (typeof key !== "string" || !new RegExp(limits.key_pattern).test(key)) {
    throw new ProtocolError(
      400,
      "bad_request",
      "'key' must be the replica's key, 16-128 characters of [A-Za-z0-9_-]",
    );
  }
  const high = int(d, "high", 0, limits.max_cursor);
  const snapshot = snapshotOf(d.snapshot, limits);
  const tooLarge = [];
  const kept = [];
  const seen = new Set();
  for (let i = 0; i < changes.length; i++) {
    const c = changes[i];
    const seq = c[0];
    if (!isInt(seq) || seq < 1 || seq > limits.max_cursor) {
      throw new ProtocolError(
        400,
        "bad_request",
        `changes[${i}][0] must be the change's seq, an integer from 1 to ${limits.max_cursor}`,
      );
    }
    // Twice in one page, a seq would name two changes: the second would be dropped
    // as a replay of the first, and acknowledged. No replica sends that.
    if (seen.has(seq)) {
      throw new ProtocolError(
        400,
        "bad_request",
        `changes[${i}][0]: seq ${seq} appears twice in the page; each change has its own`,
      );
    }
    seen.add(seq);
    const problem = changeProblem(c);
    if (problem !== null) {
      tooLarge.push({ seq, code: "malformed", reason: problem });
      continue;
    }
    const cells = c.length > 4 ? c[4] : null;
    const json = cells === null ? "" : JSON.stringify(cells);
    // JSON can carry a lone surrogate (\ud800); no SQLite TEXT can hold one.
    // (JSON.stringify escapes lone surrogates, so look at the values themselves.)
    if (!wellFormed(c.slice(0, 4)) || !wellFormed(cells)) {
      tooLarge.push({
        seq,
        code: "malformed",
        reason: "a string in the change is not valid Unicode (it holds a lone surrogate)",
      });
      continue;
    }
    // UTF-8 takes at most 3 bytes per UTF-16 unit: most changes need no encoding to be measured.
    const size = json.length * 3 <= limits.max_cells_bytes ? json.length : encoder.encode(json).length;
    if (size > limits.max_cells_bytes) {
      tooLarge.push({
        seq,
        code: "too_large",
        reason:
          `the change is ${size} bytes; a primary stores at most ${limits.max_cells_bytes} ` +
          "per change (D1 refuses values over 2 MB): store large files elsewhere and keep a reference",
      });
    } else {
      kept.push(c);
    }
  }
  return { replica, key, schema, cursor, high, snapshot, changes: kept, limit, tooLarge };
}

/**
 * The request's snapshot position (a port of _snapshot in protocol.py).
 * @param {unknown} v
 * @param {Limits} limits
 * @returns {{at: number | null, tbl: string, pk: string, bucket: string} | null}
 */
function snapshotOf(v, limits) {
  if (v === undefined || v === null) return null;
  const s = /** @type {Record<string, unknown>} */ (isContainer(v) && !Array.isArray(v) ? v : {});
  const at = s.at;
  const { tbl, pk } = s;
  const bucket = s.bucket === undefined ? "" : s.bucket;
  const max = limits.max_position_chars;
  if (
    !(isContainer(v) && !Array.isArray(v)) ||
    !(at === null || at === undefined || (isInt(at) && at >= 0 && at <= limits.max_cursor)) ||
    typeof tbl !== "string" ||
    typeof pk !== "string" ||
    typeof bucket !== "string" ||
    tbl.length > max ||
    pk.length > max ||
    bucket.length > max ||
    !/^[\x00-\x7f]*$/.test(pk) ||
    !printable(tbl) ||
    !printable(bucket)
  ) {
    throw new ProtocolError(
      400,
      "bad_request",
      `'snapshot' must be null or {"at": seq or null, "tbl": text, "pk": text} ` +
        `(at most ${max} characters each), as the primary's last answer gave it`,
    );
  }
  return { at: at ?? null, tbl, pk, bucket };
}

/**
 * Python's str.isprintable() for the characters a table name can hold: no control
 * characters, no lone surrogates, no separators other than the space.
 * @param {string} s
 */
function printable(s) {
  return s.isWellFormed() && !/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Co}\p{Cn}]|[\p{Zs}--[ ]]/v.test(s);
}

/**
 * The digest a primary keeps of a replica's key: SHA-256 of its UTF-8, in hex (as
 * SyncRequest.key_hash in protocol.py).
 * @param {string} key
 * @returns {Promise<string>}
 */
export async function keyHash(key) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(key)));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Refuse a request from another schema version (a port of check_schema in protocol.py).
 * @param {number} replicaVersion
 * @param {number} primaryVersion
 */
export function checkSchema(replicaVersion, primaryVersion) {
  if (replicaVersion > primaryVersion) {
    throw new ProtocolError(
      409,
      "schema_ahead",
      `this replica is at schema version ${replicaVersion}, the primary at ${primaryVersion}: ` +
        "the primary was rolled back; restore its migrations",
    );
  }
  if (replicaVersion < primaryVersion) {
    throw new ProtocolError(
      409,
      "schema_behind",
      `this replica is at schema version ${replicaVersion}, the primary at ${primaryVersion}: ` +
        "fetch the schema (GET <sync_url>/schema), migrate, and sync again (edgesql replicas do this themselves)",
    );
  }
}

/**
 * Refuse a replica id another device owns, and a copy behind itself (check_replica in protocol.py).
 * @param {SyncRequest} req
 * @param {string} hash the digest of req.key
 * @param {string | null} keyHash the digest bound to the id, if any
 * @param {number} high the highest seq the primary holds from the id
 */
export function checkReplica(req, hash, keyHash, high) {
  if (keyHash !== null && keyHash !== hash) {
    throw new ProtocolError(
      403,
      "replica_forbidden",
      "this replica id belongs to another device (its key does not match): take a new replica id " +
        "(edgesql replicas do this themselves)",
    );
  }
  if (high > req.high) {
    throw new ProtocolError(
      409,
      "replica_conflict",
      `the primary holds changes up to seq ${high} from this replica id, and this copy of the ` +
        `database knows of seqs up to ${req.high} only: it is a restored backup or a copy. ` +
        "Take a new replica id and sync again (edgesql replicas do this themselves)",
    );
  }
}

/**
 * The answer's snapshot field (snapshot_json in protocol.py, same key order).
 * @param {number} at @param {string} tbl @param {string} pk @param {boolean} done
 * @param {string} [bucket] @param {boolean} [full]
 */
export function snapshotJson(at, tbl, pk, done, bucket = "", full = true) {
  return JSON.stringify({ at, tbl, pk, done, bucket: bucket || "", full });
}

const NESTED = "the change nests arrays or objects where edgesql's encoding has none";
const NOT_UTF8 = "a TEXT value or key part given as hex is not valid UTF-8";
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * False when ``h`` is hex whose bytes are not UTF-8 (text that is not hex is left to SQL),
 * like Python's bytes.fromhex(h).decode("utf-8").
 * @param {string} h
 */
function utf8Hex(h) {
  const hex = h.replace(/\s+/g, "");
  if (hex.length % 2 || /[^0-9A-Fa-f]/.test(hex)) return true;
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  try {
    strictUtf8.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/**
 * @param {unknown} v
 * @returns {v is object}
 */
const isContainer = (v) => typeof v === "object" && v !== null && !isRawJson(v);

/** A number kept as its source text by parseJson (JSON.rawJSON) is a scalar. @param {object} v */
const isRawJson = (v) => typeof JSON.isRawJSON === "function" && JSON.isRawJSON(v);

/**
 * What the transport refuses in one change before SQL sees it, else null: a port of
 * change_problem in py/edgesql/sync/protocol.py (containers where the encoding has none;
 * TEXT given as hex that is not UTF-8).
 * @param {unknown[]} c
 * @returns {string | null}
 */
export function changeProblem(c) {
  for (let i = 0; i < c.length; i++) {
    const x = c[i];
    if (!isContainer(x)) continue;
    if (i !== 4 || Array.isArray(x)) return NESTED;
    for (const v of Object.values(x)) {
      if (!isContainer(v)) continue;
      if (!Array.isArray(v)) return NESTED;
      if (v.some(isContainer)) return NESTED;
      if (v.length === 2 && v[0] === "T" && typeof v[1] === "string" && !utf8Hex(v[1])) return NOT_UTF8;
    }
  }
  const pk = c.length > 2 ? c[2] : null;
  if (typeof pk === "string" && pk.includes('"t')) {
    let parts;
    try {
      parts = JSON.parse(pk);
    } catch {
      return null; // not a key at all: CHECK refuses it as malformed
    }
    if (Array.isArray(parts)) {
      for (const part of parts) {
        if (typeof part === "string" && part[0] === "t" && !utf8Hex(part.slice(1))) return NOT_UTF8;
      }
    }
  }
  return null;
}

/**
 * Are all strings (keys included) in a decoded JSON value well-formed Unicode?
 * @param {unknown} v
 * @returns {boolean}
 */
function wellFormed(v) {
  if (typeof v === "string") return v.isWellFormed();
  if (Array.isArray(v)) return v.every(wellFormed);
  if (v !== null && typeof v === "object") {
    return Object.entries(v).every(([k, x]) => k.isWellFormed() && wellFormed(x));
  }
  return true;
}

