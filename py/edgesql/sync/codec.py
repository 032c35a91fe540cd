"""SQL expressions that encode a value as JSON text and decode it back, exactly.

A value travels as a JSON array of strings, its type tag first, so nothing
ever passes through a lossy number (JavaScript, D1's binding, decimal text):

=============  ===================  =======================================
SQLite type    encoded              decoded with
=============  ===================  =======================================
NULL           ``["n"]``            NULL
INTEGER        ``["i","-42"]``      CAST(text AS INTEGER)
REAL           ``["r","m","e"]``    m · 2^e, both integers, via _edgesql_pow2
               ``["r","-0"]``,
               ``["r","inf"]``...
TEXT           ``["t","json str"]`` json_extract
TEXT with NUL  ``["T","HEX"]``      CAST(unhex() AS TEXT) (json_extract stops
                                    at NUL in SQLite 3.40)
BLOB           ``["b","HEX"]``      unhex()
=============  ===================  =======================================

REALs are split into an integer mantissa and a power of two found in the
``_edgesql_pow2`` table (built by doubling and halving 1.0, so every entry
is exact): workerd's SQLite prints REALs with 15 digits, and text-to-REAL
parsing is not correctly rounded everywhere, so decimal text would lose
bits. Division and multiplication by a power of two are exact.

A primary key becomes a *key*: an ASCII JSON array with one string per key
column, ``i<digits>``, ``t<HEX of UTF-8>`` or ``b<HEX>``. It is canonical —
the same row gives the same key on every engine, whatever its JSON escaping —
which matters because the key is what every replica's clock is indexed by.
"""

from __future__ import annotations

__all__ = [
    "DIFFERS_DOC",
    "POW2_DDL",
    "POW2_FILL",
    "POW2_INDEX",
    "decode",
    "differs",
    "encode",
    "key_decode",
    "key_encode",
    "quote_ident",
    "quote_text",
]

#: Exact powers of two from 2^-1074 (the smallest subnormal) to 2^1023.
POW2_DDL = "CREATE TABLE IF NOT EXISTS _edgesql_pow2 (e INTEGER PRIMARY KEY, v REAL NOT NULL) WITHOUT ROWID"
POW2_INDEX = "CREATE INDEX IF NOT EXISTS _edgesql_pow2_v ON _edgesql_pow2 (v)"
POW2_FILL = (
    "INSERT OR IGNORE INTO _edgesql_pow2 (e, v) "
    "SELECT e, v FROM (WITH RECURSIVE up(e, v) AS (SELECT 0, 1.0 UNION ALL SELECT e + 1, v * 2.0 "
    "FROM up WHERE e < 1023) SELECT e, v FROM up) "
    "UNION ALL SELECT e, v FROM (WITH RECURSIVE down(e, v) AS (SELECT -1, 0.5 UNION ALL "
    "SELECT e - 1, v * 0.5 FROM down WHERE e > -1074) SELECT e, v FROM down)"
)

_MAX_DOUBLE = "1.7976931348623157e308"


def quote_ident(name: str) -> str:
    """An SQL identifier, quoted: ``"we""ird"``."""
    return '"' + name.replace('"', '""') + '"'


def quote_text(text: str) -> str:
    """An SQL string literal: ``'it''s'``."""
    return "'" + text.replace("'", "''") + "'"


def _real(x: str) -> str:
    # The exponent: the largest power of two not above |x|; the mantissa is
    # x / 2^(e-52), an integer below 2^53 (2^-1074 is the floor for subnormals).
    return (
        f'CASE WHEN {x} = 0 THEN CASE WHEN atan2({x}, -1) < 0 THEN \'["r","-0"]\' ELSE \'["r","0"]\' END '
        f'WHEN {x} > {_MAX_DOUBLE} THEN \'["r","inf"]\' '
        f'WHEN {x} < -{_MAX_DOUBLE} THEN \'["r","-inf"]\' '
        f"ELSE (SELECT '[\"r\",\"' || CAST({x} / p.v AS INTEGER) || '\",\"' || p.e || '\"]' "
        f"FROM _edgesql_pow2 p WHERE p.e = max(-1074, "
        # The greatest power of two not above |x|: one step down the index on v (max(q.e)
        # over `q.v <= |x|` would read every smaller power, a thousand rows for x = 1000).
        f"(SELECT q.e FROM _edgesql_pow2 q WHERE q.v <= abs({x}) ORDER BY q.v DESC LIMIT 1) - 52)) END"
    )


