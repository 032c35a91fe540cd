"""Point SELECT by primary key from Python, next to its floor (issue 2).

On each page load, for the same random keys: edgesql from Python on the
main thread (``await db.execute`` and the row), the raw JavaScript round
trip with the very request text Python sends through the same bridge to the
same worker, a ``bench.ping`` round trip (transport alone), and the time
the worker itself spends (handling the request, and SQLite alone). Then a
Python call built up layer by layer, to show where the time goes, and a few
diagnostics that show what the worker's SQLite settings cost.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from ..browser import FAST_PATH, PATHS, BenchError, BenchPage
from ..config import Config
from ..model import Check, Section, Table, check, fmt_ratio, fmt_us
from ..stats import Latency, Split, combine_splits, median, ratio, split

__all__ = ["POINT_QUERY", "PointQuery"]

PING = '{"op":"bench.ping"}'
EXCLUSIVE = "locking_mode = EXCLUSIVE"
ROUND_TRIPS = "([texts, warm]) => edgesqlBench.roundTrips(texts, warm)"

#: Issue 2's targets (fast path: the page serve.py serves is cross-origin isolated).
TARGET_P50_US = 400.0
TARGET_P99_US = 1500.0
#: Issue 7's, for later: recorded now so progress shows.
LATER_P50_US = 150.0
LATER_P99_US = 1000.0

PATH_TITLES = {
    "fast-path": "Fast path: SharedArrayBuffer (page cross-origin isolated, as serve.py serves it)",
    "postmessage": "postMessage path (the same page served without COOP/COEP)",
}
PATH_SHORT = {"fast-path": "fast path", "postmessage": "postMessage path"}

#: The layer table's rows: (key from inpage.LAYERS, label). Each Python row adds one step.
LAYER_ROWS = (
    ("js", "raw JS round trip: `bridge.callSync` from JavaScript"),
    ("py_call", "+ the same call made from Python (FFI: request str in, answer str out)"),
    ("py_dumps", "+ `dumps`: the request encoded to JSON in Python"),
    ("py_loads", "+ `loads`: the answer decoded in Python"),
    ("py_result", "+ `ResultSet` and `rows[0]`"),
    ("py_backend", "+ the backend coroutine (`BrowserBackend.execute`, `_call`)"),
    ("py_execute", "+ `Connection.execute` (checks): the whole `await db.execute(...)` + row"),
)


#: Sample series for the latency plot: layer → label (the labels edgesql_ops uses too).
SAMPLE_LABELS = {"python": "edgesql Python", "js": "raw JS round trip", "worker": "SQLite-Wasm in worker"}


def table_name(cfg: Config) -> str:
    return f"points_{cfg.table_rows}"


def point_sql(cfg: Config) -> str:
    return f"SELECT id, name, value FROM {table_name(cfg)} WHERE id = ?"


class PointQuery:
    """Workload: point SELECT by primary key, back to back."""

    key = "point_query"
    title = "Point query by primary key"
    paths: tuple[str, ...] = PATHS

    def prepare(self, page: BenchPage, cfg: Config) -> None:
        page.call("ensure_points", table=table_name(cfg), rows=cfg.table_rows)

    def measure(self, page: BenchPage, cfg: Config, load: int) -> dict[str, Any]:
        sql = point_sql(cfg)
        keys = random.Random(cfg.seed + load).choices(range(1, cfg.table_rows + 1), k=cfg.iterations)
        page.set_keys(keys)
        py = page.call("point_query", sql=sql, warm=cfg.warmup)
        if py["wrong"]:
            raise BenchError(f"{py['wrong']} point queries returned the wrong row")
        texts = page.call_sync("request_texts", sql=sql)
        js = page.js(ROUND_TRIPS, [texts, cfg.warmup])
        ping = page.js(ROUND_TRIPS, [[PING] * len(keys), cfg.warmup])
        worker = page.call("worker_point", sql=sql)
        # Then what changes the connection's state. The layers run under
        # EXCLUSIVE locking, so that the worker's per-statement journal check
        # (milliseconds, irregular) does not drown the Python layers; then
        # Python again with EXCLUSIVE; last, the worker loop once this page
        # has written (SQLite then keeps the journal file open).
        page.set_keys(keys[: cfg.layer_iterations])
        layers = page.call("layers", sql=sql, pragma=EXCLUSIVE)
        page.set_keys(keys)
        py_exclusive = None
        if page.info.get("locking_mode") != "exclusive":  # else it is the headline again
            py_exclusive = page.call("point_query", sql=sql, warm=cfg.warmup, pragma=EXCLUSIVE)
        after_write = page.call("worker_after_write", sql=sql)
        return {
            "python": split(py["us"], py["waited"]),
            "python_exclusive": py_exclusive and split(py_exclusive["us"], py_exclusive["waited"]),
            "js": split(js["us"], js["waited"]),
            "ping": split(ping["us"], ping["waited"]),
            "worker_run": split(worker["us"], [False] * len(worker["us"])),
            "worker_sqlite_us": worker["sqlite_loop_us"],
            "worker_request_us": worker["request_loop_us"],
            "worker_tx_us": worker["sqlite_tx_loop_us"],
            "worker_exclusive_us": worker["sqlite_exclusive_loop_us"],
            "worker_after_write_us": after_write["sqlite_loop_us"],
            "layers": {name: split(v["us"], v["waited"]) for name, v in layers.items()},
            # The step of the clock that timed the page's calls: a call shorter than it can read 0.
            "page_clock_us": page.info["page_clock_us"],
            # Raw per-call samples for the latency plot (bench/plot.py).
            "samples": {"python": py["us"], "js": js["us"], "worker": worker["us"]},
        }

    def summarize(self, loads: dict[str, list[dict[str, Any]]], cfg: Config) -> Section:
        tables: list[Table] = []
        checks: list[Check] = []
        figures: dict[str, float] = {}
        notes: list[str] = []
        samples: dict[str, list[float]] = {}
        for path, data in loads.items():
            if not data:
                continue
            for layer, label in SAMPLE_LABELS.items():
                if path == FAST_PATH or layer == "python":
                    name = label + ("" if path == FAST_PATH else " (postMessage)")
                    samples[name] = [u for d in data for u in d["samples"][layer]]
            p = _PathResult.of(data)
            tables += [_latency_table(path, p), _layers_table(path, p)]
            figures.update(p.figures(path))
            notes.append(_reading(path, p))
            if path == FAST_PATH:
                py = p.py.all
                checks += [
                    check(2, "Python point query p50", py.p50, TARGET_P50_US, at_most=True, fmt=fmt_us),
                    check(2, "Python point query p99", py.p99, TARGET_P99_US, at_most=True, fmt=fmt_us),
                    check(7, "Python point query p50", py.p50, LATER_P50_US, at_most=True, fmt=fmt_us),
                    check(7, "Python point query p99", py.p99, LATER_P99_US, at_most=True, fmt=fmt_us),
                ]
        return Section(
            key=self.key,
            title=self.title,
            method=_method(cfg),
            tables=tables,
            checks=checks,
            figures=figures,
            notes=notes,
            samples={"point": samples},
        )


@dataclass(frozen=True)
class _PathResult:
    """One bridge path's figures, each the median over the page loads."""

    loads: int
    py: Split
    #: Python after the app sets locking_mode=EXCLUSIVE; None where the worker already does.
    py_exclusive: Split | None
    js: Split
    ping: Split
    run: Split
    #: Per-call means of the in-worker loops (µs).
    request_us: float
    sqlite_us: float
    sqlite_tx_us: float
    sqlite_exclusive_us: float
    sqlite_after_write_us: float
    layers: dict[str, Split]
    #: The coarsest step of the page's clock over the loads (µs).
    clock_us: float

    @classmethod
    def of(cls, data: list[dict[str, Any]]) -> _PathResult:
        def splits(key: str) -> Split:
            return combine_splits([d[key] for d in data])

        def med(key: str) -> float:
            return median([d[key] for d in data])

        return cls(
            loads=len(data),
            py=splits("python"),
            py_exclusive=None if data[0]["python_exclusive"] is None else splits("python_exclusive"),
            js=splits("js"),
            ping=splits("ping"),
            run=splits("worker_run"),
            request_us=med("worker_request_us"),
            sqlite_us=med("worker_sqlite_us"),
            sqlite_tx_us=med("worker_tx_us"),
            sqlite_exclusive_us=med("worker_exclusive_us"),
            sqlite_after_write_us=med("worker_after_write_us"),
            layers={k: combine_splits([d["layers"][k] for d in data]) for k in data[0]["layers"]},
            clock_us=max(d["page_clock_us"] for d in data),
        )

    def figures(self, path: str) -> dict[str, float]:
        out: dict[str, float] = {}
        latencies = {"python": self.py, "js": self.js, "ping": self.ping, "worker_run": self.run}
        if self.py_exclusive is not None:
            latencies["python_exclusive"] = self.py_exclusive
        for name, sp in latencies.items():
            out |= {f"{path}.{name}.p50_us": sp.all.p50, f"{path}.{name}.p99_us": sp.all.p99}
            out |= {f"{path}.{name}.mean_us": sp.all.mean, f"{path}.{name}.waited_share": sp.waited_share}
        out |= {
            f"{path}.worker_request.mean_us": self.request_us,
            f"{path}.worker_sqlite.mean_us": self.sqlite_us,
            f"{path}.worker_sqlite_tx.mean_us": self.sqlite_tx_us,
            f"{path}.worker_sqlite_exclusive.mean_us": self.sqlite_exclusive_us,
            f"{path}.worker_sqlite_after_write.mean_us": self.sqlite_after_write_us,
        }
        out |= {f"{path}.layer.{k}.typical_us": v.typical for k, v in self.layers.items()}
        return out


