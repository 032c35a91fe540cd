"""Contender: ``pyscript.storage`` from Python, what a PyScript user picks today (issue 7).

A second page in the same browser profile, next to the benchmark page on
each fast-path load: plain PyScript (from /vendor/pyscript/, pointed at the
local Pyodide, its plugins off) running bench/pyscript_inpage.py. The page
is served through Playwright routing with the headers of serve.py's pages
(cross-origin isolated, so its clock steps by 5 µs), and nothing is added
to web/. Operations it can do: read a key, write a key and ``sync()``, a
burst of those, and many writes with one ``sync()``. Ratios to the floor
are in the side-by-side section.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..browser import FAST_PATH, HERE, READY_TIMEOUT_MS, BenchError, BenchPage
from ..config import Config
from ..model import Section, Table, fmt_rate, fmt_us
from ..stats import combine, median, ratio, summarize

__all__ = ["PYSCRIPT_STORAGE", "PyscriptStorage"]

URL_PATH = "/bench-pyscript.html"
STORE = "edgesql-bench"
CONFIG = (
    '{"interpreter": "/vendor/pyodide/pyodide.mjs", '
    '"plugins": ["!codemirror", "!donkey", "!py-editor", "!py-game", "!py-terminal"]}'
)
PLUGINS_NOTE = "codemirror, donkey, py-editor, py-game and py-terminal plugins off"


def _html() -> str:
    source = (HERE / "pyscript_inpage.py").read_text()
    if "</script" in source:
        raise BenchError("pyscript_inpage.py cannot be inlined: it contains '</script'")
    return (
        '<!doctype html>\n<html><head><meta charset="utf-8"><title>pyscript.storage bench</title>\n'
        '<script type="module" src="/vendor/pyscript/core.js"></script>\n</head><body>\n'
        f"<script type=\"py\" config='{CONFIG}'>\n{source}</script>\n</body></html>\n"
    )


@dataclass
class _PyscriptPage:
    """An open PyScript page, the errors it has thrown, and how long it took to start."""

    page: Any
    errors: list[str]
    start_s: float

    def run(self, kind: str, args: dict[str, Any]) -> dict[str, Any]:
        """``await pyscriptBench(kind, json)`` in the page; its JSON answer."""
        out: dict[str, Any] = json.loads(
            self.page.evaluate("([k, a]) => pyscriptBench(k, a)", [kind, json.dumps(args)])
        )
        return out

    def close(self) -> None:
        self.page.close()


class PyscriptStorage:
    """Workload: ``pyscript.storage`` reads and writes on a PyScript page."""

    key = "pyscript_storage"
    title = "Contender: pyscript.storage from Python"
    paths: tuple[str, ...] = (FAST_PATH,)

    def _open(self, page: BenchPage) -> _PyscriptPage:
        """A new PyScript page in the benchmark page's browser profile, ready to run."""
        url = urlsplit(page.page.url)
        base = f"{url.scheme}://{url.netloc}"  # serve.py's origin
        ps = page.page.context.new_page()
        errors: list[str] = []
        ps.on("pageerror", lambda e: errors.append(str(e)))
        html = _html()

        def serve(route: Any) -> None:
            # serve.py's headers (COOP/COEP/CORP...) taken from a page it serves.
            response = route.fetch(url=f"{base}/console.html")
            headers = {
                k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "etag")
            }
            headers["content-type"] = "text/html; charset=utf-8"
            headers["cache-control"] = "no-store"
            route.fulfill(status=200, headers=headers, body=html)

        ps.route(f"**{URL_PATH}", serve)
        t0 = time.monotonic()
        ps.goto(f"{base}{URL_PATH}")
        try:
            ps.wait_for_function("document.documentElement.dataset.ready", timeout=READY_TIMEOUT_MS)
        except Exception as e:
            ps.close()
            raise BenchError(f"the PyScript page did not start: {e} {errors}") from e
        return _PyscriptPage(ps, errors, time.monotonic() - t0)

    def prepare(self, page: BenchPage, cfg: Config) -> None:
        if cfg.quick:
            return  # the measured page fills the store itself (one PyScript start fewer)
        ps = self._open(page)
        try:
            ps.run("fill", {"name": STORE, "rows": cfg.pyscript_keys})
        finally:
            ps.close()

    def measure(self, page: BenchPage, cfg: Config, load: int) -> dict[str, Any]:
        n = cfg.pyscript_keys
        keys = random.Random(cfg.seed + load).choices(range(1, n + 1), k=cfg.iterations)
        ps = self._open(page)
        try:
            ps.run("fill", {"name": STORE, "rows": n})  # untimed; nothing to do once filled
            r = ps.run(
                "measure",
                {
                    "name": STORE,
                    "rows": n,
                    "keys": keys,
                    "warm": cfg.warmup,
                    "writes": cfg.write_iterations,
                    "burst": cfg.burst_writes,
                    "bulk": n,
                },
            )
            if ps.errors:
                raise BenchError(f"errors on the PyScript page: {ps.errors}")
        finally:
            ps.close()
        if r["wrong"]:
            raise BenchError(f"{r['wrong']} pyscript.storage reads returned the wrong value")
        for what, want, got in (
            ("writes", cfg.burst_writes, r["burst"]["count"]),
            ("bulk", n, r["bulk_count"]),
        ):
            if got != want:
                raise BenchError(f"pyscript.storage {what}: {got} keys after {want} writes")
        r["start_s"] = ps.start_s
        return r

    def summarize(self, loads: dict[str, list[dict[str, Any]]], cfg: Config) -> Section:
        data = loads.get(FAST_PATH, [])
        if not data:
            return Section(self.key, self.title, _method(cfg), [], notes=["not run"])
        n = cfg.pyscript_keys
        read_mean = median([d["loop_mean_us"] for d in data])
        read = combine([summarize(d["us"]) for d in data])
        open_us = median([d["open_us"] for d in data])
        start_s = median([d["start_s"] for d in data])
        write = combine([summarize(d["write"]["us"]) for d in data])
        burst = combine([summarize(d["burst"]["us"]) for d in data])
        burst_s = median([d["burst"]["total_us"] for d in data]) / 1e6
        bulk_s = median([d["bulk_s"] for d in data])
        figures = {
            # A dict lookup is far below the page clock's 5 µs step: the loop's mean stands for both.
            "pyscript.point.p50_us": read_mean,
            "pyscript.point.p99_us": max(read.p99, read_mean),
            "pyscript.open_us": open_us,
            "pyscript.write.p50_us": write.p50,
            "pyscript.write.p99_us": write.p99,
            "pyscript.burst.p50_us": burst.p50,
            "pyscript.burst.p99_us": burst.p99,
            "pyscript.burst.writes_per_s": ratio(cfg.burst_writes, burst_s),
            "pyscript.bulk.rows_per_s": ratio(n, bulk_s),
        }
        samples = {
            "write_normal": {"pyscript.storage": [u for d in data for u in d["write"]["us"]]},
            "burst": {"pyscript.storage": [u for d in data for u in d["burst"]["us"]]},
        }
        rows = [
            ["page start: PyScript + Pyodide until Python runs", f"{start_s * 1000:.0f} ms", "", ""],
            [f"`await storage(name)`: loads all {n:,} keys", fmt_us(open_us), "", ""],
            ["`store[key]` (a dict lookup; mean of the loop)", fmt_us(read_mean), fmt_us(read.p99), ""],
            ["`store[key] = row; await store.sync()`", fmt_us(write.p50), fmt_us(write.p99), ""],
            [
                f"burst: {cfg.burst_writes:,} × (set + sync), per write / whole",
                fmt_us(burst.p50),
                fmt_us(burst.p99),
                fmt_rate(ratio(cfg.burst_writes, burst_s)).replace("rows", "writes"),
            ],
            [
                f"bulk: {n:,} sets, then one `sync()`",
                f"{bulk_s * 1000:.0f} ms",
                "",
                fmt_rate(ratio(n, bulk_s)),
            ],
        ]
        table = Table(
            columns=["operation", "p50", "p99", "rate"],
            rows=rows,
            caption=f"PyScript page beside the fast-path page. Medians over {len(data)} page load(s).",
        )
        return Section(self.key, self.title, _method(cfg), [table], [], figures, samples=samples)


