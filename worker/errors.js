/**
 * Errors that cross postMessage as data: {code, name, message, kind}.
 *
 * `code` is SQLite's extended result code and `name` its symbolic name, so
 * Python raises the same exception class the stdlib's sqlite3 would. `kind`
 * forces a class where the code alone would not say it (a bad parameter is a
 * ProgrammingError however SQLite words it).
 */

export const SQLITE_ERROR = 1;
export const SQLITE_BUSY = 5;
export const SQLITE_TOOBIG = 18;
export const SQLITE_MISMATCH = 20;
export const SQLITE_MISUSE = 21;
export const SQLITE_RANGE = 25;
export const SQLITE_CANTOPEN = 14;

const NAMES = {
  1: 'SQLITE_ERROR', 5: 'SQLITE_BUSY', 14: 'SQLITE_CANTOPEN', 18: 'SQLITE_TOOBIG',
  20: 'SQLITE_MISMATCH', 21: 'SQLITE_MISUSE', 25: 'SQLITE_RANGE',
};

/** An error the worker raises itself, with SQLite's vocabulary. */
export class EdgeError extends Error {
  /**
   * @param {string} message
   * @param {number} code SQLite (extended) result code
   * @param {string} [kind] Python exception class name, when the code is not enough
   * @param {string} [name] symbolic name of the code
   */
  constructor(message, code, kind, name) {
    super(message);
    this.code = code;
    this.kind = kind;
    this.codeName = name || NAMES[code] || `SQLITE_${code}`;
  }
}

/** @param {any} e @returns {{code:number,name:string,message:string,kind?:string}} */
export function errorToData(e) {
  if (e instanceof EdgeError) {
    return { code: e.code, name: e.codeName, message: e.message, kind: e.kind, ...(e.extra || {}) };
  }
  // Anything else is a bug or an environment failure: keep its words, never hide it.
  return {
    code: SQLITE_ERROR,
    name: 'SQLITE_ERROR',
    message: `internal error in the edgesql worker: ${e && e.message ? e.message : String(e)}`,
    kind: 'InternalError',
  };
}
