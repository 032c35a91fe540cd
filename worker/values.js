/**
 * Values between JavaScript and SQLite: a request's parameters bound to a
 * statement, and a column read back as JSON text (answers to the page) or as
 * a JavaScript value (the worker's own queries).
 *
 * Types must survive the trip exactly: a REAL that holds an integral value
 * stays a REAL (codec.js's Real), an INTEGER beyond 2^53 keeps all 64 bits
 * (BigInt, or its digits in the JSON text), bytes stay bytes. A value SQLite
 * cannot store is refused with an error that names the parameter.
 */

import { Real, realToJson, toBase64 } from './codec.js';
import { EdgeError, SQLITE_MISMATCH, SQLITE_MISUSE, SQLITE_TOOBIG } from './errors.js';

const SQLITE_INTEGER = 1;
const SQLITE_FLOAT = 2;
const SQLITE_TEXT = 3;
const SQLITE_BLOB = 4;
const TWO53 = 2 ** 53;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

const decoder = new TextDecoder();

/**
 * What binding and reading need of a connection (statements.js's Statements).
 * @typedef {{capi: any, wasm: any, error: (rc: number, prefix?: string) => EdgeError}} Conn
 */

/**
 * Bind a request's parameters: a list for `?` placeholders, an object for named ones.
 * @param {Conn} conn @param {number} pStmt @param {any} params
 */
export function bindParams(conn, pStmt, params) {
  const { capi } = conn;
  const count = capi.sqlite3_bind_parameter_count(pStmt);
  if (Array.isArray(params)) {
    if (params.length !== count) {
      throw new EdgeError(
        `Incorrect number of bindings supplied. The current statement uses ${count}, and there are ${params.length} supplied.`,
        SQLITE_MISUSE, 'ProgrammingError');
    }
    for (let i = 0; i < count; i++) bindValue(conn, pStmt, i + 1, params[i], i);
    return;
  }
  if (params === null || typeof params !== 'object') {
    throw new EdgeError('params must be a list or a dict', SQLITE_MISUSE, 'ProgrammingError');
  }
  for (let i = 1; i <= count; i++) {
    const name = capi.sqlite3_bind_parameter_name(pStmt, i);
    if (!name) {
      throw new EdgeError(
        `parameter ${i} is positional (?) but the parameters were given as a dict; pass a sequence`,
        SQLITE_MISUSE, 'ProgrammingError');
    }
    const key = name.slice(1);
    if (!Object.prototype.hasOwnProperty.call(params, key)) {
      throw new EdgeError(`You did not supply a value for binding parameter ${name}.`,
        SQLITE_MISUSE, 'ProgrammingError');
    }
    bindValue(conn, pStmt, i, params[key], key);
  }
}

