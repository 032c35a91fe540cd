"""Convergence as a property: whatever the replicas do and however syncs interleave,
once everyone has synced, every replica and the primary hold identical tables."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.aio import run
from tests.sync.harness import Cluster

import edgesql

KEYS = ["k1", "k2", "k3"]
values = st.one_of(
    st.none(),
    st.integers(min_value=-3, max_value=3),
    st.sampled_from([2**63 - 1, -(2**63), 2**53 + 1]),
    st.sampled_from([0.0, -0.0, 1.0, 0.5, 1e308, 5e-324, float("inf")]),
    st.sampled_from(["", "x", "ünï", "a\x00b"]),
    st.sampled_from([b"", b"\x00\xff", b"blob"]),
)
columns = st.sampled_from(["a", "b", "c", "d"])

write_ops = st.one_of(
    st.tuples(st.just("insert"), st.sampled_from(KEYS), values, values),
    st.tuples(st.just("replace"), st.sampled_from(KEYS), values, values),
    st.tuples(st.just("update"), st.sampled_from(KEYS), columns, values),
    st.tuples(st.just("update2"), st.sampled_from(KEYS), values, values),
    st.tuples(st.just("delete"), st.sampled_from(KEYS)),
    st.tuples(st.just("rekey"), st.sampled_from(KEYS), st.sampled_from(KEYS)),
    st.tuples(st.just("pair"), st.sampled_from(["x", "y"]), st.integers(0, 2), values),
    st.tuples(st.just("unpair"), st.sampled_from(["x", "y"]), st.integers(0, 2)),
    st.tuples(st.just("tx"), st.sampled_from(KEYS), values, st.booleans()),
)
sync_ops = st.one_of(
    st.tuples(st.just("sync")),
    st.tuples(st.just("push"), st.integers(1, 3)),
    st.tuples(st.just("pull"), st.integers(1, 3)),
)
script = st.lists(st.tuples(st.integers(0, 4), st.one_of(write_ops, sync_ops)), max_size=40)


async def apply(db: edgesql.Connection, op: tuple[Any, ...]) -> None:
    kind = op[0]
    try:
        if kind == "insert":
            await db.execute("INSERT INTO items (id, a, c) VALUES (?, ?, ?)", (op[1], op[2], op[3]))
        elif kind == "replace":
            await db.execute(
                "INSERT OR REPLACE INTO items (id, b, d) VALUES (?, ?, ?)", (op[1], op[2], op[3])
            )
        elif kind == "update":
            await db.execute(f"UPDATE items SET {op[2]} = ? WHERE id = ?", (op[3], op[1]))
        elif kind == "update2":
            await db.execute("UPDATE items SET a = ?, c = ? WHERE id = ?", (op[2], op[3], op[1]))
        elif kind == "delete":
            await db.execute("DELETE FROM items WHERE id = ?", (op[1],))
        elif kind == "rekey":
            await db.execute("UPDATE items SET id = ? WHERE id = ?", (op[2], op[1]))
        elif kind == "pair":
            await db.execute(
                "INSERT INTO pairs VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET v = excluded.v",
                (op[1], op[2], op[3]),
            )
        elif kind == "unpair":
            await db.execute("DELETE FROM pairs WHERE x = ? AND y = ?", (op[1], op[2]))
        elif kind == "tx":
            try:
                async with db.transaction():
                    await db.execute("INSERT OR REPLACE INTO items (id, a) VALUES (?, ?)", (op[1], op[2]))
                    await db.execute("UPDATE items SET b = coalesce(b, 0) + 1 WHERE id = ?", (op[1],))
                    if op[3]:
                        raise LookupError("roll back")  # a rolled-back transaction leaves no trace
            except LookupError:
                pass
        elif kind == "sync":
            await db.sync()
        elif kind == "push":
            await db._backend.replica.round(push_limit=op[1], pull_limit=0)  # type: ignore[attr-defined]
        elif kind == "pull":
            await db._backend.replica.round(push_limit=0, pull_limit=op[1])  # type: ignore[attr-defined]
    except edgesql.IntegrityError:
        pass  # e.g. inserting a key that exists, or rekeying onto one: the app sees the error


@settings(
    max_examples=int(os.environ.get("EDGESQL_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.integers(2, 5), script)
def test_replicas_converge(n: int, steps: list[tuple[int, tuple[Any, ...]]]) -> None:
    async def check() -> None:
        cluster = Cluster()
        dbs = [await cluster.replica() for _ in range(n)]
        for who, op in steps:
            await apply(dbs[who % n], op)
        await cluster.settle()
        items = await cluster.states("items", "id")
        pairs = await cluster.states("pairs", "x, y")
        for db in dbs:
            assert (await db.sync_status()).pending == 0
            assert (await db.execute("PRAGMA integrity_check")).scalar() == "ok"
        await cluster.close()
        assert all(s == items[-1] for s in items), f"items differ:\n{items}"
        assert all(s == pairs[-1] for s in pairs), f"pairs differ:\n{pairs}"

    run(check())
