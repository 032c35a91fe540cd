// Split an SQL script into statements the way SQLite's sqlite3_complete() sees them
// (a `;` inside a string, a comment or a CREATE TRIGGER body does not end one) —
// the same rule wrangler applies to migration files, and Python's
// edgesql._split.split_statements (sqlite3.complete_statement) applies on the client.

const SEMI = 0, WS = 1, OTHER = 2, EXPLAIN = 3, CREATE = 4, TEMP = 5, TRIGGER = 6, END = 7;
const START = 1;
// sqlite3_complete()'s state machine (SQLite's src/complete.c), states 0..7:
// INVALID, START, NORMAL, EXPLAIN, CREATE, TRIGGER, SEMI, END; columns are the tokens above.
const TRANS = [
  [1, 0, 2, 3, 4, 2, 2, 2],
  [1, 1, 2, 3, 4, 2, 2, 2],
  [1, 2, 2, 2, 2, 2, 2, 2],
  [1, 3, 3, 2, 4, 2, 2, 2],
  [1, 4, 2, 2, 2, 4, 5, 2],
  [6, 5, 5, 5, 5, 5, 5, 5],
  [6, 6, 5, 5, 5, 5, 5, 7],
  [1, 7, 5, 5, 5, 5, 5, 5],
];
const KEYWORDS = { explain: EXPLAIN, create: CREATE, temp: TEMP, temporary: TEMP, trigger: TRIGGER, end: END };
const ID = /[A-Za-z0-9_$\u0080-\uffff]/;

/**
 * The complete statements in ``sql``, each trimmed, without comment-only ones;
 * a trailing fragment that is not complete is kept (SQLite will report it).
 * @param {string} sql
 * @returns {string[]}
 */
export function splitStatements(sql) {
  const out = [];
  let state = 0;
  let start = 0;
  let useful = false;
  for (let i = 0; i < sql.length; i++) {
    const c = sql[i];
    let token;
    if (c === ";") token = SEMI;
    else if (c === " " || c === "\t" || c === "\n" || c === "\r" || c === "\f") token = WS;
    else if (c === "-" && sql[i + 1] === "-") {
      const eol = sql.indexOf("\n", i + 2);
      i = eol === -1 ? sql.length : eol;
      token = WS;
    } else if (c === "/" && sql[i + 1] === "*") {
      const close = sql.indexOf("*/", i + 2);
      if (close === -1) break; // an unterminated comment: nothing after it completes
      i = close + 1;
      token = WS;
    } else if (c === "'" || c === '"' || c === "`" || c === "[") {
      const close = sql.indexOf(c === "[" ? "]" : c, i + 1);
      if (close === -1) {
        useful = true;
        break;
      }
      i = close;
      token = OTHER;
    } else if (ID.test(c)) {
      let j = i;
      while (j + 1 < sql.length && ID.test(sql[j + 1])) j++;
      token = KEYWORDS[/** @type {keyof KEYWORDS} */ (sql.slice(i, j + 1).toLowerCase())] ?? OTHER;
      i = j;
    } else token = OTHER;
    if (token !== SEMI && token !== WS) useful = true;
    state = TRANS[state][token];
    if (token === SEMI && state === START) {
      if (useful) out.push(sql.slice(start, i + 1).trim());
      start = i + 1;
      useful = false;
    }
  }
  const rest = sql.slice(start).trim();
  if (useful && rest) out.push(rest);
  return out;
}
