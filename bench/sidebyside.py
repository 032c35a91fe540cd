"""Every contender next to the floor, operation by operation, as ratios (issue 7).

Built after the run from the figures the workload sections produced (same
run, same page loads, same data): for each operation, each contender's p50
and p99 (or time and rate, for the burst and the bulk), divided by the
floor's — the worker running SQLite-Wasm alone, and the raw JavaScript round
trip through the same bridge. A ratio of 1.0× is the floor; below 1.0× is
faster than the floor (native sqlite3 has no browser to cross).
"""

from __future__ import annotations

import math

from .config import Config
from .model import Check, Section, Table, check, fmt_rate, fmt_ratio, fmt_us
from .stats import ratio
from .workloads.pyodide_sqlite import LABEL as PYODIDE_LABEL

__all__ = ["NOT_MEASURED", "side_by_side"]

F = "fast-path"
P = "postmessage"

#: Contender key → label, in table order.
CONTENDERS = {
    "edgesql": "edgesql from Python, fast path (owner tab)",
    "edgesql_pm": "edgesql from Python, postMessage path (owner tab)",
    "other": "edgesql from Python, non-owner tab (routed to the owner tab's worker; fast path)",
    "js": "floor: raw JS round trip, same request, same bridge (fast path)",
    "worker": "floor: SQLite-Wasm alone in the worker",
    "native": "native CPython sqlite3 on disk (not a browser)",
    "idb": "raw IndexedDB from JavaScript",
    "sqlocal": "SQLocal from JavaScript (SQLite-Wasm, `opfs` VFS, its own worker)",
    "pyscript": "`pyscript.storage` from Python",
    "pyodide": f"{PYODIDE_LABEL} (Python, same page)",
}

#: Latency operations: op → (label, {contender: figure prefix}).
LATENCY_OPS: dict[str, tuple[str, dict[str, str]]] = {
    "point": (
        "Point read by primary key",
        {
            "edgesql": f"{F}.python",
            "edgesql_pm": f"{P}.python",
            "other": "other.point",
            "js": f"{F}.js",
            "worker": f"{F}.worker_run",
            "native": "native.point",
            "idb": "idb.point",
            "sqlocal": "sqlocal.point",
            "pyscript": "pyscript.point",
            "pyodide": "pyodide.point",
        },
    ),
    "range": (
        "Range read: 100 rows via an index, joined",
        {
            "edgesql": f"{F}.range.python",
            "edgesql_pm": f"{P}.range.python",
            "js": f"{F}.range.js",
            "worker": f"{F}.range.worker",
            "native": "native.range",
            "sqlocal": "sqlocal.range",
            "pyodide": "pyodide.range",
        },
    ),
    "write_normal": (
        "Single durable write (WAL + synchronous=NORMAL; IndexedDB 'relaxed')",
        {
            "edgesql": f"{F}.write_normal.python",
            "edgesql_pm": f"{P}.write_normal.python",
            "other": "other.write_normal",
            "js": f"{F}.write_normal.js",
            "worker": f"{F}.write_normal.worker",
            "native": "native.write_normal",
            "idb": "idb.write_normal",
            "sqlocal": "sqlocal.write_normal",
            "pyscript": "pyscript.write",
            "pyodide": "pyodide.write_normal",
        },
    ),
    "write_full": (
        "Single durable write (WAL + synchronous=FULL; IndexedDB 'strict')",
        {
            "edgesql": f"{F}.write_full.python",
            "edgesql_pm": f"{P}.write_full.python",
            "js": f"{F}.write_full.js",
            "worker": f"{F}.write_full.worker",
            "native": "native.write_full",
            "idb": "idb.write_full",
            "sqlocal": "sqlocal.write_full",
        },
    ),
}

#: Rate operations: op → (label, unit, {contender: figure key}).
RATE_OPS: dict[str, tuple[str, str, dict[str, str]]] = {
    "burst": (
        "Write burst: single-row writes back to back, each its own transaction",
        "writes",
        {
            "edgesql": f"{F}.burst.python.writes_per_s",
            "edgesql_pm": f"{P}.burst.python.writes_per_s",
            "js": f"{F}.burst.js.writes_per_s",
            "worker": f"{F}.burst.worker.writes_per_s",
            "native": "native.burst.writes_per_s",
            "idb": "idb.burst.writes_per_s",
            "sqlocal": "sqlocal.burst.writes_per_s",
            "pyscript": "pyscript.burst.writes_per_s",
            "pyodide": "pyodide.burst.writes_per_s",
        },
    ),
    "bulk": (
        "Bulk insert: executemany in one transaction (IndexedDB: puts in one transaction)",
        "rows",
        {
            "edgesql": "executemany.rows_per_s",
            "js": "executemany_js.rows_per_s",
            "worker": "worker_raw.rows_per_s",
            "native": "native.bulk.rows_per_s",
            "idb": "idb.bulk.rows_per_s",
            "sqlocal": "sqlocal.bulk.rows_per_s",
            "pyodide": "pyodide.bulk.rows_per_s",
        },
    ),
}

