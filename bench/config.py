"""What one benchmark run does: how many page loads, rows and iterations.

``FULL`` is what ``make bench`` runs and what docs/benchmarks.md records;
``QUICK`` proves the harness works in well under a minute (the smoke test
and ``python -m bench --quick``). Its figures are not worth recording.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .browser import PATHS

__all__ = ["FULL", "QUICK", "Config"]


@dataclass(frozen=True)
class Config:
    """Sizes of one run. Every figure is measured on every page load, then the
    median over the loads is reported (``loads`` page loads per bridge path)."""

    quick: bool
    #: Page loads per bridge path; the paths alternate, load after load.
    loads: int
    #: Rows in the point-query table (issue 2: 100k).
    table_rows: int
    #: Timed point queries per layer and page load, after ``warmup`` untimed ones.
    iterations: int
    warmup: int
    #: Point queries per layer in the "where the time goes" breakdown.
    layer_iterations: int
    #: Rows of the executemany / bulk insert workload (issue 2: 100k).
    bulk_rows: int
    #: Timed range reads (100 rows through an index, joined) per variant and page load.
    range_iterations: int = 2_000
    #: Timed single-row durable writes per variant, synchronous setting and page load.
    write_iterations: int = 300
    #: Single-row writes in one burst (issue 7: 1,000).
    burst_writes: int = 1_000
    #: Live-query updates timed per page load.
    watch_iterations: int = 200
    #: Keys in the ``pyscript.storage`` store (it is loaded whole at open: 100k would take minutes),
    #: and rows of its bulk write.
    pyscript_keys: int = 10_000
    #: Seed of the random primary keys (load n uses seed + n).
    seed: int = 20261
    paths: tuple[str, ...] = PATHS
    #: The OPFS database every page load opens (it keeps the point table between loads).
    db_name: str = "bench.db"

    def with_loads(self, loads: int) -> Config:
        return replace(self, loads=loads)


FULL = Config(
    quick=False,
    loads=3,
    table_rows=100_000,
    iterations=10_000,
    warmup=2_000,
    layer_iterations=2_000,
    bulk_rows=100_000,
)

QUICK = Config(
    quick=True,
    loads=1,
    table_rows=10_000,
    iterations=300,
    warmup=50,
    layer_iterations=100,
    bulk_rows=5_000,
    range_iterations=60,
    write_iterations=20,
    burst_writes=100,
    watch_iterations=15,
    pyscript_keys=500,
)
