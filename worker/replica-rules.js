// Generated from py/edgesql/sync/rules.py by `python -m edgesql gen-rules`: do not edit.
// What the browser's sync loop and the CPython replica must agree on (see rules.py).

export const RULES = Object.freeze({
  "protocol_version": 2,
  "debounce_ms": 50,
  "backoff_base_ms": 500,
  "backoff_max_ms": 60000,
  "probe_ms": 1000,
  "retry_after_jitter": 0.25,
  "push_limit": 2000,
  "push_bytes": 1900000,
  "pull_limit": 2000,
  "max_cells_bytes": 1900000,
  "schema_fallback_statuses": [
    429,
    500,
    502,
    503,
    504
  ],
  "answer_fields": {
    "acked": "integer",
    "cursor": "integer",
    "changes": "array"
  },
  "reactions": [
    {
      "status": 409,
      "error": "replica_conflict",
      "do": "rotate"
    },
    {
      "status": 403,
      "error": "replica_forbidden",
      "do": "rotate"
    },
    {
      "status": 409,
      "error": "schema_behind",
      "do": "migrate"
    },
    {
      "status": 403,
      "error": "replica_user",
      "do": "reset"
    },
    {
      "status": 401,
      "error": "token_expired",
      "do": "reauth"
    },
    {
      "status": 401,
      "error": "bad_token",
      "do": "reauth"
    },
    {
      "status": 401,
      "error": "unauthorized",
      "do": "reauth"
    },
    {
      "status": 401,
      "error": "sign_in",
      "do": "reauth"
    }
  ]
});

/**
 * What to do with a non-200 answer: 'rotate', 'migrate', 'reset', 'reauth' or 'fail'.
 * @param {number} status @param {string | null} error @returns {string}
 */
export function reaction(status, error) {
  const r = RULES.reactions.find((x) => x.status === status && x.error === error);
  return r ? r.do : 'fail';
}

/**
 * Why a 200 answer is not a sync response, or null (see answer_fields).
 * @param {any} answer @returns {string | null}
 */
export function answerProblem(answer) {
  if (typeof answer !== 'object' || answer === null || Array.isArray(answer)) return 'the answer is not a JSON object';
  for (const [field, kind] of Object.entries(RULES.answer_fields)) {
    const v = answer[field];
    const ok = kind === 'integer' ? Number.isSafeInteger(v) && v >= 0 : Array.isArray(v);
    if (!ok) return `its '${field}' is not an ${kind}`;
  }
  return null;
}
