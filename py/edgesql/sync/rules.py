"""How a replica runs its sync loop: the constants and the reaction to each answer, once.

Two loops run the replica protocol: the browser's DB worker (``worker/sync.js``)
and the CPython replica (``replica.py``). Everything they must agree on is here;
the worker reads it from ``worker/replica-rules.js``, which is generated from
this module (``python -m edgesql gen-rules``; a test fails when it is stale).
What a replica sends and how it reads an answer is SQL generated from the
schema (``clientsql.py``), so the loops only move text and act on :data:`REACTIONS`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .clientsql import MAX_CELLS_BYTES
from .protocol import MAX_PAGE_BYTES, PROTOCOL_VERSION

__all__ = ["RULES", "answer_problem", "reaction", "render_js"]

#: Everything both loops read. Times in milliseconds.
RULES: dict[str, Any] = {
    "protocol_version": PROTOCOL_VERSION,
    # Wait after a local write before syncing, so a burst goes in one round.
    "debounce_ms": 50,
    # Failures back off exponentially, with jitter (x0.5-1.5), up to the cap.
    "backoff_base_ms": 500,
    "backoff_max_ms": 60_000,
    # ...except that a browser replica whose page is visible and whose device is online, and
    # which could not reach the primary at all (no HTTP answer), tries again this often (with
    # jitter x0.75-1.25): pending edits go out within about a second of the primary coming
    # back. A POST /sync that finds nothing to do is cheap; a 429/503 Retry-After and hidden
    # pages still wait the long way.
    "probe_ms": 1_000,
    # After a Retry-After of t seconds the next try comes between t and (1 + this) * t.
    "retry_after_jitter": 0.25,
    # Changes per pushed page (the primary takes up to 5,000 and 1.9 MB) and per pulled page.
    "push_limit": 2_000,
    "push_bytes": MAX_PAGE_BYTES,
    "pull_limit": 2_000,
    # A change larger than this could never be stored (the outbox refuses new ones; older
    # ones are rejected locally when a page is built).
    "max_cells_bytes": MAX_CELLS_BYTES,
    # Statuses of GET /schema after which a replica that has a cached schema starts on it,
    # as if offline: the primary's trouble, not this database's (a 401 is a setup error).
    "schema_fallback_statuses": [429, 500, 502, 503, 504],
    # A 200 answer is a sync response only with these fields of these JSON types (else
    # the round fails as bad_response and nothing is applied).
    "answer_fields": {"acked": "integer", "cursor": "integer", "changes": "array"},
    # What a replica does with an answer that is not 200: "rotate" (take a new replica id
    # and key, then sync again: another copy of this database, or another device, used
    # this id), "migrate" (fetch the schema, migrate, sync again), else fail the round
    # (the outbox keeps everything; the round is retried with backoff).
    "reactions": [
        {"status": 409, "error": "replica_conflict", "do": "rotate"},
        {"status": 403, "error": "replica_forbidden", "do": "rotate"},
        {"status": 409, "error": "schema_behind", "do": "migrate"},
        # Another user signed in on this device: the previous user's data goes from it, and
        # it starts as a new replica ("reset").
        {"status": 403, "error": "replica_user", "do": "reset"},
        # The token expired or was refused: ask the app's token provider (connect(auth=...))
        # for a new one and try once more ("reauth"; without a provider, fail).
        {"status": 401, "error": "token_expired", "do": "reauth"},
        {"status": 401, "error": "bad_token", "do": "reauth"},
        {"status": 401, "error": "unauthorized", "do": "reauth"},
        {"status": 401, "error": "sign_in", "do": "reauth"},
    ],
}


def reaction(status: int, error: str | None) -> str:
    """What to do with a non-200 answer: ``rotate``, ``migrate``, ``reset``, ``reauth`` or ``fail``."""
    for r in RULES["reactions"]:
        if r["status"] == status and r["error"] == error:
            return str(r["do"])
    return "fail"


def answer_problem(answer: Any) -> str | None:
    """Why a 200 answer is not a sync response, or None (see ``answer_fields``)."""
    if not isinstance(answer, dict):
        return "the answer is not a JSON object"
    for field, kind in RULES["answer_fields"].items():
        v = answer.get(field)
        ok = (type(v) is int and v >= 0) if kind == "integer" else isinstance(v, list)
        if not ok:
            return f"its {field!r} is not an {kind}"
    return None


JS_PATH = Path("worker") / "replica-rules.js"


def render_js() -> str:
    """The text of ``worker/replica-rules.js``."""
    return (
        "// Generated from py/edgesql/sync/rules.py by `python -m edgesql gen-rules`: do not edit.\n"
        "// What the browser's sync loop and the CPython replica must agree on (see rules.py).\n\n"
        f"export const RULES = Object.freeze({json.dumps(RULES, indent=2)});\n\n"
        "/**\n * What to do with a non-200 answer: 'rotate', 'migrate', 'reset', 'reauth' or 'fail'.\n"
        " * @param {number} status @param {string | null} error @returns {string}\n */\n"
        "export function reaction(status, error) {\n"
        "  const r = RULES.reactions.find((x) => x.status === status && x.error === error);\n"
        "  return r ? r.do : 'fail';\n"
        "}\n\n"
        "/**\n * Why a 200 answer is not a sync response, or null (see answer_fields).\n"
        " * @param {any} answer @returns {string | null}\n */\n"
        "export function answerProblem(answer) {\n"
        "  if (typeof answer !== 'object' || answer === null || Array.isArray(answer)) return 'the answer is not a JSON object';\n"
        "  for (const [field, kind] of Object.entries(RULES.answer_fields)) {\n"
        "    const v = answer[field];\n"
        "    const ok = kind === 'integer' ? Number.isSafeInteger(v) && v >= 0 : Array.isArray(v);\n"
        "    if (!ok) return `its '${field}' is not an ${kind}`;\n"
        "  }\n"
        "  return null;\n"
        "}\n"
    )
