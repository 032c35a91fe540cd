"""bench/sync_browser.py runs end to end on tiny sizes and every figure it reports is real.

Speed is not asserted (the machine is shared): `python -m bench.sync_browser` measures the
full sizes and writes docs/benchmarks-sync.md with the verdicts against issues 3 and 4.
Here: every figure is a positive finite number, the fresh browser pulled exactly the rows
the CPython replica seeded, and the report renders.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from bench.sync_browser import TARGETS, percentile, render, run

pytestmark = pytest.mark.browser

ROWS = 500


def _positive(where: str, value: Any) -> None:
    assert isinstance(value, int | float) and not isinstance(value, bool), f"{where}: {value!r}"
    assert math.isfinite(value) and value > 0, f"{where} = {value!r}"


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([3.0], 99) == 3.0


def test_the_sync_benchmark_measures_everything(playwright: Any, tmp_path: Path) -> None:
    report = run(rows=ROWS, changes=200, capture_rows=200, repeat=1, queries=50, playwright=playwright)

    for way, fig in report["push"]["results"].items():
        for key in ("median_s", "changes_per_s", "cells_per_s"):
            _positive(f"push {way} {key}", fig[key])

    pull = report["pull"]
    assert report["seed"]["rows"] == ROWS
    for name, r in pull["runs"].items():
        assert r["items"] == ROWS and r["pulled"] == ROWS, (name, r)
        assert r["pending"] == 0 and r["last_error"] is None, (name, r)
        for key in ("connect_s", "pull_s", "total_s", "request_s"):
            _positive(f"{name} {key}", r[key])
        assert r["requests"] >= 1
        if r["mode"] == "queries":
            for phase in ("queries_before", "queries_during", "queries_after"):
                assert r[phase]["n"] > 0
                for key in ("p50_ms", "p99_ms", "max_ms"):
                    _positive(f"{name} {phase} {key}", r[phase][key])
            _positive(f"{name} p99_ratio", r["p99_ratio"])
    _positive("rows/s", pull["rows_per_s"])
    d1 = report["pull_d1"]  # the same first pull from local D1 (Miniflare)
    assert d1["items"] == ROWS and d1["pulled"] == ROWS and d1["pending"] == 0 and d1["last_error"] is None
    _positive("D1 pull", d1["total_s"])
    _positive("plain HTTP pull", pull["http_pull"]["seconds"])
    assert pull["http_pull"]["changes"] == ROWS
    assert pull["storage"] == "opfs-sahpool" and pull["fast_path"] is True

    for where in ("browser", "cpython"):
        for how in ("execute", "executemany"):
            fig = report["capture"][where][how]
            for key in ("synced", "local"):
                _positive(f"capture {where} {how} {key}", fig[key]["median_s"])
            _positive(f"capture {where} {how} ratio", fig["ratio"])
        _positive(
            f"capture {where} statement p99",
            report["capture"][where]["execute"]["synced_statement"]["p99_ms"],
        )

    assert set(report["verdicts"]) >= {"push_embedded", "push_d1", "pull", "pull_query_p99"}
    for v in report["verdicts"].values():
        assert isinstance(v["met"], bool) and v["target"] in TARGETS.values()
    assert report["chromium"] and report["machine"]["cores"] >= 1
    doc = render(report)
    (tmp_path / "benchmarks-sync.md").write_text(doc)
    assert "| first pull of 500 rows" in doc and "## 3. Capture cost" in doc
    assert "**From local D1**" in doc
