"""The Python half of the ``pyscript.storage`` contender: runs inside a PyScript page.

bench/workloads/pyscript_storage.py serves a page (through Playwright
routing, so nothing is added to web/) that loads PyScript from
/vendor/pyscript/ with the local Pyodide, and puts this file in its
``<script type="py">``. It exposes ``window.pyscriptBench(kind, json)``,
which returns a JSON string; timing is done here with
``time.perf_counter_ns()`` (5 µs steps: the page is cross-origin isolated).
Not importable on CPython: it needs PyScript.

``pyscript.storage`` is a dict loaded whole from IndexedDB when the store
is opened; ``store[k] = v`` queues a write and ``await store.sync()`` waits
for IndexedDB to commit it. Each value here is the bench row's
``[name, value]`` under the key ``str(id)``.
"""

from __future__ import annotations

import json
import time
from typing import Any

import js  # type: ignore[import-not-found]
from pyodide.ffi import create_proxy  # type: ignore[import-not-found]
from pyscript import storage  # type: ignore[import-not-found]

_now = time.perf_counter_ns


def _row(i: int) -> list[Any]:
    return [f"name {i:06d}", i * 0.25]


async def _fill(name: str, n: int) -> dict[str, Any]:
    """Make the store hold exactly rows 1..n (kept across page loads)."""
    t0 = _now()
    s = await storage(name)
    if len(s) == n and s.get(str(n)) == _row(n):
        return {"created": False, "seconds": (_now() - t0) / 1e9}
    s.clear()
    for i in range(1, n + 1):
        s[str(i)] = _row(i)
    await s.sync()
    return {"created": True, "seconds": (_now() - t0) / 1e9}


async def _writes(name: str, n: int) -> dict[str, Any]:
    """``s[k] = row; await s.sync()`` for rows 1..n into an emptied store: per-write µs."""
    s = await storage(name)
    s.clear()
    await s.sync()
    us = [0.0] * n
    start = _now()
    for i in range(n):
        t0 = _now()
        s[str(i + 1)] = _row(i + 1)
        await s.sync()
        us[i] = (_now() - t0) / 1000
    total_us = (_now() - start) / 1000
    again = await storage(name)
    return {"us": us, "total_us": total_us, "count": len(again)}


async def _measure(args: dict[str, Any]) -> dict[str, Any]:
    name, keys = args["name"], [str(k) for k in args["keys"]]
    t0 = _now()
    s = await storage(name)
    open_us = (_now() - t0) / 1000
    if len(s) != args["rows"]:
        raise RuntimeError(f"pyscript.storage {name!r} holds {len(s)} keys, expected {args['rows']}")
    for k in keys[: args["warm"]]:
        s[k]
    # The loop under one timer first (a lookup is far below the clock's step,
    # and a timer read costs more than the lookup), then each call timed.
    start = _now()
    for k in keys:
        s[k]
    loop_us = (_now() - start) / 1000
    us = [0.0] * len(keys)
    wrong = 0
    for i, k in enumerate(keys):
        t = _now()
        v = s[k]
        us[i] = (_now() - t) / 1000
        if v[0] != f"name {int(k):06d}":
            wrong += 1
    out: dict[str, Any] = {"open_us": open_us, "us": us, "loop_mean_us": loop_us / len(keys), "wrong": wrong}
    out["write"] = await _writes(name + "-writes", args["writes"])
    out["burst"] = await _writes(name + "-writes", args["burst"])
    b = await storage(name + "-bulk")
    b.clear()
    await b.sync()
    t0 = _now()
    for i in range(1, args["bulk"] + 1):
        b[str(i)] = _row(i)
    await b.sync()
    out["bulk_s"] = (_now() - t0) / 1e9
    out["bulk_count"] = len(await storage(name + "-bulk"))
    b.clear()
    await b.sync()
    return out


async def bench(kind: str, args_json: str) -> str:
    """The page's entry point: ``fill`` or ``measure``, JSON in and out."""
    args = json.loads(args_json)
    if kind == "fill":
        return json.dumps(await _fill(args["name"], args["rows"]))
    if kind == "measure":
        return json.dumps(await _measure(args))
    raise ValueError(f"unknown pyscriptBench kind {kind!r}")


js.window.pyscriptBench = create_proxy(bench)
js.document.documentElement.dataset.ready = "true"
