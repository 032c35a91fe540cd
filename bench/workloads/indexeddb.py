"""Contender: raw IndexedDB from page JavaScript (issue 7: "faster than a raw IndexedDB get").

What a JavaScript developer reaches for first, and what ``pyscript.storage``
is built on. On the fast-path page (its ``performance.now()`` steps by 5 µs),
bench/inpage.js runs, for the same keys and rows as the SQL contenders:
``get(key)`` in a read-only transaction per call; ``put(row)`` + commit, one
read-write transaction per row, with ``durability: 'relaxed'`` and with
``'strict'``; a burst of those puts back to back; and a bulk of puts in one
transaction. IndexedDB has no joins and no secondary-index query here, so
the range read is not run. Ratios to the floor are in the side-by-side section.
"""

from __future__ import annotations

from typing import Any

from ..browser import FAST_PATH, BenchError, BenchPage
from ..config import Config
from ..contenders import latency_rows, rate_row
from ..model import Section, Table
from ..shapes import point_keys
from ..stats import median, ratio

__all__ = ["INDEXEDDB", "IndexedDb"]

OPS = {
    "point": "get(key), one read-only transaction each",
    "write_normal": "put(row) + commit, durability 'relaxed'",
    "write_full": "put(row) + commit, durability 'strict'",
    "burst": "burst: put + commit back to back, 'relaxed' (per write)",
}


class IndexedDb:
    """Workload: raw IndexedDB gets and puts from JavaScript on the benchmark page."""

    key = "indexeddb"
    title = "Contender: raw IndexedDB from JavaScript"
    paths: tuple[str, ...] = (FAST_PATH,)

    def prepare(self, page: BenchPage, cfg: Config) -> None:
        page.js("(n) => edgesqlBench.idbEnsurePoints(n)", cfg.table_rows)

    def measure(self, page: BenchPage, cfg: Config, load: int) -> dict[str, Any]:
        keys = point_keys(cfg, load, cfg.iterations)
        ensured = page.js("(n) => edgesqlBench.idbEnsurePoints(n)", cfg.table_rows)
        if ensured["created"]:
            raise BenchError("the IndexedDB points store did not persist between page loads")
        gets = page.js("([keys, warm]) => edgesqlBench.idbGets(keys, warm)", [keys, cfg.warmup])
        if gets["wrong"]:
            raise BenchError(f"{gets['wrong']} IndexedDB gets returned the wrong record")
        out: dict[str, Any] = {"point": gets}
        for op, durability, n in (
            ("write_normal", "relaxed", cfg.write_iterations),
            ("write_full", "strict", cfg.write_iterations),
            ("burst", "relaxed", cfg.burst_writes),
        ):
            r = page.js("([n, d]) => edgesqlBench.idbPuts(n, d)", [n, durability])
            if r["count"] != n:
                raise BenchError(f"IndexedDB holds {r['count']} records after {n} puts")
            out[op] = r
        bulk = page.js("(n) => edgesqlBench.idbBulk(n)", cfg.bulk_rows)
        if bulk["count"] != cfg.bulk_rows:
            raise BenchError(f"IndexedDB bulk left {bulk['count']} records, expected {cfg.bulk_rows}")
        out["bulk"] = bulk
        return out

    def summarize(self, loads: dict[str, list[dict[str, Any]]], cfg: Config) -> Section:
        data = loads.get(FAST_PATH, [])
        if not data:
            return Section(self.key, self.title, _method(cfg), [], notes=["not run"])
        figures, samples, rows = latency_rows(data, OPS, "idb", "IndexedDB (JS)")
        burst_s = median([d["burst"]["total_us"] for d in data]) / 1e6
        bulk_s = median([d["bulk"]["ms"] for d in data]) / 1000
        figures["idb.burst.writes_per_s"] = ratio(cfg.burst_writes, burst_s)
        figures["idb.bulk.rows_per_s"] = ratio(cfg.bulk_rows, bulk_s)
        rows += [
            rate_row(f"burst of {cfg.burst_writes:,} puts, whole", burst_s, cfg.burst_writes, "writes"),
            rate_row(f"bulk: {cfg.bulk_rows:,} puts in one transaction", bulk_s, cfg.bulk_rows),
        ]
        table = Table(
            columns=["operation", "p50", "p99", "mean / rate"],
            rows=rows,
            caption=f"Fast-path page, page JavaScript. Medians over {len(data)} page load(s).",
        )
        return Section(self.key, self.title, _method(cfg), [table], [], figures, samples=samples)


def _method(cfg: Config) -> list[str]:
    return [
        "Database `edgesql-bench-idb` (same origin and profile as the page), object stores keyed by "
        f"`id`: `points` holds the records `{{id, name, value}}` 1..{cfg.table_rows:,} (the same rows as "
        "the SQL point table, written once on the setup page and kept), `writes` and `bulk` are cleared "
        "before each write run.",
        f"**get**: the same {cfg.iterations:,} random keys as the point query, after {cfg.warmup:,} untimed "
        "gets; each `get` opens its own read-only transaction (as a lookup in an app does) and is timed "
        "with `performance.now()` from the call to the request's `success` (checked).",
        f"**put + commit**: {cfg.write_iterations:,} records, one read-write transaction each, timed "
        "until the transaction's `complete` event: with `durability: 'relaxed'` (Chromium reports "
        "completion before the data is flushed to disk: survives a tab crash, like WAL + NORMAL) and "
        "`'strict'` (flushed first, like synchronous=FULL). **burst**: "
        f"{cfg.burst_writes:,} such relaxed puts back to back. **bulk**: {cfg.bulk_rows:,} puts in one "
        "transaction, timed to `complete`.",
        "No range read: IndexedDB has no join; a JavaScript app would issue 1 + 100 gets or denormalise.",
    ]


INDEXEDDB = IndexedDb()