def encode(x: str) -> str:
    """SQL for the encoded JSON text of the value of expression ``x``."""
    return (
        f"CASE typeof({x}) WHEN 'null' THEN '[\"n\"]' "
        f"WHEN 'integer' THEN '[\"i\",\"' || {x} || '\"]' "
        f"WHEN 'text' THEN CASE WHEN instr(CAST({x} AS BLOB), x'00') THEN '[\"T\",\"' || hex({x}) || '\"]' "
        f"ELSE '[\"t\",' || json_quote({x}) || ']' END "
        f"WHEN 'blob' THEN '[\"b\",\"' || hex({x}) || '\"]' "
        f"ELSE {_real(x)} END"
    )


def decode(e: str) -> str:
    """SQL for the value encoded in JSON text expression ``e``.

    ``e`` is always minified JSON as SQLite renders it (``["i","42"]``): the tag
    is its third character and the digits or hex of an INTEGER, BLOB or NUL-text
    sit between fixed ends, so only TEXT and REAL values are parsed as JSON.
    """
    s1 = f"({e} ->> '$[1]')"
    inner = f"substr({e}, 7, length({e}) - 8)"
    return (
        f"CASE substr({e}, 3, 1) WHEN 'n' THEN NULL "
        f"WHEN 'i' THEN CAST({inner} AS INTEGER) "
        f"WHEN 't' THEN {s1} "
        f"WHEN 'T' THEN CAST(unhex({inner}) AS TEXT) "
        f"WHEN 'b' THEN unhex({inner}) "
        f"WHEN 'r' THEN CASE {s1} WHEN '0' THEN 0.0 WHEN '-0' THEN -0.0 "
        f"WHEN 'inf' THEN 9e999 WHEN '-inf' THEN -9e999 "
        f"ELSE CAST(CAST({s1} AS INTEGER) AS REAL) * "
        f"(SELECT v FROM _edgesql_pow2 WHERE e = CAST({e} ->> '$[2]' AS INTEGER)) END "
        f"END"
    )


def key_part(x: str, otherwise: str = "NULL") -> str:
    """SQL for one key column's canonical ASCII part; ``otherwise`` for a REAL or NULL key.

    Text first: it is the common key (UUIDs). A capture trigger passes a
    ``RAISE(ABORT, ...)`` as ``otherwise``, so the check costs no extra statement.
    """
    return (
        f"CASE typeof({x}) WHEN 'text' THEN 't' || hex({x}) WHEN 'integer' THEN 'i' || {x} "
        f"WHEN 'blob' THEN 'b' || hex({x}) ELSE {otherwise} END"
    )


def key_encode(cols: list[str], otherwise: str = "NULL") -> str:
    """SQL for the key of a row whose primary key columns are the expressions ``cols``."""
    parts = " || ',' || ".join(f"'\"' || {key_part(c, otherwise)} || '\"'" for c in cols)
    return f"'[' || {parts} || ']'"


def key_decode(k: str, i: int) -> str:
    """SQL for the value of key column ``i`` of key text expression ``k``.

    A key is plain ASCII with no escapes, so the first column (the whole key,
    usually) is cut out with substr instead of parsing the JSON.
    """
    if i == 0:
        tag = f"substr({k}, 3, 1)"
        body = f"substr({k}, 4, instr(substr({k}, 4), '\"') - 1)"
    else:
        part = f"({k} ->> '$[{i}]')"
        tag, body = f"substr({part}, 1, 1)", f"substr({part}, 2)"
    return (
        f"CASE {tag} WHEN 'i' THEN CAST({body} AS INTEGER) "
        f"WHEN 't' THEN CAST(unhex({body}) AS TEXT) "
        f"WHEN 'b' THEN unhex({body}) END"
    )


#: Why :func:`differs` is more than ``IS NOT``.
DIFFERS_DOC = """
``a IS NOT b`` compares by the column's collation and by numeric value: under COLLATE
NOCASE 'abc' equals 'ABC', under RTRIM 'a' equals 'a  ', 1 equals 1.0 and 0.0 equals
-0.0. Each of those is a different value to store and to sync, so two values differ
when their types differ, their bytes differ (text and blobs, compared as BLOBs, which
no collation touches), or they are zeros of opposite sign (only atan2 tells: no
rendering of -0.0 keeps its sign).
"""


def differs(a: str, b: str) -> str:
    """SQL: are the values of expressions ``a`` and ``b`` different values (see :data:`DIFFERS_DOC`)?

    Cheapest test first: a value that changed is almost always caught by ``IS NOT``.
    """
    return (
        f"({a} IS NOT {b} OR typeof({a}) != typeof({b}) "
        f"OR CAST({a} AS BLOB) IS NOT CAST({b} AS BLOB) "
        f"OR ({a} = 0 AND typeof({a}) = 'real' AND atan2({a}, -1) != atan2({b}, -1)))"
    )
