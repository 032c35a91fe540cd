// A libSQL database (sqld, Turso Cloud) over Hrana's HTTP pipeline, behind the same
// interface as D1's binding (executor.js), so the primary's flow runs on it unchanged.
//
// One HTTP request per call (POST /v2/pipeline, ending with "close": no stream is kept,
// so no baton can expire or lose its lock between requests). A batch is atomic the way
// @libsql/client makes it so: BEGIN IMMEDIATE; each statement runs only if the one before
// it succeeded; COMMIT; ROLLBACK if COMMIT did not run. Hrana's own batch is not a
// transaction: without the wrapping, a failed step would leave the steps before it applied.
// A batch that only reads begins with a plain (deferred) BEGIN instead: one snapshot for
// its statements, and no write lock taken from the writers.
//
// Safety against a slow or wedged server (sqld can stop answering writes under contention):
// every call has a timeout, and at most `concurrency` calls from this isolate are in flight
// at once; the others wait in line, within the same timeout. A call that times out may
// still commit later on the server: whole batches only, which the flow replays harmlessly.
//
// Values: Hrana sends integers as decimal strings (exact to 64 bits). They come back as
// numbers when they are safe integers (as D1's binding gives them), else as their decimal
// text; the primary's SQL returns every HLC as text anyway. BLOBs come back as arrays of
// bytes, as from D1.

import { DatabaseError } from "./dberror.js";

/** @typedef {import("./executor.js").Result} Result */
/** @typedef {{type: string, value?: unknown, base64?: string}} HranaValue */

/** The database is unavailable (unreachable, timed out, overloaded, locked): retry later. */
export class Unavailable extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = "Unavailable";
  }
}

/** SQLite codes that mean "the database is busy", not "the statement is wrong". */
const BUSY = /^SQLITE_(BUSY|LOCKED)/;

/**
 * The pipeline URL of a database URL: libsql:// means https://.
 * @param {string} url
 */