def _pct(share: float) -> str:
    return "—" if math.isnan(share) else f"{100 * share:.0f}%"


def _page_us(us: float, clock_us: float) -> str:
    """A figure timed by the page's clock: one that read 0 is shown as below the clock's step."""
    return fmt_us(us) if us > 0 else f"< {fmt_us(clock_us)}"


def _above_js(p: _PathResult) -> str:
    """How far Python's p50 is above the raw JS round trip, in µs and as a ratio.

    The round trip can read 0 at the p50 on a page whose clock steps by
    100 µs; the means, each an average over every call, still tell the ratio.
    """
    py, js = p.py.all, p.js.all
    if js.p50 > 0:
        return f"{fmt_us(py.p50 - js.p50)} above the raw JS round trip ({fmt_ratio(ratio(py.p50, js.p50))})"
    return (
        f"{fmt_us(py.p50)}, while the raw JS round trip's p50 read below the page clock's "
        f"{fmt_us(p.clock_us)} step, so there is no p50 ratio; by the means, Python takes "
        f"{fmt_ratio(ratio(py.mean, js.mean))} the round trip"
    )


def _reading(path: str, p: _PathResult) -> str:
    """One generated paragraph per path on what the figures say."""
    py, js = p.py, p.js
    waits = ""
    if 0 < py.waited_share < 1:
        waits = (
            f" {_pct(py.waited_share)} of Python's calls and {_pct(js.waited_share)} of the JS calls "
            "were not answered while the page spun on the SharedArrayBuffer and waited on the event "
            f"loop: those took {fmt_us(py.waited_p50)} (p50) from Python and {fmt_us(js.waited_p50)} "
            "from JS, and they make the p99."
        )
    return (
        f"*{PATH_SHORT.get(path, path)}:* Python's p50 is {_above_js(p)}.{waits} In the worker a point query "
        f"costs {fmt_us(p.sqlite_us)} per statement in autocommit on a page that has not written yet, "
        f"{fmt_us(p.sqlite_after_write_us)} once it has, {fmt_us(p.sqlite_tx_us)} inside one read "
        f"transaction and {fmt_us(p.sqlite_exclusive_us)} with `locking_mode=EXCLUSIVE`"
        + (
            "."
            if p.py_exclusive is None
            else f"; from Python, EXCLUSIVE gives p50 {fmt_us(p.py_exclusive.all.p50)} "
            f"and p99 {fmt_us(p.py_exclusive.all.p99)}."
        )
    )


