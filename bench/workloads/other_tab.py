"""edgesql from a non-owner tab: a second page of the same app, routed to the owner (issues 6, 7).

edgesql elects one owner per database name with Web Locks: the first tab
to connect gets a worker that holds the OPFS file, and every other tab that
connects to the same name routes its requests, through its own worker and a
BroadcastChannel, to the owner's worker. Issue 7 asks for both tabs side by
side; bench/tabs.py measures the same thing as a standalone script, and
this workload does it inside the harness, on each fast-path page load:

1. the measured page, which opened the bench database first, must be the
   owner (``db.info.extra["owner"] is True``, checked);
2. a second ``/console.html`` opens in the same browser profile and
   connects to the same name; it must not be the owner (checked);
3. the same point SELECTs as the point-query workload (same keys, same
   warm-up) run from Python on the second page, then on the measured page
   again, back to back, so the ratio compares two runs minutes apart at most;
4. single durable writes from the second page (WAL + synchronous=NORMAL,
   checked), on a fresh writes table, the same rows as the owner's;
5. the second page closes its connection and is closed, before the measured
   page lets go of the database: otherwise it would be next in line for the
   lock and would take the OPFS file the next page load needs.
"""

from __future__ import annotations

import math
from typing import Any

from ..browser import FAST_PATH, BenchError, BenchPage, open_second_page
from ..config import Config
from ..model import Check, Section, Table, check, fmt_ratio, fmt_us
from ..shapes import INSERT_SQL, WRITES_TABLE, point_keys, point_sql, write_params, writes_statements
from ..stats import combine_splits, ratio, split

__all__ = ["OTHER_TAB", "OtherTab"]

#: Issue 6: a non-owner tab's point query p50 ≤ 1 ms.
TARGET_P50_US = 1000.0
#: ``PRAGMA synchronous`` answers 1 for NORMAL.
NORMAL = 1
#: Sample series label for the latency plot.
LABEL = "edgesql Python (non-owner tab)"


