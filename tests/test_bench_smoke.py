"""The benchmark harness runs end to end in quick mode and renders a well-formed report.

Speed is never asserted here: only that every workload produced real
numbers on both bridge paths, and that the markdown and the text table
hold them. The figures themselves go to docs/benchmarks.md via `make bench`.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import matplotlib  # noqa: F401  (a dev dependency: the plot test must run, never skip)
import pytest
from bench.config import QUICK
from bench.plot import collect_samples, write_plot
from bench.report import render_markdown, render_text
from bench.runner import run

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def report(playwright: Any, server: Any) -> Any:
    return run(QUICK, playwright=playwright, base_url=server.url, log=lambda _msg: None)


def test_every_figure_is_a_positive_number(report: Any) -> None:
    figures = {k: v for s in report.sections for k, v in s.figures.items()}
    expected = [
        f"{path}.{layer}.{stat}"
        for path in ("fast-path", "postmessage")
        for layer in ("python", "js", "ping", "worker_run")
        for stat in ("p50_us", "p99_us", "mean_us")
    ] + [
        "fast-path.worker_sqlite.mean_us",
        "postmessage.worker_request.mean_us",
        "executemany.rows_per_s",
        "executemany_js.rows_per_s",
        "postmessage.worker_sqlite_after_write.mean_us",
        "worker_engine.rows_per_s",
        "worker_raw.rows_per_s",
    ]
    expected += [
        f"{path}.{op}.{variant}.{stat}"
        for path in ("fast-path", "postmessage")
        for op in ("range", "write_normal", "write_full", "burst")
        for variant in ("python", "js", "worker")
        for stat in ("p50_us", "p99_us", "mean_us")
    ]
    expected += [f"{path}.burst.python.writes_per_s" for path in ("fast-path", "postmessage")]
    expected += [
        f"{path}.watch.{stat}" for path in ("fast-path", "postmessage") for stat in ("p50_us", "p99_us")
    ]
    expected += [
        f"native.{op}.{stat}"
        for op in ("point", "range", "write_normal", "write_full", "burst")
        for stat in ("p50_us", "p99_us", "mean_us")
    ]
    expected += ["native.burst.writes_per_s", "native.bulk.rows_per_s"]
    expected += [
        f"idb.{op}.{stat}"
        for op in ("point", "write_normal", "write_full", "burst")
        for stat in ("p50_us", "p99_us", "mean_us")
    ]
    expected += ["idb.burst.writes_per_s", "idb.bulk.rows_per_s"]
    # SQLocal from page JavaScript, on OPFS (the workload fails the run on its memory fallback).
    expected += [
        f"sqlocal.{op}.{stat}"
        for op in ("point", "range", "write_normal", "write_full", "burst")
        for stat in ("p50_us", "p99_us", "mean_us")
    ]
    expected += ["sqlocal.burst.writes_per_s", "sqlocal.bulk.rows_per_s", "sqlocal.open_ms"]
    expected += [
        f"pyscript.{op}.{stat}" for op in ("point", "write", "burst") for stat in ("p50_us", "p99_us")
    ]
    expected += ["pyscript.open_us", "pyscript.burst.writes_per_s", "pyscript.bulk.rows_per_s"]
    expected += [
        f"cmp.{op}.pyscript.{r}"
        for op in ("point", "write_normal", "burst")
        for r in ("ratio_worker", "ratio_js")
    ]
    # Pyodide's own sqlite3, in memory (no synchronous=FULL run: nothing to flush).
    expected += [
        f"pyodide.{op}.{stat}"
        for op in ("point", "range", "write_normal", "burst")
        for stat in ("p50_us", "p99_us", "mean_us")
    ]
    expected += ["pyodide.burst.writes_per_s", "pyodide.bulk.rows_per_s", "pyodide.fill_s"]
    # edgesql from a second page that does not own the database, and the owner right after.
    expected += [
        f"other.{op}.{stat}"
        for op in ("point", "owner_point", "write_normal")
        for stat in ("p50_us", "p99_us", "mean_us")
    ]
    expected += ["other.point.ratio_owner"]
    # The side-by-side ratios to the floor, for every contender on every operation it can do.
    ops = ("point", "range", "write_normal", "write_full", "burst", "bulk")
    contenders = ("edgesql", "js", "worker", "native", "idb", "pyodide", "other", "sqlocal")
    cannot = {
        ("idb", "range"),
        ("pyodide", "write_full"),
        *(("other", op) for op in ops if op not in ("point", "write_normal")),
    }
    expected += [
        f"cmp.{op}.{c}.{ratio}"
        for op in ops
        for c in contenders
        if (c, op) not in cannot
        for ratio in ("ratio_worker", "ratio_js")
    ]
    missing = [k for k in expected if k not in figures]
    assert not missing, f"figures missing: {missing}"
    # A worker run (~15 µs) is shorter than the non-isolated page's clock's
    # 100 µs step, so its p50/p99 there may honestly read 0; its mean may not.
    coarse = {
        f"{path}.{layer}.{stat}"
        for path, page in report.env.pages.items()
        if page["worker_clock_us"] >= 50
        for layer in (
            "worker_run",
            "range.worker",
            "write_normal.worker",
            "write_full.worker",
            "burst.worker",
        )
        for stat in ("p50_us", "p99_us")
    }
    # The same for the page's clock: a round trip of 60-150 µs timed by a clock that moves in
    # 100 µs steps reads 0 in most calls, so its p50 may read 0 too (the report then shows the
    # ratio to it as unknown: tests/test_bench_ratios.py).
    coarse |= {
        f"{path}.{layer}.p50_us"
        for path, page in report.env.pages.items()
        if page["page_clock_us"] >= 50
        for layer in ("js", "ping")
    }
    bad = {
        k: figures[k]
        for k in expected
        if not (math.isfinite(figures[k]) and (figures[k] > 0 or (k in coarse and figures[k] == 0)))
    }
    assert not bad, f"figures that are not positive numbers: {bad}"
    # Without a SharedArrayBuffer every call waits for its answer on the event loop.
    assert figures["postmessage.js.waited_share"] == 1
    assert figures["postmessage.python.waited_share"] == 1


def test_pages_ran_where_the_report_says(report: Any) -> None:
    pages = report.env.pages
    assert set(pages) == {"fast-path", "postmessage"}
    assert pages["fast-path"]["fast_path"] is True and pages["postmessage"]["fast_path"] is False
    assert {p["storage"] for p in pages.values()} == {"opfs-sahpool"}
    assert all(p["page_clock_us"] > 0 and p["worker_clock_us"] > 0 for p in pages.values())
    # Every measured page owns the bench database (the non-owner runs on a second page).
    assert all(p["owner"] is True for p in pages.values())


def test_markdown_report_is_well_formed(report: Any) -> None:
    md = render_markdown(report)
    assert md.startswith("# edgesql benchmarks\n")
    for heading in ("## Machine and versions", "## Targets", "## How it is measured"):
        assert heading in md
    for section in report.sections:
        assert f"## {section.title}" in md
    # Every markdown table: a header, a separator, and rows with as many cells as the header.
    tables = re.findall(r"((?:^\|.*\|\n)+)", md, flags=re.M)
    assert len(tables) >= 2 + sum(len(s.tables) for s in report.sections)
    for table in tables:
        lines = table.strip("\n").split("\n")
        width = _cells(lines[0])
        assert re.fullmatch(r"\|( -+:? \|)+", lines[1]), lines[1]
        assert len(lines) >= 3
        assert all(_cells(line) == width for line in lines), table
    assert "This was a `--quick` run" in md  # quick figures are never mistaken for the record
    for c in report.checks:
        assert f"| {c.measured} |" in md


def test_text_report_lists_every_target(report: Any) -> None:
    text = render_text(report)
    assert len(report.checks) == 14
    for c in report.checks:
        assert f"issue {c.issue}: {c.what} {c.target} (measured {c.measured})" in text


def test_side_by_side_comes_first_and_measures_every_contender(report: Any) -> None:
    first = report.sections[0]
    assert first.key == "side_by_side"
    assert first.figures["cmp.point.worker.ratio_worker"] == 1
    md = render_markdown(report)
    assert "SQLocal" in md
    # Measured now: in the side-by-side tables, labelled as not persistent; and no longer listed
    # among what was not measured.
    labels = {row[0] for t in first.tables for row in t.rows}
    assert "Pyodide's sqlite3, in memory — not persistent (Python, same page)" in labels
    assert any("non-owner tab" in label for label in labels)
    assert any(label.startswith("SQLocal from JavaScript") for label in labels)
    # Every contender issue 7 names is measured: nothing is listed as not measured.
    assert "Not measured in this run:" not in md
    assert any(c.what.startswith("edgesql executemany ahead of SQLocal") for c in report.checks)


def test_sqlocal_ran_on_opfs(report: Any) -> None:
    section = next(s for s in report.sections if s.key == "sqlocal")
    md = render_markdown(report)
    assert "`getDatabaseInfo().storageType` is `opfs`" in md
    assert "journal_mode=delete" in " ".join(section.method)


def test_latency_plot(report: Any, tmp_path: Path) -> None:
    png = tmp_path / "latency.png"
    assert write_plot(report.sections, png, "smoke") is None
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(collect_samples(report.sections)) >= {"point", "range", "write_normal", "burst", "watch"}


def _cells(line: str) -> int:
    return len(re.split(r"(?<!\\)\|", line.strip())) - 2