#: Contenders issue 7 names that this harness does not run, and why (none left: SQLocal, the last
#: one, is measured by bench/workloads/sqlocal.py).
NOT_MEASURED: list[str] = []


def _fmt_ratio(x: float) -> str:
    """Like model.fmt_ratio, with two significant figures below 0.1× (native sqlite3, a dict)."""
    return f"{x:.2g}×" if x < 0.1 else fmt_ratio(x)


def _measured(x: float | None) -> float:
    """A figure to divide: NaN where it is missing or did not read above 0 (below the clock's step)."""
    return x if x is not None and x > 0 else math.nan


def _ratio(value: float, floor: float | None) -> str:
    return _fmt_ratio(ratio(_measured(value), _measured(floor)))


def _fmt_writes(rate: float) -> str:
    return fmt_rate(rate).replace("rows", "writes")


def side_by_side(sections: list[Section], cfg: Config) -> Section:
    """The side-by-side section, from every section's figures."""
    fig: dict[str, float] = {k: v for s in sections for k, v in s.figures.items()}
    tables: list[Table] = []
    figures: dict[str, float] = {}
    checks: list[Check] = []
    for op, (label, keys) in LATENCY_OPS.items():
        floor_w = fig.get(f"{keys['worker']}.p50_us")
        floor_js = fig.get(f"{keys['js']}.p50_us")
        rows = []
        for c, prefix in keys.items():
            p50, p99 = fig.get(f"{prefix}.p50_us"), fig.get(f"{prefix}.p99_us")
            if p50 is None or p99 is None:
                continue
            rows.append(
                [CONTENDERS[c], fmt_us(p50), fmt_us(p99), _ratio(p50, floor_w), _ratio(p50, floor_js)]
            )
            # A ratio that is unknown (a floor that read 0, below the clock's step) is left out.
            for name, floor in (("ratio_worker", floor_w), ("ratio_js", floor_js)):
                r = ratio(_measured(p50), _measured(floor))
                if math.isfinite(r):
                    figures[f"cmp.{op}.{c}.{name}"] = r
        if rows:
            tables.append(
                Table(
                    columns=["contender", "p50", "p99", "p50 ÷ worker floor", "p50 ÷ JS round trip"],
                    rows=rows,
                    caption=label,
                )
            )
    for op, (label, unit, keys) in RATE_OPS.items():
        floor_w, floor_js = fig.get(keys["worker"]), fig.get(keys["js"])
        rows = []
        for c, key in keys.items():
            rate = fig.get(key)
            if rate is None or not rate > 0:
                continue
            # time ÷ floor time = floor rate ÷ rate
            by_w = ratio(_measured(floor_w), rate)
            by_js = ratio(_measured(floor_js), rate)
            rows.append(
                [
                    CONTENDERS[c],
                    fmt_rate(rate).replace("rows", unit),
                    fmt_us(ratio(1e6, rate)),
                    _fmt_ratio(by_w) if math.isfinite(by_w) else "—",
                    _fmt_ratio(by_js) if math.isfinite(by_js) else "—",
                ]
            )
            if math.isfinite(by_w):
                figures[f"cmp.{op}.{c}.ratio_worker"] = by_w
            if math.isfinite(by_js):
                figures[f"cmp.{op}.{c}.ratio_js"] = by_js
        if rows:
            tables.append(
                Table(
                    columns=[
                        "contender",
                        "rate",
                        f"per {unit[:-1]}",
                        "time ÷ worker floor",
                        "time ÷ JS round trip",
                    ],
                    rows=rows,
                    caption=label,
                )
            )
    py, idb = fig.get(f"{F}.python.p50_us"), fig.get("idb.point.p50_us")
    if py is not None and idb is not None:
        checks.append(
            check(
                7, "Python point query p50 below a raw IndexedDB get (p50)", py, idb, at_most=True, fmt=fmt_us
            )
        )
    ours, sqlocal = fig.get("executemany.rows_per_s"), fig.get("sqlocal.bulk.rows_per_s")
    if ours is not None and sqlocal is not None:
        checks.append(
            check(
                7,
                "edgesql executemany ahead of SQLocal's bulk insert from JavaScript",
                ours,
                sqlocal,
                at_most=False,
                fmt=fmt_rate,
            )
        )
    checks += _pyscript_checks(fig)
    notes = ["Not measured in this run:", *[f"- {n}" for n in NOT_MEASURED]] if NOT_MEASURED else []
    if "sqlocal.point.p50_us" in fig:
        notes.insert(
            0,
            "*SQLocal*: SQLite-Wasm on the `opfs` VFS in SQLocal's own worker, called from page JavaScript "
            "on the fast-path page; each call is a message to its worker and a Web Lock, and its writes "
            "use SQLite's rollback journal (the `opfs` VFS has no WAL), so its NORMAL and FULL rows both "
            "sync at each commit (see its section).",
        )
    if "pyodide.point.p50_us" in fig:
        notes.insert(
            0,
            f"*{PYODIDE_LABEL}*: the stdlib `sqlite3` of the page's own Pyodide on `:memory:`. Nothing it "
            "holds survives a reload or a closed tab, so its single-write row promises no durability at "
            "all; it is here because it is what a Pyodide user has without installing anything.",
        )
    if "other.point.p50_us" in fig:
        notes.insert(
            0,
            "*Non-owner tab*: a second page of the same browser profile connected to the same database; "
            "its calls travel to its own worker, then over a BroadcastChannel to the owner tab's worker "
            f"and back (p50 {_fmt_ratio(fig.get('other.point.ratio_owner', math.nan))} the owner's on the same keys "
            "right after; see its section).",
        )
    if "pyscript.open_us" in fig:
        notes.insert(
            0,
            "`pyscript.storage`'s point read is a dict lookup: the whole store was read from IndexedDB "
            f"when it was opened ({fmt_us(fig['pyscript.open_us'])} for {cfg.pyscript_keys:,} keys on "
            "this run; see its section).",
        )
    return Section(
        key="side_by_side",
        title="Side by side: every contender against the floor",
        method=_method(cfg),
        tables=tables,
        checks=checks,
        figures=figures,
        notes=notes,
    )


