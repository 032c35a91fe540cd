"""A floor that reads 0 or a clock's step never crashes a benchmark report.

On a page that is not cross-origin isolated the clock moves in 100 µs
steps, so a round trip shorter than a step reads 0 in most calls and its
p50 is 0. Every ratio and rate the reports print divides by a measured
figure; these feed such figures to the report code, without a browser.
"""

from __future__ import annotations

import math
from typing import Any

from bench import sync_browser
from bench.config import QUICK
from bench.model import Section, fmt_rate, fmt_ratio, fmt_times, fmt_us
from bench.sidebyside import side_by_side
from bench.stats import ratio, split
from bench.sync_d1 import per_second
from bench.workloads.bulk_insert import BulkInsert
from bench.workloads.point_query import LAYER_ROWS, PointQuery

STEP_US = 100.0


def _quantized(true_us: list[float]) -> list[float]:
    """What a clock with 100 µs steps reads for calls of these durations (starting on a step)."""
    return [STEP_US * math.floor(us / STEP_US) for us in true_us]


def _point_load(js_us: float, ping_us: float) -> dict[str, Any]:
    """One postMessage page load's raw point-query data: every call waited, as on that path."""
    n = 40

    def waited(us: float) -> Any:
        return split(_quantized([us] * n), [True] * n)

    layers = {key: waited(300.0) for key, _ in LAYER_ROWS} | {
        "js_ping": waited(60.0),
        "py_ping": waited(250.0),
    }
    return {
        "python": waited(345.0),
        "python_exclusive": None,
        "js": waited(js_us),
        "ping": waited(ping_us),
        "worker_run": split([0.0] * n, [False] * n),
        "worker_sqlite_us": 12.7,
        "worker_request_us": 20.0,
        "worker_tx_us": 5.4,
        "worker_exclusive_us": 9.0,
        "worker_after_write_us": 14.0,
        "layers": layers,
        "samples": {"python": [345.0] * n, "js": [0.0] * n, "worker": [0.0] * n},
        "page_clock_us": STEP_US,
    }


def test_ratio_to_a_zero_or_missing_figure_is_unknown_not_an_error() -> None:
    assert ratio(6.0, 3.0) == 2.0
    for num, den in ((345.0, 0.0), (345.0, -1.0), (345.0, math.nan), (math.nan, 3.0), (1.0, math.inf)):
        assert math.isnan(ratio(num, den)), (num, den)
    assert fmt_ratio(ratio(345.0, 0.0)) == "—"
    assert fmt_rate(ratio(10_000, 0.0)) == "—"
    assert fmt_times(ratio(1.0, 0.0)) == "—"
    assert fmt_us(math.nan) == "—"
    assert fmt_ratio(ratio(345.0, 150.0)) == "2.3×"


def test_point_query_with_a_round_trip_below_the_clock_step() -> None:
    # The JS round trip and the ping take 60-80 µs: every call reads 0 on a 100 µs clock.
    section = PointQuery().summarize({"postmessage": [_point_load(80.0, 60.0)] * 3}, QUICK)
    latency = section.tables[0]
    rows = {row[0]: row for row in latency.rows}
    js = rows["raw JS round trip: same request, same bridge and worker"]
    ping = rows["raw JS round trip: `bench.ping`"]
    for row in (js, ping):
        assert row[1] == "< 100 µs"  # p50: below the clock's step, not "0.0 µs"
        assert row[5] == row[6] == "—"  # no ratio to a figure that read 0
    assert "read 0" in latency.caption
    # Python itself is measured, and its ratio to the in-worker loops (means) still stands.
    python = rows["edgesql from Python: `await db.execute(...)` + row"]
    assert python[1] == "300 µs" and python[5] == "1.0×"
    assert rows["in worker: request (parse, run, answer text)"][5] == "15.0×"
    (reading,) = section.notes
    assert "below the page clock's 100 µs step, so there is no p50 ratio" in reading
    assert "nan" not in reading.lower() and "inf" not in reading.lower()
    assert "postmessage.js.p50_us" in section.figures
    assert section.figures["postmessage.js.p50_us"] == 0.0


def test_point_query_with_a_quantized_round_trip_keeps_its_ratio() -> None:
    section = PointQuery().summarize({"postmessage": [_point_load(150.0, 120.0)]}, QUICK)
    rows = {row[0]: row for row in section.tables[0].rows}
    assert rows["raw JS round trip: same request, same bridge and worker"][1:2] == ["100 µs"]
    assert rows["raw JS round trip: same request, same bridge and worker"][5] == "3.0×"
    assert "read 0" not in section.tables[0].caption
    assert "200 µs above the raw JS round trip (3.0×)" in section.notes[0]


def test_bulk_insert_with_a_variant_that_read_zero_seconds() -> None:
    variant = {"seconds": 0.0, "count": 0}
    python = {"seconds": 1.0, "request_bytes": 10}
    python |= {k: 0.0 for k in ("before_call_s", "call_s", "wait_s", "after_s", "check_s")}
    python |= {k: 0.0 for k in ("dumps_s", "ffi_s", "parse_s", "plain_parse_s")}
    load = {"python": python, "js": variant, "engine": variant, "raw": variant}
    section = BulkInsert().summarize({"fast-path": [load]}, QUICK)
    results = section.tables[0]
    assert results.rows[1][2:] == ["—", "—"]
    assert math.isnan(section.figures["executemany_js.rows_per_s"])
    assert section.figures["executemany.rows_per_s"] == QUICK.bulk_rows


def test_side_by_side_leaves_out_a_ratio_to_a_zero_floor() -> None:
    # The worker floor read 0 (its clock is coarser than one statement): every ratio to it is
    # unknown, shown as "—" and absent from the figures; the ratio to the JS round trip stands.
    figures = {
        "fast-path.python.p50_us": 345.0,
        "fast-path.python.p99_us": 900.0,
        "fast-path.js.p50_us": 150.0,
        "fast-path.js.p99_us": 300.0,
        "fast-path.worker_run.p50_us": 0.0,
        "fast-path.worker_run.p99_us": 0.0,
        "executemany.rows_per_s": 100_000.0,
        "worker_raw.rows_per_s": math.nan,
        "executemany_js.rows_per_s": 0.0,
    }
    section = side_by_side([Section("x", "x", [], [], figures=figures)], QUICK)
    point = section.tables[0]
    assert [row[3] for row in point.rows] == ["—", "—", "—"]
    assert [row[4] for row in point.rows] == ["2.3×", "1.0×", "—"]
    assert not any(k.endswith("ratio_worker") for k in section.figures)
    assert section.figures["cmp.point.edgesql.ratio_js"] == 2.3
    bulk = section.tables[-1]
    assert [row[0] for row in bulk.rows] == ["edgesql from Python, fast path (owner tab)"]
    assert bulk.rows[0][3:] == ["—", "—"]


def test_sync_report_figures_with_a_zero_baseline() -> None:
    assert math.isnan(per_second(10_000, 0.0))
    assert per_second(10_000, 0.5) == 20_000
    assert math.isnan(sync_browser._ratio3(0.2, 0.0))
    assert sync_browser._x(math.nan) == "—"
    verdict = sync_browser._verdict(math.nan, 2.0, "x")
    assert verdict["met"] is False and "read 0" in verdict["text"]