/** @param {Conn} conn @param {number} pStmt @param {number} i @param {any} v @param {number|string} key */
function bindValue(conn, pStmt, i, v, key) {
  const { capi, wasm } = conn;
  let rc;
  const where = typeof key === 'number' ? `parameter ${key + 1}` : `parameter :${key}`;
  if (v === null || v === undefined) rc = capi.sqlite3_bind_null(pStmt, i);
  else if (typeof v === 'number') {
    if (Number.isInteger(v)) {
      rc = (v >= -0x80000000 && v <= 0x7fffffff)
        ? capi.sqlite3_bind_int(pStmt, i, v)
        : capi.sqlite3_bind_int64(pStmt, i, BigInt(v));
    } else rc = capi.sqlite3_bind_double(pStmt, i, v);
  } else if (typeof v === 'string') {
    if (!v.isWellFormed()) {
      throw new EdgeError(
        `${where} is a str that is not valid Unicode (it holds a lone surrogate); SQLite TEXT is UTF-8: fix the string or bind it as bytes`,
        SQLITE_MISMATCH, 'ProgrammingError');
    }
    // Copy into wasm memory ourselves: sqlite-wasm 3.54.1's sqlite3_bind_text()
    // throws "pMem is not defined" when handed a JS string.
    const [p, n] = wasm.allocCString(v, true);
    rc = capi.sqlite3_bind_text(pStmt, i, p, n, capi.SQLITE_WASM_DEALLOC);
  } else if (typeof v === 'bigint') {
    if (v < INT64_MIN || v > INT64_MAX) {
      throw new EdgeError(
        `${where} is ${v}, outside SQLite's 64-bit INTEGER range [-2**63, 2**63-1]; store it as TEXT or split it`,
        SQLITE_TOOBIG, 'DataError');
    }
    rc = capi.sqlite3_bind_int64(pStmt, i, v);
  } else if (v instanceof Real) rc = capi.sqlite3_bind_double(pStmt, i, v.value);
  else if (typeof v === 'boolean') rc = capi.sqlite3_bind_int(pStmt, i, v ? 1 : 0);
  else if (v instanceof Uint8Array) {
    // An empty blob bound as a null pointer would become NULL, not X''.
    rc = v.length ? capi.sqlite3_bind_blob(pStmt, i, wasm.allocFromTypedArray(v), v.length, capi.SQLITE_WASM_DEALLOC)
      : capi.sqlite3_bind_zeroblob(pStmt, i, 0);
  } else {
    throw new EdgeError(`${where} has a type SQLite cannot store`, SQLITE_MISMATCH, 'ProgrammingError');
  }
  if (rc) throw conn.error(rc, `${where}: `);
}

/**
 * One column of the current row, as JSON text Python reads back exactly.
 * @param {Conn} conn @param {number} pStmt @param {number} i @returns {string}
 */
export function columnJson(conn, pStmt, i) {
  const { capi, wasm } = conn;
  switch (capi.sqlite3_column_type(pStmt, i)) {
    case SQLITE_INTEGER: {
      const d = capi.sqlite3_column_double(pStmt, i);
      // Below 2^53 the double is the integer exactly; above, read all 64 bits.
      return (d < TWO53 && d > -TWO53) ? String(d) : String(capi.sqlite3_column_int64(pStmt, i));
    }
    case SQLITE_FLOAT: return realToJson(capi.sqlite3_column_double(pStmt, i));
    case SQLITE_TEXT: {
      const p = wasm.exports.sqlite3_column_text(pStmt, i);
      const n = capi.sqlite3_column_bytes(pStmt, i);
      return JSON.stringify(n ? decoder.decode(wasm.heap8u().subarray(Number(p), Number(p) + n)) : '');
    }
    case SQLITE_BLOB: {
      const p = capi.sqlite3_column_blob(pStmt, i);
      const n = capi.sqlite3_column_bytes(pStmt, i);
      return n ? `{"$b":"${toBase64(wasm.heap8u().subarray(Number(p), Number(p) + n))}"}` : '{"$b":""}';
    }
    default: return 'null';
  }
}

/**
 * One column of the current row as a JavaScript value: integers beyond 2^53
 * as BigInt, BLOBs as a Uint8Array copy.
 * @param {Conn} conn @param {number} pStmt @param {number} i @returns {any}
 */
export function columnValue(conn, pStmt, i) {
  const { capi, wasm } = conn;
  switch (capi.sqlite3_column_type(pStmt, i)) {
    case SQLITE_INTEGER: {
      const d = capi.sqlite3_column_double(pStmt, i);
      return (d < TWO53 && d > -TWO53) ? d : capi.sqlite3_column_int64(pStmt, i);
    }
    case SQLITE_FLOAT: return capi.sqlite3_column_double(pStmt, i);
    case SQLITE_TEXT: {
      const p = wasm.exports.sqlite3_column_text(pStmt, i);
      const n = capi.sqlite3_column_bytes(pStmt, i);
      return n ? decoder.decode(wasm.heap8u().subarray(Number(p), Number(p) + n)) : '';
    }
    case SQLITE_BLOB: {
      const p = capi.sqlite3_column_blob(pStmt, i);
      const n = capi.sqlite3_column_bytes(pStmt, i);
      return wasm.heap8u().slice(Number(p), Number(p) + n);
    }
    default: return null;
  }
}
