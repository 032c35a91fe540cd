"""Run every workload over several page loads and collect a :class:`Report`.

One Chromium profile, one serve.py. A setup page first lets every workload
prepare its data; then, for each page load, the bridge paths alternate
(fast path, then postMessage), so slow drift on the machine touches both
alike. Each page opens the bench database, every workload that runs on
that path measures, and the database is closed before the page goes, so
the next page can take its OPFS files. Every measured page therefore
starts like an app that has just loaded: its database exists, and this
page has not written to it yet.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from .browser import BenchError, open_browser
from .config import Config
from .environment import chromium_version, collect, load_average
from .model import Workload
from .quiet import CpuMeter, wait_until_idle
from .report import Report
from .sidebyside import side_by_side
from .workloads import WORKLOADS

__all__ = ["run"]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(
    cfg: Config,
    *,
    workloads: Sequence[Workload] = WORKLOADS,
    playwright: Any = None,
    base_url: str | None = None,
    log: Callable[[str], None] = _stderr,
    wait_idle: float = 0.0,
) -> Report:
    """Run ``workloads`` as ``cfg`` says and return the report (nothing is written).

    ``wait_idle``: before each page load, wait up to that many seconds for
    the CPUs to be idle (other processes off them).
    """
    start = time.monotonic()
    env = collect()
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {
        w.key: {p: [] for p in cfg.paths if p in w.paths} for w in workloads
    }
    with open_browser(playwright, base_url) as browser:
        env.chromium = chromium_version(browser.browser_version())
        log("[bench] setup page")
        page = browser.open_page(cfg.paths[0])
        try:
            _check_page(page.call("open_db", name=cfg.db_name), cfg.paths[0])
            for w in workloads:
                w.prepare(page, cfg)
            page.call("close_db")
        finally:
            page.close()
        for load in range(cfg.loads):
            for path in cfg.paths:
                if wait_idle:
                    wait_until_idle(wait_idle, log=log)
                env.load_during.append(load_average()[0])
                log(f"[bench] page load {load + 1}/{cfg.loads}, {path}")
                page = browser.open_page(path)
                meter = CpuMeter()
                try:
                    info = page.info = page.call("open_db", name=cfg.db_name)
                    _check_page(info, path)
                    env.pages.setdefault(path, info)
                    for w in workloads:
                        if path in w.paths:
                            t0 = time.monotonic()
                            raw[w.key][path].append(w.measure(page, cfg, load))
                            log(f"[bench]   {w.key}: {time.monotonic() - t0:.1f} s")
                    page.call("close_db")
                finally:
                    page.close()
                env.cpu_busy.append(meter.busy())
                if page.errors:
                    raise BenchError(f"errors on the {path} page: {page.errors}")
    env.load_after = load_average()
    sections = [w.summarize(raw[w.key], cfg) for w in workloads]
    sections.insert(0, side_by_side(sections, cfg))
    return Report(env=env, cfg=cfg, sections=sections, seconds=time.monotonic() - start)


def _check_page(info: dict[str, Any], path: str) -> None:
    """Refuse to measure something other than what the report would claim."""
    want_fast = path == "fast-path"
    if info["fast_path"] != want_fast:
        raise BenchError(
            f"the {path} page has fast_path={info['fast_path']}: the page headers are not as intended"
        )
    if info["storage"] != "opfs-sahpool":
        raise BenchError(f"the bench database is in {info['storage']}, not OPFS: {info}")
    if info.get("owner") is not True:
        # Another page (a non-owner tab left open) holds the database: this page's calls would be
        # routed to it, and every figure would measure something else.
        raise BenchError(f"the {path} page does not own the bench database: owner={info.get('owner')!r}")
