"""What a workload hands to the report: sections of tables, target checks, figures.

A workload never formats a document itself; it returns a :class:`Section`
and report.py renders every section the same way, on stdout and in
docs/benchmarks.md. ``figures`` carries the raw numbers under stable keys
(``"fast-path.python.p50_us"``) for tests and for later comparisons.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .browser import BenchPage
    from .config import Config

__all__ = [
    "UNAVAILABLE",
    "Check",
    "Section",
    "Table",
    "Workload",
    "check",
    "fmt_rate",
    "fmt_ratio",
    "fmt_times",
    "fmt_us",
]

#: How a figure that could not be computed reads in a table (stats.ratio's NaN: a divisor that
#: read 0, below the clock's step).
UNAVAILABLE = "—"


@dataclass
class Table:
    """A table of preformatted cells; the first column is the row's label."""

    columns: list[str]
    rows: list[list[str]]
    caption: str = ""
    #: How many leading columns hold text (left-aligned); the rest are figures.
    text_columns: int = 1


@dataclass(frozen=True)
class Check:
    """A target an issue sets, and whether this run met it."""

    issue: int
    what: str
    target: str
    measured: str
    met: bool


@dataclass
class Section:
    """One workload's results: how it was measured, its tables and its targets."""

    key: str
    title: str
    method: list[str]
    tables: list[Table]
    checks: list[Check] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: Raw per-call samples (µs) for the latency plot: operation → contender → samples.
    samples: dict[str, dict[str, list[float]]] = field(default_factory=dict)


class Workload(Protocol):
    """One benchmark workload.

    ``prepare`` runs once, on a setup page before any measured load (create
    tables, grow files), so that every measured page load starts from the
    same state: a database that exists and that this page has not written
    yet. ``measure`` runs on each measured page load (the bench database is
    open on it) and returns raw data; ``summarize`` gets every load's data,
    per bridge path, and returns the section.
    """

    key: str
    title: str
    #: The bridge paths it runs on (browser.FAST_PATH, browser.POSTMESSAGE).
    paths: tuple[str, ...]

    def prepare(self, page: BenchPage, cfg: Config) -> None: ...

    def measure(self, page: BenchPage, cfg: Config, load: int) -> dict[str, Any]: ...

    def summarize(self, loads: dict[str, list[dict[str, Any]]], cfg: Config) -> Section: ...


def check(
    issue: int,
    what: str,
    value: float,
    limit: float,
    *,
    at_most: bool,
    fmt: Callable[[float], str],
) -> Check:
    """Compare one figure with a target: ``value ≤ limit`` (at_most) or ``value ≥ limit``."""
    met = value <= limit if at_most else value >= limit
    return Check(issue, what, f"{'≤' if at_most else '≥'} {fmt(limit)}", fmt(value), met)


def fmt_us(us: float) -> str:
    """Microseconds, with sensible precision (``12.3 µs``, ``345 µs``, ``1.53 ms``)."""
    if math.isnan(us):
        return UNAVAILABLE
    if us >= 1000:
        return f"{us / 1000:.2f} ms"
    if us >= 100:
        return f"{us:.0f} µs"
    return f"{us:.1f} µs"


def fmt_ratio(x: float) -> str:
    """A ratio (``2.3×``, ``140×``); NaN, an unknown ratio, as ``—``."""
    if math.isnan(x):
        return UNAVAILABLE
    return f"{x:.1f}×" if x < 100 else f"{x:.0f}×"


def fmt_times(x: float, digits: int = 2, mark: str = "×") -> str:
    """A ratio to a fixed number of decimals (``1.23×``); NaN, an unknown ratio, as ``—``."""
    return UNAVAILABLE if math.isnan(x) else f"{x:.{digits}f}{mark}"


def fmt_rate(rows_per_s: float) -> str:
    """Rows per second, to three significant figures (``48.2k rows/s``, ``1.06M rows/s``)."""
    if math.isnan(rows_per_s):
        return UNAVAILABLE
    if rows_per_s >= 999_500:
        return f"{rows_per_s / 1e6:.3g}M rows/s"
    if rows_per_s >= 1000:
        return f"{rows_per_s / 1000:.3g}k rows/s"
    return f"{rows_per_s:.3g} rows/s"