class OtherTab:
    """Workload: point reads and single writes from a second tab that does not own the database."""

    key = "other_tab"
    title = "edgesql from a non-owner tab"
    paths: tuple[str, ...] = (FAST_PATH,)

    def prepare(self, page: BenchPage, cfg: Config) -> None:
        pass  # the point table is the point-query workload's

    def measure(self, page: BenchPage, cfg: Config, load: int) -> dict[str, Any]:
        if page.info.get("owner") is not True:
            raise BenchError(f"the measured page does not own {cfg.db_name}: {page.info.get('owner')!r}")
        sql = point_sql(cfg)
        keys = point_keys(cfg, load, cfg.iterations)
        other = open_second_page(page)
        try:
            info = other.call("connect_only", name=cfg.db_name)
            if info["owner"] is not False:
                raise BenchError(f"the second page owns {cfg.db_name} (owner={info['owner']!r})")
            if info["synchronous"] != NORMAL:
                raise BenchError(f"the second page's connection has synchronous={info['synchronous']}")
            other.set_keys(keys)
            py = other.call("point_query", sql=sql, warm=cfg.warmup)
            page.set_keys(keys)
            owner = page.call("point_query", sql=sql, warm=cfg.warmup)
            for who, r in (("non-owner", py), ("owner", owner)):
                if r["wrong"]:
                    raise BenchError(f"{r['wrong']} point queries from the {who} tab returned the wrong row")
            other.call("run_statements", statements=writes_statements())
            writes = other.call("timed_runs", sql=INSERT_SQL, params=write_params(cfg.write_iterations))
            count = page.call("scalar", sql=f"SELECT count(*) FROM {WRITES_TABLE}")  # seen by the owner
            if count != cfg.write_iterations:
                raise BenchError(f"{count} rows after {cfg.write_iterations} writes from the non-owner tab")
            other.call("close_db")
            if other.errors:
                raise BenchError(f"errors on the second page: {other.errors}")
        finally:
            other.close()
        if page.call("scalar", sql="SELECT count(*) FROM sqlite_schema") <= 0:
            raise BenchError("the measured page lost its database when the second page closed")
        return {
            "point": split(py["us"], py["waited"]),
            "owner_point": split(owner["us"], owner["waited"]),
            "write_normal": split(writes["us"], writes["waited"]),
            "samples": {"point": py["us"], "write_normal": writes["us"]},
            "fast_path": info["fast_path"],
        }

    def summarize(self, loads: dict[str, list[dict[str, Any]]], cfg: Config) -> Section:
        data = loads.get(FAST_PATH, [])
        if not data:
            return Section(self.key, self.title, _method(cfg), [], notes=["not run"])
        point = combine_splits([d["point"] for d in data])
        owner = combine_splits([d["owner_point"] for d in data])
        write = combine_splits([d["write_normal"] for d in data])
        figures: dict[str, float] = {}
        for op, sp in (("point", point), ("owner_point", owner), ("write_normal", write)):
            figures |= {
                f"other.{op}.p50_us": sp.all.p50,
                f"other.{op}.p99_us": sp.all.p99,
                f"other.{op}.mean_us": sp.all.mean,
                f"other.{op}.waited_share": sp.waited_share,
            }
        by_owner = ratio(point.all.p50, owner.all.p50)
        if not math.isnan(by_owner):  # else unknown, and left out like the other ratios
            figures["other.point.ratio_owner"] = by_owner

        def row(label: str, sp: Any, base: Any | None) -> list[str]:
            return [
                label,
                fmt_us(sp.all.p50),
                fmt_us(sp.all.p99),
                fmt_us(sp.all.mean),
                f"{100 * sp.waited_share:.0f}%",
                fmt_ratio(ratio(sp.all.p50, base.all.p50)) if base else "",
            ]

        table = Table(
            columns=["operation", "p50", "p99", "mean", "waited", "p50 ÷ owner"],
            rows=[
                row("point read, owner tab (the measured page), same keys, right after", owner, owner),
                row("point read, non-owner tab (routed to the owner's worker)", point, owner),
                row("single write, non-owner tab, WAL + synchronous=NORMAL", write, None),
            ],
            caption=f"Two fast-path pages of one browser profile. Medians over {len(data)} page load(s).",
        )
        checks: list[Check] = [
            check(6, "non-owner tab point query p50", point.all.p50, TARGET_P50_US, at_most=True, fmt=fmt_us)
        ]
        samples = {
            op: {LABEL: [u for d in data for u in d["samples"][op]]} for op in ("point", "write_normal")
        }
        return Section(self.key, self.title, _method(cfg), [table], checks, figures, samples=samples)


def _method(cfg: Config) -> list[str]:
    return [
        "On each fast-path page load, after the edgesql workloads: a second `/console.html` in the same "
        f"browser profile (a second tab of the app) connects to `{cfg.db_name}`. The measured page "
        "connected first, so its worker owns the OPFS file (`db.info.extra['owner']` is True there and "
        "False on the second page; both are checked). The second page's requests go to its own worker, "
        "which forwards them over a BroadcastChannel to the owner's worker, and the answers come back "
        "the same way.",
        f"**point read**: the point-query workload's {cfg.iterations:,} keys after its {cfg.warmup:,} "
        "untimed calls, `await db.execute(sql, (k,))` and the row, from Python on the second page; then "
        "the same on the measured page right after (the *owner* row, the baseline of the ratio).",
        f"**single write**: {cfg.write_iterations:,} autocommit INSERTs from the second page into a "
        "fresh writes table, under the owner worker's WAL + synchronous=NORMAL (checked): the same "
        "durability promise as the owner's own writes; the row count is then checked from the owner.",
        "The second page closes its connection and is closed before the measured page closes the "
        "database, so it never takes over the OPFS file.",
    ]


OTHER_TAB = OtherTab()
