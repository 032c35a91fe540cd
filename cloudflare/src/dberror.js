// A database's statement errors, read alike whatever the database: D1 puts SQLite's code
// and message in its error text, Hrana (sqld, Turso) in fields. `refusal` says whether an
// error is a change the app's tables refuse (the page is then bisected, the change rejected)
// rather than the database failing (the request then answers 503 and is retried).

/** A statement's error as SQLite gave it: its primary result code name and its message. */
export class DatabaseError extends Error {
  /**
   * @param {string} code e.g. SQLITE_CONSTRAINT
   * @param {string} message SQLite's own message
   */
  constructor(code, message) {
    super(`${message} (${code})`);
    this.name = "DatabaseError";
    this.code = code;
    this.sqliteMessage = message;
  }
}

// D1 reports errors as `D1_ERROR: <SQLite's message>: SQLITE_<CODE> (extended: ...)`, with no
// code property: the SQLite result code at the end is the only structured part.
const D1_ERROR = /^(?:D1_ERROR: )?(.*): (SQLITE_[A-Z]+)( \(extended: \w+\))?$/s;

/**
 * SQLite's code and message of a statement's error, or null when it is not one.
 * @param {unknown} e
 * @returns {{code: string, message: string} | null}
 */
export function sqliteError(e) {
  if (e instanceof DatabaseError) return { code: e.code, message: e.sqliteMessage };
  const m = D1_ERROR.exec(e instanceof Error ? e.message : String(e));
  return m ? { code: m[2], message: m[1] } : null;
}

// The codes of a change the app's tables refuse (apsw's ConstraintError, TooBigError, MismatchError).
const CHANGE_REFUSED = /^SQLITE_(CONSTRAINT|TOOBIG|MISMATCH)(_[A-Z]+)?$/;

/**
 * SQLite's message when the database refused a change for a constraint, else null.
 * @param {unknown} e
 * @returns {string | null}
 */
export function refusal(e) {
  const err = sqliteError(e);
  return err && CHANGE_REFUSED.test(err.code) ? err.message : null;
}