def _method(cfg: Config) -> list[str]:
    return [
        f"Table `{table_name(cfg)}(id INTEGER PRIMARY KEY, name TEXT, value REAL)`, "
        f"{cfg.table_rows:,} rows, in the OPFS database `{cfg.db_name}` (opfs-sahpool VFS); "
        f"query `{point_sql(cfg)}`.",
        f"Each page load draws {cfg.iterations:,} random keys (seeded) and every layer below queries "
        f"exactly those keys, back to back, after {cfg.warmup:,} untimed warm-up calls.",
        "**Python**: `rs = await db.execute(sql, (k,)); rs.rows[0]` on the main thread, each call timed "
        "with `time.perf_counter_ns()`.",
        "**Raw JS round trip**: from JavaScript on the same page, `bridge.callSync(text)` (and "
        "`await bridge.wait(ticket)` only when the answer did not come back at once) with the request "
        "text Python's encoder produced for that key: same bridge, same worker, same session; each "
        'call timed with `performance.now()`. **Ping**: the same with `{"op":"bench.ping"}`, '
        "the transport alone.",
        "**In worker**: `bench.loop` runs the statement for every key back to back under one "
        "timer (per call = total ÷ n, because `performance.now()` is coarser than one query): "
        "*request* parses the request text, runs it and writes the answer as a real request does; "
        "*SQLite* is `Database.run` alone (bind, step, row to JSON). Its p50/p99 come from "
        "`bench.repeat`, one timer per run, so they are only as fine as the worker's clock.",
        "Ratio columns: Python's p50 (p99) divided by that layer's p50 (p99); for the in-worker "
        "layers, divided by the per-call mean of the loop. *Waited*: the share of calls not answered "
        "while the page spun on the SharedArrayBuffer (0.5 ms), which then waited for their answer "
        "on the event loop; on the postMessage path every call does.",
        "Every page opens the database afresh and has written nothing to it when the point queries "
        "run: the state of an app that has just loaded. *Diagnostic* rows are not targets: the "
        "in-worker loop after the page has written one row, inside one read transaction, and with "
        "`locking_mode = EXCLUSIVE`; and Python again after the app sets EXCLUSIVE (set back "
        "afterwards; skipped where the worker already opens databases that way). Whatever changes "
        "the connection's state runs after the headline figures.",
        f"**Where the time goes**: {cfg.layer_iterations:,} of the same keys, one call built up layer "
        "by layer (each row adds one step to the row above), the variants taking turns in blocks "
        "of 50 keys, under `locking_mode = EXCLUSIVE` (set unless the worker already uses it), so "
        "that SQLite's per-statement hot-journal check, milliseconds on OPFS in the default locking "
        "mode, never drowns the Python layers (the worker rows come from the loops above). *IQM* "
        "is the interquartile mean (the mean of the middle half) of the calls answered at once (of "
        "all calls where most waited): finer than the clock's steps, and free of the waits and of "
        "stray slow calls. *Added* is the difference to the row above: what that layer costs in "
        "place.",
    ]


