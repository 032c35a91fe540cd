"""The machine and the versions a run measured, for the top of the report.

Host facts come from /proc and the checkout; browser-side versions (Pyodide,
its Python, SQLite, the clocks' resolution) are reported by each page and
added by the runner. The load average is kept from before and after the
run: this machine is shared, and a busy neighbour shows in the figures.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

__all__ = ["Environment", "chromium_version", "collect", "load_average"]

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Environment:
    """Where and with what a run happened."""

    date: str
    cpu: str
    cores: int
    ram: str
    os: str
    host_python: str
    playwright: str
    edgesql: str
    sqlite_wasm_package: str
    pyodide_package: str
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    #: The 1-minute load average at the start of each page load.
    load_during: list[float] = field(default_factory=list)
    #: The share of all CPUs busy during each measured page load (all processes).
    cpu_busy: list[float] = field(default_factory=list)
    chromium: str = "?"
    #: What each bridge path's page reported (pyodide, python, sqlite_version, clocks...).
    pages: dict[str, dict[str, Any]] = field(default_factory=dict)


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _cpu_model() -> str:
    text = _read("/proc/cpuinfo")
    model = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    mhz = re.search(r"^cpu MHz\s*:\s*([\d.]+)$", text, re.M)
    name = model.group(1).strip() if model else platform.processor() or platform.machine()
    return f"{name} @ {float(mhz.group(1)):.0f} MHz" if mhz else name


def _ram() -> str:
    m = re.search(r"^MemTotal:\s*(\d+) kB", _read("/proc/meminfo"), re.M)
    return f"{int(m.group(1)) / 1024 / 1024:.1f} GiB" if m else "?"


def _os() -> str:
    m = re.search(r'^PRETTY_NAME="?([^"\n]+)"?', _read("/etc/os-release"), re.M)
    name = m.group(1) if m else platform.system()
    return f"{name}, kernel {platform.release()}"


def _package_version(package_json: Path) -> str:
    try:
        v: str = json.loads(package_json.read_text())["version"]
        return v
    except (OSError, KeyError, ValueError):
        return "?"


def _dist_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def _edgesql_version() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return _dist_version("edgesql")
    return f"{_dist_version('edgesql')} (git {commit}{', with uncommitted changes' if dirty else ''})"


def load_average() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages (0s where /proc is missing)."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return (0.0, 0.0, 0.0)
    return (one, five, fifteen)


def collect() -> Environment:
    """The host's side of the environment; the runner adds the browser's."""
    modules = ROOT / "node_modules"
    return Environment(
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        cpu=_cpu_model(),
        cores=os.cpu_count() or 0,
        ram=_ram(),
        os=_os(),
        host_python=platform.python_version(),
        playwright=_dist_version("playwright"),
        edgesql=_edgesql_version(),
        sqlite_wasm_package=_package_version(modules / "@sqlite.org" / "sqlite-wasm" / "package.json"),
        pyodide_package=_package_version(modules / "pyodide" / "package.json"),
        load_before=load_average(),
    )


def chromium_version(product: str) -> str:
    """``HeadlessChrome/156.0.8078.108`` → ``156.0.8078.108 (headless)``."""
    m = re.search(r"(Headless)?Chrom(?:e|ium)/([\d.]+)", product)
    if not m:
        return product
    return m.group(2) + (" (headless)" if m.group(1) else "")
