"""The data and the queries every contender runs, in one place.

edgesql in the page, raw SQLite-Wasm in the worker and native CPython
``sqlite3`` run the very same SQL on the very same rows; IndexedDB holds
the same records under the same keys. Only the text lives here (it is sent
to the page, or run in this process), so the shapes cannot drift apart.

Tables (``n`` = ``Config.table_rows``):

- ``points_<n>(id INTEGER PRIMARY KEY, name TEXT, value REAL)``: rows 1..n,
  ``(i, 'name %06d', i * 0.25)`` (the point-query table, bench/workloads/point_query.py);
- ``range_items_<n>(id INTEGER PRIMARY KEY, grp, cat, name, value)`` with an
  index on ``grp``: ``grp = i % (n / 100)``, so each group is 100 rows spread
  over the whole table, and ``cat = i * 7 % 100 + 1``;
- ``range_cats(id INTEGER PRIMARY KEY, label TEXT)``: 100 categories;
- ``bench_writes(id INTEGER PRIMARY KEY, name TEXT, value REAL)``: emptied
  before each write variant, then rows 1..k inserted one autocommit statement each.
"""

from __future__ import annotations

import random

from .config import Config
from .sqlite_ops import Spec, bench_row

__all__ = [
    "GROUP_ROWS",
    "INSERT_SQL",
    "WRITES_TABLE",
    "bench_row",
    "point_sql",
    "points_statements",
    "range_check",
    "range_keys",
    "range_sql",
    "range_statements",
    "range_warmup",
    "sqlite_spec",
    "write_params",
]

#: Rows per group of the range read.
GROUP_ROWS = 100
CATEGORIES = 100
WRITES_TABLE = "bench_writes"
INSERT_SQL = f"INSERT INTO {WRITES_TABLE} (id, name, value) VALUES (?, ?, ?)"
WRITES_STATEMENTS = [
    f"DROP TABLE IF EXISTS {WRITES_TABLE}",
    f"CREATE TABLE {WRITES_TABLE} (id INTEGER PRIMARY KEY, name TEXT NOT NULL, value REAL NOT NULL)",
]

_FILL = "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {n}) "


def points_table(cfg: Config) -> str:
    return f"points_{cfg.table_rows}"


def point_sql(cfg: Config) -> str:
    return f"SELECT id, name, value FROM {points_table(cfg)} WHERE id = ?"


def points_statements(cfg: Config) -> list[str]:
    """Create and fill the point table (what bench_inpage.ensure_points does in the page)."""
    t, n = points_table(cfg), cfg.table_rows
    return [
        f"DROP TABLE IF EXISTS {t}",
        f"CREATE TABLE {t} (id INTEGER PRIMARY KEY, name TEXT NOT NULL, value REAL NOT NULL)",
        _FILL.format(n=n) + f"INSERT INTO {t} SELECT i, printf('name %06d', i), i * 0.25 FROM c",
    ]


def _items(cfg: Config) -> str:
    return f"range_items_{cfg.table_rows}"


def groups(cfg: Config) -> int:
    return max(1, cfg.table_rows // GROUP_ROWS)


def range_sql(cfg: Config) -> str:
    """100 rows through the ``grp`` index, each joined to its category, in id order."""
    return (
        f"SELECT i.id, i.name, i.value, c.label FROM {_items(cfg)} AS i "
        "JOIN range_cats AS c ON c.id = i.cat WHERE i.grp = ? ORDER BY i.id"
    )


def range_check(cfg: Config) -> tuple[str, list[int]]:
    """A query that answers the list when the range tables are as they should be."""
    t = _items(cfg)
    return (
        f"SELECT (SELECT count(*) FROM {t}), (SELECT max(grp) FROM {t}), (SELECT count(*) FROM range_cats)",
        [cfg.table_rows, groups(cfg) - 1, CATEGORIES],
    )


def range_statements(cfg: Config) -> list[str]:
    """Create and fill the two range tables and the index."""
    t, n, g = _items(cfg), cfg.table_rows, groups(cfg)
    return [
        f"DROP TABLE IF EXISTS {t}",
        "DROP TABLE IF EXISTS range_cats",
        "CREATE TABLE range_cats (id INTEGER PRIMARY KEY, label TEXT NOT NULL)",
        _FILL.format(n=CATEGORIES) + "INSERT INTO range_cats SELECT i, printf('category %03d', i) FROM c",
        f"CREATE TABLE {t} (id INTEGER PRIMARY KEY, grp INTEGER NOT NULL, cat INTEGER NOT NULL, "
        "name TEXT NOT NULL, value REAL NOT NULL)",
        _FILL.format(n=n)
        + f"INSERT INTO {t} SELECT i, i % {g}, i * 7 % {CATEGORIES} + 1, printf('name %06d', i), i * 0.25 FROM c",
        f"CREATE INDEX {t}_grp ON {t} (grp)",
    ]


def range_keys(cfg: Config, load: int, count: int) -> list[list[int]]:
    """Random groups (seeded per page load) as parameter sets."""
    rng = random.Random(cfg.seed * 7 + load)
    return [[rng.randrange(groups(cfg))] for _ in range(count)]


def range_warmup(cfg: Config) -> int:
    """Untimed range reads before the timed ones (a tenth of the point query's warm-up)."""
    return min(cfg.warmup // 10, cfg.range_iterations)


def point_keys(cfg: Config, load: int, count: int) -> list[int]:
    """The same random keys point_query draws for this page load."""
    return random.Random(cfg.seed + load).choices(range(1, cfg.table_rows + 1), k=count)


def write_params(count: int) -> list[list[object]]:
    """Rows 1..count of the writes table, as parameter sets."""
    return [list(bench_row(i)) for i in range(1, count + 1)]


def writes_statements() -> list[str]:
    """Drop and create the writes table (before each write variant)."""
    return list(WRITES_STATEMENTS)


def sqlite_spec(cfg: Config, load: int, *, write_full: bool) -> Spec:
    """Everything a plain ``sqlite3`` contender runs on this page load (bench/sqlite_ops.py):
    the same tables, keys, groups and rows as the page."""
    return Spec(
        tables=points_statements(cfg) + range_statements(cfg),
        point_sql=point_sql(cfg),
        point_params=[[k] for k in point_keys(cfg, load, cfg.iterations)],
        warm=cfg.warmup,
        range_sql=range_sql(cfg),
        range_params=range_keys(cfg, load, cfg.range_iterations),
        range_warm=range_warmup(cfg),
        range_rows=GROUP_ROWS,
        insert_sql=INSERT_SQL,
        writes_statements=writes_statements(),
        write_iterations=cfg.write_iterations,
        burst_writes=cfg.burst_writes,
        bulk_rows=cfg.bulk_rows,
        write_full=write_full,
    )
