"""``parse_request``'s fast path answers exactly what the detailed, change-by-change checker answers.

The transport screens a page in one tight loop for the common shape and falls
back to :func:`~edgesql.sync.protocol.change_problem` and a per-change size
measure only where a change is not plainly well formed (or the page is too big
to be sure). :func:`reference` below is the checker as it was before that fast
path, kept as the specification (with one fix: a lone surrogate anywhere in a
change is refused, not only in its first five fields): for random pages of
well-formed and malformed changes both must keep the same changes, refuse the
same ones with the same reasons, and raise the same errors.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.sync.wire import envelope

from edgesql.sync import protocol
from edgesql.sync.protocol import MAX_SEQ, ProtocolError, change_problem, parse_request


def reference(changes: list[list[Any]], limit: int) -> tuple[list[list[Any]], list[dict[str, Any]]]:
    """The checker before the fast path (seq checks, change_problem, then a size measure per change)."""
    too_large: list[dict[str, Any]] = []
    kept = []
    seen: set[int] = set()
    for i, c in enumerate(changes):
        seq = c[0] if c else None
        if type(seq) is not int or not 1 <= seq <= MAX_SEQ:
            raise ProtocolError(
                400,
                "bad_request",
                f"changes[{i}][0] must be the change's seq, an integer from 1 to {MAX_SEQ}",
            )
        if seq in seen:
            raise ProtocolError(
                400,
                "bad_request",
                f"changes[{i}][0]: seq {seq} appears twice in the page; each change has its own",
            )
        seen.add(seq)
        problem = change_problem(c)
        if problem is not None:
            too_large.append({"seq": seq, "code": "malformed", "reason": problem})
            continue
        cells = c[4] if len(c) > 4 else None
        try:
            size = (
                len(json.dumps(cells, separators=(",", ":"), ensure_ascii=False).encode())
                if cells is not None
                else 0
            )
            json.dumps(c, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            too_large.append(
                {
                    "seq": seq,
                    "code": "malformed",
                    "reason": "a string in the change is not valid Unicode (it holds a lone surrogate)",
                }
            )
            continue
        if size > limit:
            too_large.append(
                {
                    "seq": seq,
                    "code": "too_large",
                    "reason": f"the change is {size} bytes; a primary stores at most {limit} "
                    "per change (D1 refuses values over 2 MB): store large files elsewhere and keep a reference",
                }
            )
        else:
            kept.append(c)
    return kept, too_large


def body(changes: list[Any]) -> dict[str, Any]:
    return envelope("replica-0001", changes=changes)


def answer(fn: Any, *args: Any) -> Any:
    """What ``fn`` returns, or the (status, code, message) of the ProtocolError it raises."""
    try:
        return fn(*args)
    except ProtocolError as e:
        return ("error", e.status, e.code, e.message)


def check_same(changes: list[list[Any]], limit: int) -> None:
    expected = answer(reference, changes, limit)
    got = answer(parse_request, body(changes))
    if expected[0] == "error":
        assert got == expected
        return
    kept, refused = expected
    assert (got.changes, got.too_large) == (kept, refused)
    assert got.page == json.dumps(kept, separators=(",", ":"), ensure_ascii=False)


def hexs(data: bytes) -> str:
    return data.hex().upper()


TEXTS = st.text(max_size=12) | st.sampled_from(["", "é", "\ud800", "a\x00b", '"t', "\U0001f600"])
SCALARS = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | TEXTS
KEY_PARTS = st.one_of(
    st.text(max_size=6).map(lambda s: "t" + hexs(s.encode())),  # ASCII or not: both valid UTF-8
    st.binary(max_size=6).map(lambda b: "t" + hexs(b)),  # often not UTF-8
    st.binary(max_size=6).map(lambda b: "t" + b.hex()),  # lower-case hex
    st.binary(max_size=6).map(lambda b: "b" + hexs(b)),
    st.integers(-(2**63), 2**63).map(lambda n: f"i{n}"),
    st.sampled_from(["t", "tA", "t4", "x", "", 't"', "t\\"]),
)
KEYS = st.one_of(
    st.lists(KEY_PARTS, min_size=1, max_size=3).map(lambda parts: json.dumps(parts)),
    st.lists(KEY_PARTS, min_size=1, max_size=2).map(lambda parts: json.dumps(parts, indent=1)),
    TEXTS,
    SCALARS,
    st.just(["t61"]),
)
VALUES = st.one_of(
    st.tuples(st.sampled_from(["t", "i", "n", "r", "b"]), TEXTS).map(list),
    st.binary(max_size=6).map(lambda b: ["T", hexs(b)]),
    st.sampled_from([["T", "zz"], ["T", "C3"], ["n"], [], ["t", ["x"]], ["t", {"x": 1}], ["i", 1], [None]]),
    st.lists(SCALARS, max_size=3),
    SCALARS,
    st.dictionaries(TEXTS, SCALARS, max_size=2),
)
CELLS = st.one_of(
    st.dictionaries(st.sampled_from(["a", "b", "c", "_edgesql_exists", "é", ""]), VALUES, max_size=4),
    SCALARS,
    st.lists(SCALARS, max_size=2),
)


#: What replicas send: the shape the fast path is for (its strings may still hold what it must refuse).
PLAIN_CELLS = st.dictionaries(
    st.sampled_from(["a", "b", "c", "_edgesql_exists", "é"]),
    st.tuples(st.sampled_from(["t", "i", "n", "b", "r"]), TEXTS).map(list)
    | st.sampled_from([["n"], ["r", "1", "-3"], ["T", "C3A9"], ["T", "FF"]]),
    max_size=4,
)


@st.composite
def changes(draw: st.DrawFn) -> list[list[Any]]:
    n = draw(st.integers(0, 8))
    seqs = draw(st.lists(st.integers(1, 50), min_size=n, max_size=n, unique=True))
    out = []
    for seq in seqs:
        if draw(st.booleans()):
            plain = draw(st.lists(KEY_PARTS, min_size=1, max_size=2).map(lambda parts: json.dumps(parts)))
            out.append(
                [seq, "items", plain, "117680172548161536", draw(PLAIN_CELLS), draw(st.sampled_from([0, 1]))]
            )
            continue
        c: list[Any] = [
            seq,
            draw(st.sampled_from(["items", "notes"]) | SCALARS),
            draw(KEYS),
            draw(st.sampled_from(["117680172548161536", "1"]) | SCALARS),
            draw(CELLS),
            draw(st.sampled_from([0, 1]) | SCALARS),
        ]
        cut = draw(st.sampled_from([6, 6, 6, 6, 5, 3, 1, 7]))
        out.append([*c, 0][:cut])
    # Now and then a page whose seqs the transport refuses: the same error, the same message.
    if out and draw(st.integers(0, 9)) == 0:
        out[-1][0] = draw(st.sampled_from([out[0][0], 0, -1, True, 1.0, "1", None, MAX_SEQ + 1]))
    return out


@pytest.mark.parametrize("limit", [protocol.MAX_CELLS_BYTES, 60], ids=["real limit", "tiny limit"])
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(page=changes())
def test_the_fast_path_answers_what_the_detailed_checker_answers(
    page: list[list[Any]], limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A tiny limit sends many pages down the measuring path, and some changes over it.
    monkeypatch.setattr(protocol, "MAX_CELLS_BYTES", limit)
    check_same(page, limit)


def test_a_page_over_the_limit_whose_changes_are_not_is_kept_whole() -> None:
    # Five changes of 400 kB: the page is over 1.9 MB, no change is.
    page = [[i, "items", '["t61"]', "1", {"c": ["t", "x" * 400_000]}, 1] for i in range(1, 6)]
    req = parse_request(body(page))
    assert req.changes == page and req.too_large == []
    assert req.page == json.dumps(page, separators=(",", ":"), ensure_ascii=False)


def test_a_change_over_the_limit_is_refused_and_the_rest_kept() -> None:
    page = [
        [1, "items", '["t61"]', "1", {"c": ["t", "x" * 10]}, 1],
        [2, "items", '["t62"]', "1", {"c": ["t", "é" * 1_000_000]}, 1],  # 2 MB of UTF-8
        [3, "items", '["t63"]', "1", {"c": ["t", "y"]}, 1],
    ]
    req = parse_request(body(page))
    assert [c[0] for c in req.changes] == [1, 3]
    assert [(r["seq"], r["code"]) for r in req.too_large] == [(2, "too_large")]
    assert "2000014 bytes" in req.too_large[0]["reason"]


@pytest.mark.parametrize("at", [1, 2, 3, 4, 5])
def test_a_lone_surrogate_anywhere_in_a_change_is_malformed(at: int) -> None:
    # Before the fast path, one after the cells reached the primary's SQL binding (a 500).
    bad: list[Any] = [7, "items", '["t61"]', "1", {"c": ["t", "x"]}, 1]
    bad[at] = {"c": ["t", "\ud800"]} if at == 4 else "\ud800"
    good = [8, "items", '["t62"]', "1", {"c": ["t", "ok"]}, 1]
    req = parse_request(body([bad, good]))
    assert req.changes == [good]
    assert req.too_large == [
        {
            "seq": 7,
            "code": "malformed",
            "reason": "a string in the change is not valid Unicode (it holds a lone surrogate)",
        }
    ]


@pytest.mark.parametrize(
    "pk",
    ['["t612D30"]', '["t61","i5","b00"]', '["tC3A9"]', '["tFF"]', '["t6"]', '["t61\\u0022"]', '["ta1"]'],
)
def test_key_parts_screened_fast_or_not_give_the_same_answer(pk: str) -> None:
    check_same([[1, "notes", pk, "1", {"title": ["t", "x"]}, 0]], protocol.MAX_CELLS_BYTES)
