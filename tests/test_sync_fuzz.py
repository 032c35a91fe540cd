"""Bad input to ``POST /sync`` on both primaries: never a 5xx, and nothing changes beyond the answer.

Every request here goes to the embedded primary and to the Worker on local D1
(the same bytes, in the same order, so both hold the same history), and each
primary's own database file is read before and after it:

* the status is never 5xx, and the body is always JSON;
* a 4xx carries ``{"error", "message"}`` and nothing changed: the app's
  tables, the change log, the clock and the schema are byte for byte as before;
* a 200 lists each refused change in ``rejected`` with a known code; the only
  changes stored are the request's changes that were not rejected; if none
  was stored, nothing changed at all; the schema never changes;
* both primaries give the same status and error code, or the same ``acked``
  and the same rejected (seq, code) pairs.

``test_an_input_gets_its_documented_answer`` pins the answer to each kind of
bad input (the table in docs/reliability.md); the Hypothesis test throws
random requests built from the same pieces: wrong types, unknown and
SQL-laden table and column names, malformed keys and values, stamps from the
future, stale schema versions, replayed and forged replica ids (150 examples
by default, 3,000 with ``--slow``).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from tests.conftest import start_server
from tests.sync.primaries import CONTRACT_SCHEMA, TOKEN, Answer, PrimaryServer, enc, http, key, worker_url
from tests.sync.wire import MAX_SEQ, envelope, replica_key

KINDS = ("sqlite", "d1-local")
#: Codes a per-change rejection may carry (docs/protocol.md).
REJECTION_CODES = {"malformed", "unknown_table", "unknown_column", "too_large", "future_stamp", "constraint"}
INJECTION = 'items"; DROP TABLE items; --'


@pytest.fixture(scope="module")
def primaries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, PrimaryServer]]:
    """Both primaries, each with a token and the contract schema."""
    yield from _primaries(tmp_path_factory)


@pytest.fixture(scope="module")
def fuzz_primaries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, PrimaryServer]]:
    """Both primaries again, for the fuzzers alone: small databases keep each check fast."""
    yield from _primaries(tmp_path_factory)


def _primaries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, PrimaryServer]]:
    base = tmp_path_factory.mktemp("fuzz")
    schema = base / "schema.sql"
    schema.write_text(CONTRACT_SCHEMA)
    out = {}
    try:
        for kind in KINDS:
            server = start_server(
                base / kind, "--primary", kind, "--schema", str(schema), "--auth-token", TOKEN, timeout=90
            )
            out[kind] = PrimaryServer(kind, server, worker_url(server))
        yield out
    finally:
        for p in out.values():
            p.server.stop()


#: What a request may change, each table read in one order (D1's own _cf_ tables aside).
SNAPSHOT = {
    "schema": ("sqlite_schema", "name", "name NOT LIKE '\\_cf\\_%' ESCAPE '\\'"),
    "items": ("items", "id", "1"),
    "pairs": ("pairs", "x, y", "1"),
    "checked": ("checked", "id", "1"),
    "changes": ("_edgesql_changes", "seq", "1"),
    "clock": ("_edgesql_clock", "tbl, pk, col", "1"),
}


def snapshot(p: PrimaryServer) -> dict[str, Any]:
    """A fingerprint of everything a request may change: each table's rows, every column quoted
    (exact: quote() tells 1 from 1.0 and TEXT from BLOB), hashed; and where the change log ends."""
    conn = sqlite3.connect(f"file:{p.db_path()}?mode=ro", uri=True, timeout=10)
    conn.text_factory = bytes
    try:
        out: dict[str, Any] = {}
        for name, (table, order, where) in SNAPSHOT.items():
            cols = [r[1].decode() for r in conn.execute(f"SELECT * FROM pragma_table_info('{table}')")]
            row = " || '|' || ".join(f"quote({c})" for c in cols)
            n, text = conn.execute(
                f"SELECT count(*), group_concat(r, char(10)) FROM "
                f"(SELECT {row} AS r FROM {table} WHERE {where} ORDER BY {order})"
            ).fetchone()
            out[name] = (n, hashlib.sha256(text or b"").hexdigest())
        out["end"] = conn.execute("SELECT coalesce(max(seq), 0) FROM _edgesql_changes").fetchone()[0]
        return out
    finally:
        conn.close()


@dataclass
class Outcome:
    """What a primary answered, reduced to what both primaries must agree on."""

    status: int
    error: str | None = None
    acked: int | None = None
    rejected: list[tuple[Any, str]] = field(default_factory=list)
    stored: int = 0

    def key(self) -> tuple[Any, ...]:
        return (self.status, self.error, self.acked, sorted(self.rejected, key=repr))


def post(p: PrimaryServer, body: bytes, token: str | None = TOKEN) -> Outcome:
    """Send one request and check the invariants of the module docstring on its answer."""
    before = snapshot(p)
    answer = http("POST", p.sync_url, body, token=token)
    after = snapshot(p)
    added = p.query(
        "SELECT replica, rseq FROM _edgesql_changes WHERE seq > ? ORDER BY seq",
        (before["end"],),
        raw_text=True,
    )
    return judge(p, body, answer, before, after, [(r.decode(), s) for r, s in added])


def judge(
    p: PrimaryServer, body: bytes, answer: Answer, before: Any, after: Any, added: list[tuple[str, int]]
) -> Outcome:
    where = f"{p.kind} answered {answer.status} to {body[:300]!r}: {answer.body[:300]!r}"
    assert answer.status < 500, where
    doc = answer.json
    assert isinstance(doc, dict), where
    assert after["schema"] == before["schema"], f"the schema changed: {where}"
    if answer.status != 200:
        assert isinstance(doc.get("error"), str) and isinstance(doc.get("message"), str) and doc["message"], (
            where
        )
        assert after == before, f"a refused request changed something: {where}"
        return Outcome(answer.status, doc["error"])
    req = json.loads(body)
    replica = req["replica"]
    sent = {c[0]: c for c in req.get("changes", [])}
    rejected = [(r.get("seq"), r.get("code")) for r in doc["rejected"]]
    for r in doc["rejected"]:
        assert r.get("code") in REJECTION_CODES and isinstance(r.get("reason"), str) and r["reason"], where
        assert r.get("seq") in sent, where
    refused = {s for s, _ in rejected}
    for rep, rseq in added:
        assert rep == replica and rseq in sent and rseq not in refused, f"stored ({rep}, {rseq}): {where}"
    if not added:
        assert after == before, f"nothing was stored, yet something changed: {where}"
    missing = set(sent) - refused - stored_seqs(p, replica)
    assert not missing, f"changes {sorted(missing)} were acknowledged but are not stored: {where}"
    assert doc["acked"] == (max(sent) if sent else 0), where
    return Outcome(200, None, doc["acked"], rejected, len(added))


def stored_seqs(p: PrimaryServer, replica: str) -> set[int]:
    return {r[0] for r in p.query("SELECT rseq FROM _edgesql_changes WHERE replica = ?", (replica,))}


def both(primaries: dict[str, PrimaryServer], body: bytes, token: str | None = TOKEN) -> Outcome:
    """Send the same bytes to both primaries; they must answer alike."""
    outcomes = [post(primaries[k], body, token) for k in KINDS]
    assert outcomes[0].key() == outcomes[1].key(), f"the primaries disagree on {body[:300]!r}: {outcomes}"
    return outcomes[0]


# -- requests, piece by piece ------------------------------------------------------------

_rid = iter(range(10**9))


def fresh_replica() -> str:
    return f"fuzz{next(_rid):04d}-{time.time_ns() % 10**9:09d}"


_last = [0]


def now_hlc() -> str:
    _last[0] = max(_last[0] + 1, int(time.time() * 1000) << 16)
    return str(_last[0])


def req(replica: str, changes: list[Any] | None = None, **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = envelope(replica, **fields)
    if changes is not None:
        out["changes"] = changes
    return out


def change(seq: int, table: str = "items", k: str | None = None, **cells: Any) -> list[Any]:
    c = {col: enc(v) for col, v in cells.items()} or {"c": ["t", "x"]}
    c["_edgesql_exists"] = ["i", "1"]
    return [seq, table, k or key(f"fz{seq}-{time.time_ns()}"), now_hlc(), c, 1]


def body_of(doc: Any) -> bytes:
    return json.dumps(doc).encode()


# (name, request body builder, expected): expected is ("status", N, code) for a request refused
# whole, or ("rejected", code) for a request whose one change is rejected alone, or ("ok",).
Build = Callable[[], bytes]
INPUTS: list[tuple[str, Build, tuple[Any, ...]]] = [
    ("not JSON", lambda: b'{"v": 2,', ("status", 400, "bad_json")),
    ("not UTF-8", lambda: b'{"v": 2, "replica": "\xff"}', ("status", 400, "bad_json")),
    (
        "NaN for a number",
        lambda: b'{"v": 2, "replica": "abcdefgh", "schema": NaN, "cursor": 0}',
        ("status", 400, None),
    ),
    ("an array body", lambda: b"[]", ("status", 400, "bad_request")),
    ("a body of one number beyond 2^53", lambda: b"9007199254740992", ("status", 400, "bad_request")),
    ("cursor 2^53", lambda: body_of(req(fresh_replica(), cursor=2**53)), ("status", 400, "bad_request")),
    ("cursor 2^53 - 1", lambda: body_of(req(fresh_replica(), cursor=2**53 - 1)), ("ok",)),
    ("v 1", lambda: body_of({**req(fresh_replica()), "v": 1}), ("status", 400, "unsupported_version")),
    ("v true", lambda: body_of({**req(fresh_replica()), "v": True}), ("status", 400, "unsupported_version")),
    ("no replica", lambda: b'{"v": 2, "schema": 1, "cursor": 0}', ("status", 400, "bad_request")),
    ("replica of 7 characters", lambda: body_of(req("abcdefg")), ("status", 400, "bad_request")),
    ("replica of 65 characters", lambda: body_of(req("a" * 65)), ("status", 400, "bad_request")),
    ("replica with a newline", lambda: body_of(req("abcdefgh\n")), ("status", 400, "bad_request")),
    ("replica with SQL", lambda: body_of(req("x'; DROP TABLE items; --")), ("status", 400, "bad_request")),
    ("schema as text", lambda: body_of(req(fresh_replica(), schema="1")), ("status", 400, "bad_request")),
    ("schema -1", lambda: body_of(req(fresh_replica(), schema=-1)), ("status", 400, "bad_request")),
    (
        "cursor 2^53 + 1",
        lambda: body_of(req(fresh_replica(), cursor=2**53 + 1)),
        ("status", 400, "bad_request"),
    ),
    ("cursor 1.0", lambda: body_of(req(fresh_replica(), cursor=1.0)), ("status", 400, "bad_request")),
    ("limit 5001", lambda: body_of(req(fresh_replica(), limit=5001)), ("status", 400, "bad_request")),
    ("changes an object", lambda: body_of(req(fresh_replica(), {"a": 1})), ("status", 400, "bad_request")),  # type: ignore[arg-type]
    ("a change not an array", lambda: body_of(req(fresh_replica(), [1])), ("status", 400, "bad_request")),
    ("a change without a seq", lambda: body_of(req(fresh_replica(), [[]])), ("status", 400, "bad_request")),
    ("seq 0", lambda: body_of(req(fresh_replica(), [change(0)])), ("status", 400, "bad_request")),
    ("seq as text", lambda: body_of(req(fresh_replica(), [["1", "items"]])), ("status", 400, "bad_request")),
    (
        "the same seq twice in a page",
        lambda: body_of(req(fresh_replica(), [change(1), change(1)])),
        ("status", 400, "bad_request"),
    ),
    (
        "a schema ahead of the primary",
        lambda: body_of(req(fresh_replica(), schema=2)),
        ("status", 409, "schema_ahead"),
    ),
    (
        "5,001 changes",
        lambda: body_of(req(fresh_replica(), [change(i + 1) for i in range(5001)])),
        ("status", 413, "page_too_large"),
    ),
    (
        "a stale schema version (0)",
        lambda: body_of(req(fresh_replica(), [change(1)], schema=0)),
        ("status", 409, "schema_behind"),
    ),
    ("5,000 changes", lambda: body_of(req(fresh_replica(), [change(i + 1) for i in range(5000)])), ("ok",)),
    (
        "unknown table",
        lambda: body_of(req(fresh_replica(), [change(1, "nowhere")])),
        ("rejected", "unknown_table"),
    ),
    (
        "SQL in a table name",
        lambda: body_of(req(fresh_replica(), [change(1, INJECTION)])),
        ("rejected", "unknown_table"),
    ),
    (
        "an edgesql table",
        lambda: body_of(req(fresh_replica(), [change(1, "_edgesql_changes")])),
        ("rejected", "unknown_table"),
    ),
    (
        "sqlite_schema",
        lambda: body_of(req(fresh_replica(), [change(1, "sqlite_schema")])),
        ("rejected", "unknown_table"),
    ),
    (
        "unknown column",
        lambda: body_of(req(fresh_replica(), [change(1, nope=1)])),
        ("rejected", "unknown_column"),
    ),
    (
        "SQL in a column name",
        lambda: body_of(req(fresh_replica(), [change(1, **{INJECTION: 1})])),
        ("rejected", "unknown_column"),
    ),
    (
        "the key not JSON",
        lambda: body_of(req(fresh_replica(), [change(1, k='["t41"')])),
        ("rejected", "malformed"),
    ),
    (
        "the key with SQL",
        lambda: body_of(req(fresh_replica(), [change(1, k=json.dumps([INJECTION]))])),
        ("rejected", "malformed"),
    ),
    (
        "the key of the wrong arity",
        lambda: body_of(req(fresh_replica(), [change(1, k='["t41", "i1"]')])),
        ("rejected", "malformed"),
    ),
    (
        "the key in lower-case hex",
        lambda: body_of(req(fresh_replica(), [change(1, k='["t4a"]')])),
        ("rejected", "malformed"),
    ),
    (
        "a key that is not UTF-8",
        lambda: body_of(req(fresh_replica(), [change(1, k='["tFF"]')])),
        ("rejected", "malformed"),
    ),
    (
        "a TEXT value that is not UTF-8",
        lambda: body_of(req(fresh_replica(), [[1, "items", key("fz-T"), now_hlc(), {"c": ["T", "C3"]}, 1]])),
        ("rejected", "malformed"),
    ),
    (
        "a lone surrogate",
        lambda: body_of(
            req(fresh_replica(), [[1, "items", key("fz-s"), now_hlc(), {"c": ["t", "\ud800"]}, 1]])
        ),
        ("rejected", "malformed"),
    ),
    (
        "a value nested 500 deep",
        lambda: body_of(
            req(
                fresh_replica(),
                [[1, "items", key("fz-d"), now_hlc(), {"c": json.loads("[" * 500 + "]" * 500)}, 1]],
            )
        ),
        ("rejected", "malformed"),
    ),
    (
        "an integer as text",
        lambda: body_of(req(fresh_replica(), [[1, "items", key("fz-i"), now_hlc(), {"b": ["i", "1x"]}, 1]])),
        ("rejected", "malformed"),
    ),
    (
        "a REAL out of range",
        lambda: body_of(
            req(fresh_replica(), [[1, "items", key("fz-r"), now_hlc(), {"d": ["r", "1", "5000"]}, 1]])
        ),
        ("rejected", "malformed"),
    ),
    (
        "no cells",
        lambda: body_of(req(fresh_replica(), [[1, "items", key("fz-n"), now_hlc(), {}, 1]])),
        ("rejected", "malformed"),
    ),
    (
        "cells not an object",
        lambda: body_of(req(fresh_replica(), [[1, "items", key("fz-o"), now_hlc(), "c", 1]])),
        ("rejected", "malformed"),
    ),
    (
        "an HLC as a number",
        lambda: body_of(req(fresh_replica(), [[1, "items", key("fz-h"), 12, {"c": ["n"]}, 1]])),
        ("rejected", "malformed"),
    ),
    (
        "a negative HLC",
        lambda: body_of(req(fresh_replica(), [[1, "items", key("fz-h"), "-5", {"c": ["n"]}, 1]])),
        ("rejected", "malformed"),
    ),
    (
        "an HLC beyond 64 bits",
        lambda: body_of(req(fresh_replica(), [[1, "items", key("fz-h"), "9" * 30, {"c": ["n"]}, 1]])),
        ("rejected", "malformed"),
    ),
    (
        "an HLC an hour ahead",
        lambda: body_of(
            req(
                fresh_replica(),
                [
                    [
                        1,
                        "items",
                        key("fz-f"),
                        str((int(time.time() * 1000) + 3_600_000) << 16),
                        {"c": ["n"]},
                        1,
                    ]
                ],
            )
        ),
        ("rejected", "future_stamp"),
    ),
    (
        "txend as text",
        lambda: body_of(req(fresh_replica(), [[1, "items", key("fz-x"), now_hlc(), {"c": ["n"]}, "1"]])),
        ("rejected", "malformed"),
    ),
    (
        "a change of 7 fields",
        lambda: body_of(req(fresh_replica(), [[*change(1), "extra"]])),
        ("rejected", "malformed"),
    ),
    (
        "a CHECK the primary enforces",
        lambda: body_of(req(fresh_replica(), [change(1, "checked", n=-1)])),
        ("rejected", "constraint"),
    ),
    (
        "NOT NULL the primary enforces",
        lambda: body_of(req(fresh_replica(), [change(1, "checked", n=None)])),
        ("rejected", "constraint"),
    ),
]


@pytest.mark.parametrize(("name", "build", "expected"), INPUTS, ids=[i[0] for i in INPUTS])
def test_an_input_gets_its_documented_answer(
    primaries: dict[str, PrimaryServer], name: str, build: Build, expected: tuple[Any, ...]
) -> None:
    body = build()
    if expected[0] == "status" and expected[2] is None:
        # JSON has no NaN: Python's parser reads it (then the type check refuses it),
        # JavaScript's refuses the text. Both are 400s that change nothing.
        for kind in KINDS:
            assert post(primaries[kind], body).status == expected[1]
        return
    out = both(primaries, body)
    if expected[0] == "status":
        assert (out.status, out.error) == expected[1:]
    elif expected[0] == "rejected":
        assert out.status == 200 and [code for _, code in out.rejected] == [expected[1]]
        assert out.stored == 0
    else:
        assert (
            out.status == 200
            and out.rejected == []
            and out.stored == len(json.loads(body).get("changes", []))
        )


def test_a_body_nested_past_pythons_parser(primaries: dict[str, PrimaryServer]) -> None:
    """Found: 100,000 nested brackets made the embedded primary answer 500 (RecursionError).
    Python's parser stops near 1,000 levels, JavaScript's does not, so here the primaries
    differ, both without a 5xx and without a change: the embedded one refuses the body
    (400 bad_json); the Worker parses it and rejects the nested change alone."""
    deep = "[" * 100_000 + "]" * 100_000
    rid = fresh_replica()
    head = f'{{"v": 2, "replica": "{rid}", "key": "{replica_key(rid)}", "high": 9, "schema": 1, "cursor": 0, "limit": 0, '
    body = (head + f'"changes": [[1, "items", "[\\"t41\\"]", "{now_hlc()}", {{"c": {deep}}}, 1]]}}').encode()
    answers = {}
    for kind, p in primaries.items():
        before = snapshot(p)
        answers[kind] = http("POST", p.sync_url, body)
        assert snapshot(p) == before, kind
    assert (answers["sqlite"].status, answers["sqlite"].json["error"]) == (400, "bad_json")
    d1 = answers["d1-local"]
    assert d1.status == 200 and [(r["seq"], r["code"]) for r in d1.json["rejected"]] == [(1, "malformed")]


def test_replayed_and_forged_replica_ids(primaries: dict[str, PrimaryServer]) -> None:
    """A replayed page changes nothing; another replica's id with its seqs and different content
    is a 409; with fresh seqs it is accepted: the token authenticates, the replica id only names
    the writer (docs/reliability.md)."""
    victim = fresh_replica()
    page = body_of(req(victim, [change(1), change(2)]))
    first = both(primaries, page)
    assert first.stored == 2
    again = both(primaries, page)  # a replay: acknowledged, nothing stored
    assert (again.status, again.acked, again.stored) == (200, 2, 0)
    forged = both(primaries, body_of(req(victim, [change(2)])))  # same seq, other content
    assert (forged.status, forged.error) == (409, "replica_conflict")
    fresh = both(primaries, body_of(req(victim, [change(3)])))
    assert (fresh.status, fresh.stored) == (200, 1)


def test_without_the_token_nothing_changes(primaries: dict[str, PrimaryServer]) -> None:
    body = body_of(req(fresh_replica(), [change(1)]))
    for kind in KINDS:
        for token in (None, "wrong", TOKEN + "x", TOKEN[:-1]):
            out = post(primaries[kind], body, token=token)
            assert (out.status, out.error) == (401, "unauthorized")


# -- Hypothesis ---------------------------------------------------------------------------

TABLE_NAMES = st.sampled_from(
    [
        "items",
        "items",
        "pairs",
        "checked",
        "nowhere",
        INJECTION,
        "_edgesql_changes",
        "sqlite_schema",
        "",
        "ITEMS",
    ]
) | st.text(max_size=12)
COLUMN_NAMES = st.sampled_from(
    ["a", "b", "c", "d", "x", "y", "v", "n", "t", "id", "_edgesql_exists", INJECTION, "", "A"]
) | st.text(max_size=8)
LEAF = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
JUNK = st.recursive(
    LEAF,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=8,
)
VALUES = st.one_of(
    st.none() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=30) | st.binary(max_size=20),
).map(enc)
ENCODED = st.one_of(
    VALUES,
    VALUES,
    st.sampled_from(
        [
            ["n", "x"],
            ["i"],
            ["i", "01"],
            ["i", "1.0"],
            ["r", "1"],
            ["r", "3", "-1075"],
            ["T", "4"],
            ["T", "C3"],
            ["b", "zz"],
            ["q", "1"],
            [],
        ]
    ),
    JUNK,
)
KEYS = st.one_of(
    st.text(max_size=10).map(lambda s: key(s)),
    st.integers(-(2**63), 2**63 - 1).map(lambda i: json.dumps([f"i{i}"])),
    st.sampled_from(
        ['["t41", "i1"]', '["i01"]', '["tFF"]', '["t4"]', '["b00"]', "[]", "{}", "null", '"t41"', INJECTION]
    ),
    st.text(max_size=15),
)
HLCS = st.one_of(
    st.just("now"),
    st.just("now"),
    st.sampled_from(["0", "-1", "1" + "0" * 30, "abc", "", "future", " 1"]),
    st.integers(0, 2**63 - 1).map(str),
    JUNK,
)
SEQS = st.integers(1, 12)
#: A few replica ids that come back (replays, forged ids, conflicts), and fresh ones (whose pages are stored).
REPLICAS = st.sampled_from(["fuzz-A-00000001", "fuzz-B-00000002", "fuzz-C-00000003"]) | st.builds(
    lambda: fresh_replica()
)


@st.composite
def a_sound_change(draw: st.DrawFn) -> list[Any]:
    """A change a replica could send (it may still break the `checked` table's CHECK)."""
    table = draw(st.sampled_from(["items", "pairs", "checked"]))
    text_key = draw(st.text(max_size=8))
    if table == "pairs":
        k = json.dumps(["t" + text_key.encode().hex().upper(), f"i{draw(st.integers(-5, 5))}"])
        columns = ["v"]
    else:
        k = key(text_key)
        columns = ["a", "b", "c", "d"] if table == "items" else ["n", "t"]
    cells = draw(st.dictionaries(st.sampled_from(columns), VALUES, max_size=len(columns)))
    if table == "checked" and draw(st.booleans()):
        cells["n"] = enc(draw(st.integers(-2, 5)))
    if not cells or draw(st.booleans()):
        cells["_edgesql_exists"] = ["i", draw(st.sampled_from(["1", "1", "0"]))]
    return [draw(SEQS), table, k, "now", cells, draw(st.sampled_from([0, 1]))]


@st.composite
def a_change(draw: st.DrawFn) -> list[Any]:
    if draw(st.booleans()):
        return draw(a_sound_change())
    cells = draw(st.dictionaries(COLUMN_NAMES, ENCODED, max_size=4) | JUNK)
    if isinstance(cells, dict) and draw(st.booleans()):
        cells["_edgesql_exists"] = ["i", "1"]
    c: list[Any] = [
        draw(SEQS),
        draw(TABLE_NAMES),
        draw(KEYS),
        draw(HLCS),
        cells,
        draw(st.sampled_from([0, 1, 1, 2, "1", None])),
    ]
    cut = draw(st.sampled_from([6, 6, 6, 6, 5, 7, 1]))
    return c[:cut] if cut <= 6 else [*c, draw(JUNK)]


@st.composite
def a_request(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["request"] * 18 + ["junk", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=80))
    if kind == "junk":
        return json.dumps(draw(JUNK)).encode()
    # Mostly a sound envelope, so the changes inside get looked at; else one field goes wrong.
    replica = draw(REPLICAS)
    doc: dict[str, Any] = {
        "v": 2,
        "replica": replica,
        "key": replica_key(replica),
        "high": draw(st.sampled_from([MAX_SEQ, MAX_SEQ, 0])),
        "schema": draw(st.sampled_from([1, 1, 1, 0])),
        "cursor": draw(st.sampled_from([0, 0, 1, 10**6])),
        "limit": draw(st.sampled_from([0, 0, 5, 2000])),
        "changes": draw(st.lists(a_change(), max_size=6)),
    }
    if draw(st.integers(0, 4)) == 0:
        k = draw(st.sampled_from(list(doc)))
        bad = {
            "v": st.sampled_from([1, "2", 2.0, None, True]),
            "key": st.sampled_from(["short", "k" * 129, "bad key!", INJECTION]) | st.text(max_size=10),
            "high": st.sampled_from([2**53, -1, 1.5, "0"]),
            "replica": st.sampled_from(["short", "a" * 65, "bad id!", INJECTION, "abcdefgh\n"])
            | st.text(max_size=10),
            "schema": st.sampled_from([2, -1, "1", 2**31 + 1]),
            "cursor": st.sampled_from([2**53, 2**53 - 1, -1, 1.5, "0"]),
            "limit": st.sampled_from([5001, -1, 1.0]),
            "changes": JUNK,
        }[k]
        if draw(st.booleans()):
            del doc[k]
        else:
            doc[k] = draw(bad | JUNK)
    if draw(st.integers(0, 9)) == 0:
        doc[draw(st.text(max_size=6))] = draw(JUNK)
    # Changes of one page carry distinct seqs (a repeat is refused whole; tested above).
    if isinstance(doc.get("changes"), list):
        seen: set[Any] = set()
        doc["changes"] = [
            c
            for c in doc["changes"]
            if not (isinstance(c, list) and c and isinstance(c[0], int) and (c[0] in seen or seen.add(c[0])))
        ]
    text = json.dumps(doc)
    text = text.replace('"now"', f'"{now_hlc()}"').replace(
        '"future"', f'"{(int(time.time() * 1000) + 3_600_000) << 16}"'
    )
    return text.encode()


FUZZ_EXAMPLES = {"default": 150, "slow": 3000}


def fuzz_settings(n: int) -> Any:
    return settings(
        max_examples=n,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def _fuzz(primaries: dict[str, PrimaryServer], body: bytes, stats: dict[str, int]) -> None:
    out = both(primaries, body)
    bucket = str(out.status) if out.status != 200 else ("200 stored" if out.stored else "200 nothing stored")
    stats[bucket] = stats.get(bucket, 0) + 1
    for _, code in out.rejected:
        stats[f"rejected {code}"] = stats.get(f"rejected {code}", 0) + 1


_stats: dict[str, dict[str, int]] = {"default": {}, "slow": {}}


@seed(20261125)
@fuzz_settings(FUZZ_EXAMPLES["default"])
@given(body=a_request())
def test_random_requests_never_5xx_and_change_nothing_unsaid(
    fuzz_primaries: dict[str, PrimaryServer], body: bytes
) -> None:
    _fuzz(fuzz_primaries, body, _stats["default"])


@pytest.mark.slow
@pytest.mark.timeout(3600)
@seed(20261126)
@fuzz_settings(FUZZ_EXAMPLES["slow"])
@given(body=a_request())
def test_random_requests_never_5xx_and_change_nothing_unsaid_long(
    fuzz_primaries: dict[str, PrimaryServer], body: bytes
) -> None:
    _fuzz(fuzz_primaries, body, _stats["slow"])


def test_fuzz_figures() -> None:
    """Prints what the fuzzers produced (for docs/reliability.md); runs after them."""
    for name, stats in _stats.items():
        if stats:
            print("RELIABILITY", json.dumps({"fuzz": name, **dict(sorted(stats.items()))}))