def _latency_table(path: str, p: _PathResult) -> Table:
    py = p.py.all

    def row(label: str, sp: Split) -> list[str]:
        lat: Latency = sp.all
        return [
            label,
            _page_us(lat.p50, p.clock_us),
            _page_us(lat.p99, p.clock_us),
            fmt_us(lat.mean),
            _pct(sp.waited_share),
            fmt_ratio(ratio(py.p50, lat.p50)),
            fmt_ratio(ratio(py.p99, lat.p99)),
        ]

    def loop_row(label: str, p50: str, p99: str, mean: float) -> list[str]:
        return [
            label,
            p50,
            p99,
            fmt_us(mean),
            "",
            fmt_ratio(ratio(py.p50, mean)),
            fmt_ratio(ratio(py.p99, mean)),
        ]

    run = p.run.all
    rows = [row("edgesql from Python: `await db.execute(...)` + row", p.py)]
    if p.py_exclusive is not None:
        rows.append(row("  diagnostic: the same after `PRAGMA locking_mode = EXCLUSIVE`", p.py_exclusive))
    rows += [
        row("raw JS round trip: same request, same bridge and worker", p.js),
        row("raw JS round trip: `bench.ping`", p.ping),
        loop_row("in worker: request (parse, run, answer text)", "—", "—", p.request_us),
        loop_row(
            "in worker: SQLite (`Database.run`: bind, step, row to JSON)",
            fmt_us(run.p50),
            fmt_us(run.p99),
            p.sqlite_us,
        ),
        loop_row("  diagnostic: the same once this page has written", "—", "—", p.sqlite_after_write_us),
        loop_row("  diagnostic: the same inside one read transaction", "—", "—", p.sqlite_tx_us),
        loop_row("  diagnostic: the same with `locking_mode=EXCLUSIVE`", "—", "—", p.sqlite_exclusive_us),
    ]
    spread = f"Python p50 over the {p.loads} page loads: {fmt_us(py.p50_low)} to {fmt_us(py.p50_high)}."
    timed = [p.py, p.js, p.ping] + ([p.py_exclusive] if p.py_exclusive else [])
    if any(sp.all.p50 <= 0 or sp.all.p99 <= 0 for sp in timed):
        spread += (
            f" A figure shown as < {fmt_us(p.clock_us)} read 0: most calls took less than one step of "
            "the page's clock, so a ratio to it is unknown (—)."
        )
    return Table(
        columns=["layer", "p50", "p99", "mean", "waited", "Python p50 ÷", "Python p99 ÷"],
        rows=rows,
        caption=f"{PATH_TITLES.get(path, path)}. Medians over {p.loads} page load(s). {spread}",
    )


