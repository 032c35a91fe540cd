"""The summary every contender's section shares: per-operation latencies and rate rows.

Native sqlite3, raw IndexedDB, SQLocal and Pyodide's sqlite3 each measure the
same operations (bench/shapes.py) on every page load; this turns their loads
into figures under ``<prefix>.<op>.p50_us``/``p99_us``/``mean_us``, samples
for the plot, and rows of the section's table, so each workload module only
says what is particular to it.
"""

from __future__ import annotations

from typing import Any

from .model import fmt_rate, fmt_us
from .stats import combine, ratio, summarize

__all__ = ["latency_rows", "rate_row"]


def latency_rows(
    data: list[dict[str, Any]], ops: dict[str, str], prefix: str, series: str
) -> tuple[dict[str, float], dict[str, dict[str, list[float]]], list[list[str]]]:
    """Figures, plot samples and table rows for the latency operations ``ops`` (key → label)."""
    figures: dict[str, float] = {}
    samples: dict[str, dict[str, list[float]]] = {}
    rows: list[list[str]] = []
    for op, label in ops.items():
        lat = combine([summarize(d[op]["us"]) for d in data])
        figures |= {f"{prefix}.{op}.p50_us": lat.p50, f"{prefix}.{op}.p99_us": lat.p99}
        figures[f"{prefix}.{op}.mean_us"] = lat.mean
        samples[op] = {series: [u for d in data for u in d[op]["us"]]}
        rows.append([label, fmt_us(lat.p50), fmt_us(lat.p99), fmt_us(lat.mean)])
    return figures, samples, rows


def rate_row(label: str, seconds: float, count: int, unit: str = "rows") -> list[str]:
    """A table row for ``count`` writes or rows done in ``seconds``: time and rate."""
    return [label, f"{seconds * 1000:.0f} ms", "", fmt_rate(ratio(count, seconds)).replace("rows", unit)]
