"""Every SQLite storage class goes in and comes out exactly (CPython backend, Hypothesis)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.aio import run
from tests.cases.api_cases import same

import edgesql

sqlite_values = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(),
    st.binary(),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(sqlite_values, min_size=1, max_size=20))
def test_values_round_trip_exactly(values: list[Any]) -> None:
    async def check() -> None:
        async with edgesql.connect(":memory:") as db:
            await db.execute("CREATE TABLE v (i INTEGER PRIMARY KEY, x)")
            await db.executemany("INSERT INTO v VALUES (?, ?)", list(enumerate(values)))
            got = [r[0] for r in (await db.execute("SELECT x FROM v ORDER BY i")).rows]
            for a, b in zip(got, values, strict=True):
                assert same(a, b), (a, b)
            for v in values:
                assert same((await db.execute("SELECT ?", (v,))).scalar(), v)

    run(check())


def test_wire_codec_round_trips_exactly() -> None:
    # What the browser backend sends and receives, checked without a browser.
    from edgesql._wire import dumps, loads

    values = [None, 2**63 - 1, -(2**63), 1.0, -0.0, 5e-324, float("inf"), "a\x00b", b"\x00\xff", True]
    text = dumps({"params": values})
    assert "Infinity" not in text  # JSON.parse in the worker would refuse it
    back = loads(text.replace('{"$f":"inf"}', "Infinity"))["params"]
    for a, b in zip(back, values, strict=True):
        assert same(a, b) or (a is True and b is True), (a, b)
