"""How busy the machine is, from /proc/stat, and waiting for it to calm down.

The benchmark shares its 2 cores with whatever else runs (other test runs
start Chromium too), and a neighbour on the CPU shows up as slow answers
and long tails. The load average lags by a minute, so this reads the CPU's
own busy time over a few seconds. The runner can wait for an idle CPU
before each page load, and records how busy the CPU was during each one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["CpuMeter", "busy_fraction", "wait_until_idle"]


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot; (0, 0) where /proc is missing."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return (0, 0)
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    return (total - idle, total)


class CpuMeter:
    """The share of all CPUs' time spent busy since the meter started (0..1)."""

    def __init__(self) -> None:
        self.start = _cpu_times()

    def busy(self) -> float:
        busy, total = _cpu_times()
        elapsed = total - self.start[1]
        return (busy - self.start[0]) / elapsed if elapsed > 0 else 0.0


def busy_fraction(seconds: float) -> float:
    """How busy the CPUs are over the next ``seconds`` (0..1)."""
    meter = CpuMeter()
    time.sleep(seconds)
    return meter.busy()


def wait_until_idle(
    max_wait: float, *, busy_below: float = 0.1, window: float = 3.0, log: Callable[[str], None] = print
) -> float:
    """Wait up to ``max_wait`` seconds for the CPUs to be busy less than ``busy_below``
    over ``window`` seconds; returns the last busy share seen."""
    deadline = time.monotonic() + max_wait
    busy = busy_fraction(window)
    while busy >= busy_below and time.monotonic() < deadline:
        log(f"[bench] CPU {100 * busy:.0f}% busy (someone else is running): waiting")
        busy = busy_fraction(window)
    return busy
