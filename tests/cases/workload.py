"""Random writes whose effect a test can check exactly, on any backend (CPython or the page's Pyodide).

The reliability tests run this on several replicas at once, through faulty
networks and crashes, then check that nothing was lost or applied twice:

* **one change per counted write.** Every write counted in ``writes`` makes
  exactly one outbox row (one change on the primary): inserts of fresh keys,
  updates that always change a value (each value is unique), deletes of rows
  that exist, upserts that always change a value. So the primary's change log
  must hold exactly ``writes`` changes from this replica, no fewer (lost), no
  more (applied twice).
* **a model of its own rows.** Rows of ``notes`` whose id starts with ``who``
  are written only by this writer, so the primary must end with exactly the
  rows of ``model`` for them, value for value and type for type.
* **shared rows.** Every writer also upserts and deletes the same few rows of
  ``shared``: conflicts, resolved by last-writer-wins, checked by convergence.

The schema is ``tests/sync/reliability_schema.sql``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

#: Values every write may pick: the storage classes at their edges.
VALUES: list[Any] = [
    None,
    0,
    -1,
    2**53 + 1,
    -(2**63),
    2**63 - 1,
    0.5,
    -0.0,
    1e308,
    5e-324,
    float("inf"),
    "",
    "plain",
    "ünï©ødé 🚀",
    "a\x00b",
    b"",
    b"\x00\xff\x10",
]
SHARED_KEYS = [f"s{i}" for i in range(8)]


def enc(v: Any) -> list[str]:
    """A value as JSON-safe text that keeps its exact type (1 vs 1.0, -0.0, bytes)."""
    if v is None:
        return ["n"]
    if isinstance(v, bool):
        raise TypeError(v)
    if isinstance(v, int):
        return ["i", str(v)]
    if isinstance(v, float):
        return ["r", v.hex()]
    if isinstance(v, bytes):
        return ["b", v.hex()]
    return ["t", v]


def enc_rows(rows: Any) -> list[list[list[str]]]:
    """Rows as sorted lists of :func:`enc` values."""
    return sorted([enc(v) for v in r] for r in rows)


def _value(rnd: random.Random, counter: int) -> Any:
    kind = rnd.random()
    if kind < 0.5:
        return rnd.choice(VALUES)
    if kind < 0.7:
        return rnd.getrandbits(64) - 2**63
    if kind < 0.85:
        return rnd.uniform(-1e6, 1e6)
    return rnd.randbytes(rnd.randint(1, 40)) + counter.to_bytes(4, "big")


async def random_writes(
    db: Any,
    who: str,
    n: int,
    seed: int,
    on_ack: Callable[[str], Any] | None = None,
    pace: float = 0.0,
) -> dict[str, Any]:
    """Make at least ``n`` counted writes (see the module docstring); returns what a test checks.

    ``{"who", "writes", "statements", "model": {id: [enc(owner), enc(body), ...] or None}}``.
    After each statement the event loop gets a turn (``pace`` seconds of
    sleep), so a background sync runs between writes: on CPython a write never
    suspends, and ``pace`` spreads the writes over many sync rounds.
    """
    rnd = random.Random(seed)
    model: dict[str, list[Any] | None] = {}
    live: list[str] = []
    writes = statements = counter = 0

    def fresh() -> str:
        nonlocal counter
        counter += 1
        return f"{who}-{counter:06}"

    def body() -> str:
        nonlocal counter
        counter += 1
        return f"{who} body {counter}"

    async def insert(tx: Any = None) -> None:
        nonlocal writes
        k = fresh()
        row = [who, body(), _value(rnd, counter), _value(rnd, counter), _value(rnd, counter)]
        await (tx or db).execute(
            "INSERT INTO notes (id, owner, body, n, x, b) VALUES (?, ?, ?, ?, ?, ?)", (k, *row)
        )
        model[k] = row
        live.append(k)
        writes += 1
        if on_ack:
            on_ack(k)

    while writes < n:
        op = rnd.random()
        statements += 1
        if op < 0.3 or not live:
            await insert()
        elif op < 0.5:
            k = rnd.choice(live)
            row = model[k]
            assert row is not None
            row[1], row[2] = body(), _value(rnd, counter)
            rs = await db.execute("UPDATE notes SET body = ?, n = ? WHERE id = ?", (row[1], row[2], k))
            assert rs.rows_affected == 1, (k, rs.rows_affected)
            writes += 1
        elif op < 0.58:
            k = live.pop(rnd.randrange(len(live)))
            rs = await db.execute("DELETE FROM notes WHERE id = ?", (k,))
            assert rs.rows_affected == 1, (k, rs.rows_affected)
            model[k] = None
            writes += 1
        elif op < 0.64:
            rows = []
            for _ in range(3):
                k = fresh()
                rows.append((k, who, body(), _value(rnd, counter), None, None))
            await db.executemany(
                "INSERT INTO notes (id, owner, body, n, x, b) VALUES (?, ?, ?, ?, ?, ?)", rows
            )
            for r in rows:
                model[r[0]] = list(r[1:])
                live.append(r[0])
            writes += 3
        elif op < 0.7:
            async with db.transaction() as tx:
                await insert(tx)
                k = live[-1]
                row = model[k]
                assert row is not None
                row[1] = body()
                await tx.execute("UPDATE notes SET body = ? WHERE id = ?", (row[1], k))
            writes += 1
        elif op < 0.93:
            counter += 1
            await db.execute(
                "INSERT INTO shared (id, v, who) VALUES (?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET v = excluded.v, who = excluded.who",
                (rnd.choice(SHARED_KEYS), f"{who}:{counter}", who),
            )
            writes += 1
        else:
            rs = await db.execute("DELETE FROM shared WHERE id = ?", (rnd.choice(SHARED_KEYS),))
            writes += rs.rows_affected
        await asyncio.sleep(pace)
    return {
        "who": who,
        "writes": writes,
        "statements": statements,
        "model": {k: None if v is None else [enc(x) for x in v] for k, v in model.items()},
    }