def _layers_table(path: str, p: _PathResult) -> Table:
    layers = p.layers
    whole = layers["py_execute"].typical
    rows: list[list[str]] = []
    previous: float | None = None
    for key, label in LAYER_ROWS:
        sp = layers[key]
        added = "" if previous is None else fmt_us(sp.typical - previous)
        share = "" if previous is None else _pct(ratio(sp.typical - previous, whole))
        rows.append([label, fmt_us(sp.all.p50), fmt_us(sp.typical), added, share, _pct(sp.waited_share)])
        previous = sp.typical
    rows[0][4] = _pct(ratio(layers["js"].typical, whole))

    def extra(label: str, mean: float, sp: Split | None = None) -> list[str]:
        p50, waited = (fmt_us(sp.all.p50), _pct(sp.waited_share)) if sp else ("", "")
        return [label, p50, fmt_us(mean), "", "", waited]

    rows += [
        extra("  of which, in the worker: SQLite, EXCLUSIVE (loop above)", p.sqlite_exclusive_us),
        extra("  of which, in the worker: parse the request, write the answer", p.request_us - p.sqlite_us),
        extra("for scale: `bench.ping` from JavaScript", layers["js_ping"].typical, layers["js_ping"]),
        extra("for scale: `bench.ping` from Python", layers["py_ping"].typical, layers["py_ping"]),
    ]
    return Table(
        columns=["where the time goes", "p50", "IQM", "added", "share", "waited"],
        rows=rows,
        caption=f"One Python point query built up layer by layer, {PATH_SHORT.get(path, path)}, "
        "with `locking_mode = EXCLUSIVE`. Medians over the loads.",
    )


POINT_QUERY = PointQuery()
