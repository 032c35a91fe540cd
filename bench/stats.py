"""Percentiles of per-call samples, and how several page loads are combined.

Each page load gives its own distribution; a run reports, for each
statistic, the median over the loads (the median of per-load medians, the
median of per-load p99s), so one bad load — a GC storm, a neighbour on the
CPU — moves nothing. The spread of the per-load p50s is kept for the report.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "Latency",
    "Split",
    "combine",
    "combine_splits",
    "iqm",
    "median",
    "percentile",
    "ratio",
    "split",
    "summarize",
]


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) by linear interpolation between closest ranks."""
    if not samples:
        raise ValueError("no samples")
    xs = sorted(samples)
    pos = (len(xs) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def ratio(num: float, den: float) -> float:
    """``num / den``, or NaN where either is not a finite figure or ``den`` is not above 0.

    Every ratio and rate in a report divides by something measured, and a
    measured figure can read 0: a page that is not cross-origin isolated
    has a clock that moves in 100 µs steps, so a round trip shorter than
    one step reads 0 in most calls and its p50 is 0. The ratio is then
    unknown, not infinite: the report shows it as unavailable (model.py's
    formatters print NaN as "—") instead of crashing.
    """
    if not (math.isfinite(num) and math.isfinite(den)) or den <= 0:
        return math.nan
    return num / den


@dataclass(frozen=True)
class Latency:
    """A latency distribution in microseconds (one load, or the median over loads)."""

    p50: float
    p99: float
    mean: float
    n: int
    #: Lowest and highest per-load p50 (equal to p50 for a single load).
    p50_low: float
    p50_high: float


def summarize(samples: Sequence[float]) -> Latency:
    """One page load's samples (µs) as a Latency."""
    p50 = percentile(samples, 0.5)
    return Latency(
        p50=p50,
        p99=percentile(samples, 0.99),
        mean=statistics.fmean(samples),
        n=len(samples),
        p50_low=p50,
        p50_high=p50,
    )


def combine(loads: Sequence[Latency]) -> Latency:
    """Several page loads as one Latency: the median of each statistic over the loads."""
    if not loads:
        raise ValueError("no page loads")
    return Latency(
        p50=statistics.median(x.p50 for x in loads),
        p99=statistics.median(x.p99 for x in loads),
        mean=statistics.median(x.mean for x in loads),
        n=sum(x.n for x in loads),
        p50_low=min(x.p50 for x in loads),
        p50_high=max(x.p50 for x in loads),
    )


def iqm(samples: Sequence[float]) -> float:
    """The interquartile mean: the mean of the middle half of the samples."""
    xs = sorted(samples)
    n = len(xs)
    middle = xs[n // 4 : n - n // 4] or xs
    return statistics.fmean(middle)


def median(values: Sequence[float]) -> float:
    """The median of one figure over page loads."""
    return statistics.median(values)


@dataclass(frozen=True)
class Split:
    """Per-call samples, with which calls were answered at once and which waited.

    On the fast path most calls come back while the page spins on the
    SharedArrayBuffer; the rest wait for their answer on the event loop,
    which costs far more. ``sync_iqm``, the interquartile mean of the calls
    answered at once, is finer than the clock's steps (it averages them)
    yet ignores the stray slow calls a busy machine produces; the waited
    calls show up in ``waited_share`` and ``waited_p50``.
    """

    all: Latency
    all_iqm: float
    sync_iqm: float
    waited_share: float
    waited_p50: float

    @property
    def typical(self) -> float:
        """The interquartile mean of the calls answered at once where most were, else of all."""
        return self.sync_iqm if self.waited_share < 0.5 else self.all_iqm


def split(us: Sequence[float], waited: Sequence[bool]) -> Split:
    """One page load's samples and wait flags as a Split (NaN where a group is empty)."""
    if len(us) != len(waited):
        raise ValueError("one wait flag per sample")
    sync = [x for x, w in zip(us, waited, strict=True) if not w]
    late = [x for x, w in zip(us, waited, strict=True) if w]
    return Split(
        all=summarize(us),
        all_iqm=iqm(us),
        sync_iqm=iqm(sync) if sync else math.nan,
        waited_share=len(late) / len(us),
        waited_p50=percentile(late, 0.5) if late else math.nan,
    )


def combine_splits(loads: Sequence[Split]) -> Split:
    """Several page loads as one Split: the median of each statistic (NaNs ignored)."""
    return Split(
        all=combine([x.all for x in loads]),
        all_iqm=statistics.median(x.all_iqm for x in loads),
        sync_iqm=_nanmedian([x.sync_iqm for x in loads]),
        waited_share=statistics.median(x.waited_share for x in loads),
        waited_p50=_nanmedian([x.waited_p50 for x in loads]),
    )


def _nanmedian(values: Sequence[float]) -> float:
    real = [v for v in values if not math.isnan(v)]
    return statistics.median(real) if real else math.nan