def _method(cfg: Config) -> list[str]:
    n = cfg.pyscript_keys
    return [
        f"PyScript (npm @pyscript/core, served from /vendor/pyscript/) on the local Pyodide, {PLUGINS_NOTE}; "
        f"a fresh page for each fast-path load, in the same browser profile. The store `{STORE}` "
        f"holds `str(id) → [name, value]` for ids 1..{n:,} (written once on the setup page). It holds "
        f"{n:,} keys, not the SQL table's {cfg.table_rows:,}: `pyscript.storage` reads the whole store "
        "into a dict when it is opened, so its open time grows with the data (see the table).",
        f"**read**: the store is opened, then {cfg.iterations:,} random keys are read (`store[key]`) "
        "back to back after the same warm-up; a lookup takes well under the page clock's 5 µs step, "
        "so the mean of a loop under one timer is reported as p50 (p99 is per call, in 5 µs steps, "
        "and includes reading the clock).",
        f"**single write**: {cfg.write_iterations:,} times `store[key] = row` then `await store.sync()` "
        "(IndexedDB commit, durability 'default'); **burst**: "
        f"{cfg.burst_writes:,} of those back to back; **bulk**: {n:,} sets then one `sync()`.",
        "No range read and no live query: `pyscript.storage` is a key-value dict.",
    ]


PYSCRIPT_STORAGE = PyscriptStorage()