export function pipelineUrl(url) {
  const u = new URL(url.replace(/^libsql:\/\//, "https://"));
  if (u.protocol !== "https:" && u.protocol !== "http:") {
    throw new Error(`a libSQL URL is libsql://, https:// or http://, not ${u.protocol}`);
  }
  return `${u.origin}/v2/pipeline`;
}

/**
 * @param {unknown} v
 * @returns {HranaValue}
 */
function encode(v) {
  if (v === null || v === undefined) return { type: "null" };
  if (typeof v === "string") return { type: "text", value: v };
  if (typeof v === "number") {
    return Number.isInteger(v) ? { type: "integer", value: String(v) } : { type: "float", value: v };
  }
  if (typeof v === "bigint") return { type: "integer", value: String(v) };
  if (typeof v === "boolean") return { type: "integer", value: v ? "1" : "0" };
  if (v instanceof ArrayBuffer || ArrayBuffer.isView(v)) {
    const bytes = v instanceof ArrayBuffer ? new Uint8Array(v) : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    let s = "";
    for (const b of bytes) s += String.fromCharCode(b);
    return { type: "blob", base64: btoa(s) };
  }
  throw new TypeError(`cannot bind a ${typeof v} to a Hrana statement`);
}

/**
 * @param {HranaValue} v
 * @returns {unknown}
 */
function decode(v) {
  switch (v.type) {
    case "null":
      return null;
    case "integer": {
      const n = Number(v.value);
      return Number.isSafeInteger(n) ? n : String(v.value);
    }
    case "float":
      return v.value; // (inf and NaN arrive as null)
    case "text":
      return v.value;
    case "blob": {
      const s = atob((v.base64 ?? "").padEnd(Math.ceil((v.base64 ?? "").length / 4) * 4, "="));
      return Array.from(s, (c) => c.charCodeAt(0));
    }
    default:
      throw new Unavailable(`Hrana sent a value of unknown type ${v.type}`);
  }
}

/**
 * Rows as objects keyed by column name, as D1 gives them.
 * @param {{cols: {name: string | null}[], rows: HranaValue[][]}} result
 * @returns {Result}
 */
function toResult(result) {
  const names = result.cols.map((c, i) => c.name ?? String(i));
  return {
    results: result.rows.map((row) => {
      /** @type {Record<string, unknown>} */
      const out = {};
      row.forEach((v, i) => {
        out[names[i]] = decode(v);
      });
      return out;
    }),
  };
}

/**
 * A statement error from Hrana as a DatabaseError (or Unavailable when the database is busy).
 * @param {{message?: string, code?: string}} error
 */
function statementError(error) {
  const code = error.code ?? "SQLITE_UNKNOWN";
  const message = (error.message ?? "").replace(/^SQLite error: /, "");
  if (BUSY.test(code) || /database is locked/.test(message)) {
    return new Unavailable(`the database is busy: ${message} (${code})`);
  }
  return new DatabaseError(code, message);
}

/** A bound statement (D1PreparedStatement's subset). */
class HranaStatement {
  /**
   * @param {HranaDatabase} db
   * @param {string} sql
   * @param {unknown[]} args
   */
  constructor(db, sql, args) {
    this.db = db;
    this.sql = sql;
    this.args = args;
  }

  /** @param {...unknown} values */
  bind(...values) {
    return new HranaStatement(this.db, this.sql, values);
  }

  /** Hrana's form of this statement. */
  stmt() {
    return { sql: this.sql, args: this.args.map(encode) };
  }

  /** @returns {Promise<Result>} */
  all() {
    return this.db.execute(this);
  }

  /** @returns {Promise<Result>} */
  run() {
    return this.db.execute(this);
  }

  /**
   * The first row, or one of its columns; null without rows.
   * @param {string} [column]
   */
  async first(column) {
    const row = (await this.db.execute(this)).results[0];
    if (row === undefined) return null;
    return column === undefined ? row : row[column];
  }
}

/** A bound on calls in flight, with a queue behind it. */
class Gate {
  /** @param {number} size */
  constructor(size) {
    this.free = size;
    /** @type {(() => void)[]} */
    this.waiting = [];
  }

  /**
   * Wait for a place, at most until ``signal`` aborts.
   * @param {AbortSignal} signal
   * @returns {Promise<void>}
   */
  enter(signal) {
    if (this.free > 0) {
      this.free -= 1;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const go = () => {
        signal.removeEventListener("abort", give);
        resolve();
      };
      const give = () => {
        const i = this.waiting.indexOf(go);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(new Unavailable("too many calls to the database in flight; it answers slowly or not at all"));
      };
      signal.addEventListener("abort", give, { once: true });
      this.waiting.push(go);
    });
  }

  leave() {
    const next = this.waiting.shift();
    if (next) next();
    else this.free += 1;
  }
}

export class HranaDatabase {
  /**
   * @param {string} url libsql://, https:// or http:// (the database's own URL)
   * @param {string} token its bearer token ("" for a server without authentication)
   * @param {{timeoutMs: number, concurrency: number}} options
   */
  constructor(url, token, options) {
    this.endpoint = pipelineUrl(url);
    this.token = token;
    this.timeoutMs = options.timeoutMs;
    this.gate = new Gate(options.concurrency);
  }

  /** @param {string} sql */
  prepare(sql) {
    return new HranaStatement(this, sql, []);
  }

  /**
   * Run one statement on its own (autocommit).
   * @param {HranaStatement} statement
   * @returns {Promise<Result>}
   */
  async execute(statement) {
    const [answer] = await this.#pipeline([{ type: "execute", stmt: statement.stmt() }]);
    if (answer.type !== "ok") throw statementError(answer.error ?? {});
    return toResult(answer.response.result);
  }

  /**
   * Run statements as one transaction: all of them, or none (the first failure is thrown).
   * @param {HranaStatement[]} statements
   * @param {"read" | "write"} [mode] "read": the statements only read
   * @returns {Promise<Result[]>}
   */
  async batch(statements, mode = "write") {
    const n = statements.length;
    /** @param {number} step */
    const ok = (step) => ({ type: "ok", step });
    const steps = [
      { stmt: { sql: mode === "read" ? "BEGIN" : "BEGIN IMMEDIATE" } },
      ...statements.map((s, i) => ({ stmt: s.stmt(), condition: ok(i) })),
      { stmt: { sql: "COMMIT" }, condition: ok(n) },
      { stmt: { sql: "ROLLBACK" }, condition: { type: "not", cond: ok(n + 1) } },
    ];
    const [answer] = await this.#pipeline([{ type: "batch", batch: { steps } }]);
    if (answer.type !== "ok") throw statementError(answer.error ?? {});
    const { step_results: results, step_errors: errors } = answer.response.result;
    const failed = errors.findIndex((/** @type {unknown} */ e) => e !== null);
    if (failed >= 0) throw statementError(errors[failed]);
    if (results[n + 1] === null) throw new Unavailable("the database did not commit the batch");
    return results.slice(1, n + 1).map(toResult);
  }

  /**
   * One pipeline request (ended by "close"): the results of ``requests``, in order.
   * @param {object[]} requests
   * @returns {Promise<any[]>}
   */
  async #pipeline(requests) {
    const signal = AbortSignal.timeout(this.timeoutMs);
    await this.gate.enter(signal);
    try {
      /** @type {Record<string, string>} */
      const headers = { "content-type": "application/json" };
      if (this.token) headers.authorization = `Bearer ${this.token}`;
      const body = JSON.stringify({ requests: [...requests, { type: "close" }] });
      let response;
      let text;
      try {
        response = await fetch(this.endpoint, { method: "POST", headers, body, signal });
        text = await response.text();
      } catch (e) {
        const why = signal.aborted ? `no answer within ${this.timeoutMs} ms` : String(e);
        throw new Unavailable(`the database at ${this.endpoint} did not answer: ${why}`);
      }
      if (!response.ok) {
        throw new Unavailable(`the database at ${this.endpoint} answered ${response.status}: ${text.slice(0, 300)}`);
      }
      const results = JSON.parse(text).results;
      if (!Array.isArray(results) || results.length !== requests.length + 1) {
        throw new Unavailable(`the database at ${this.endpoint} sent an answer that is not Hrana's`);
      }
      return results.slice(0, requests.length);
    } finally {
      this.gate.leave();
    }
  }
}