#: Issue 7: edgesql faster per operation than pyscript.storage on every operation both can do.
#: (label, edgesql figure, pyscript figure, lower is better)
PYSCRIPT_PAIRS = (
    ("point read", f"{F}.python.p50_us", "pyscript.point.p50_us", True),
    ("single write + commit", f"{F}.write_normal.python.p50_us", "pyscript.write.p50_us", True),
    ("write burst", f"{F}.burst.python.writes_per_s", "pyscript.burst.writes_per_s", False),
    ("bulk write", "executemany.rows_per_s", "pyscript.bulk.rows_per_s", False),
)


def _pyscript_checks(fig: dict[str, float]) -> list[Check]:
    out = []
    for what, ours, theirs, lower in PYSCRIPT_PAIRS:
        if ours in fig and theirs in fig:
            fmt = fmt_us if lower else (_fmt_writes if "burst" in what else fmt_rate)
            out.append(
                check(
                    7, f"edgesql vs pyscript.storage: {what}", fig[ours], fig[theirs], at_most=lower, fmt=fmt
                )
            )
    return out


def _method(cfg: Config) -> list[str]:
    return [
        "One table per operation, from the sections below (same run, same data, same keys and "
        "parameters). p50 and p99 are medians over the page loads; the ratios divide a contender's "
        "p50 by the floor's p50: *worker floor* is SQLite-Wasm running the same statement alone in "
        "the worker (one timer per run), *JS round trip* is the same request sent from page "
        "JavaScript through the same bridge to the same worker (fast path). For the burst and the "
        "bulk insert the ratios divide times (the floor's rate by the contender's).",
        "Durability is stated per row: edgesql's worker and native sqlite3 use WAL; NORMAL survives a "
        "crash of the tab, the browser or the process but not a power cut, FULL also survives a power "
        "cut. IndexedDB's 'relaxed' and 'strict' are Chromium's closest equivalents.",
        "The live-query latency has no contender (neither IndexedDB nor `pyscript.storage` can watch "
        "a query); it is in the edgesql section below.",
    ]
