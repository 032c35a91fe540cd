"""Render a run: a readable table on stdout, and docs/benchmarks.md.

Both come from the same :class:`Report` — the figures in the document are
never typed by hand. The document has fixed parts (machine and versions,
targets, common method) and then one part per workload section, in the
order the workloads ran, so new workloads add sections without touching
this module.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import Config
from .environment import Environment
from .model import Check, Section, Table

__all__ = ["Report", "render_markdown", "render_text"]


@dataclass
class Report:
    """Everything one run produced."""

    env: Environment
    cfg: Config
    sections: list[Section]
    seconds: float
    #: The latency plot's file name, relative to the markdown (None: no plot was written).
    plot: str | None = None

    @property
    def checks(self) -> list[Check]:
        return [c for s in self.sections for c in s.checks]


def _loads(env: Environment) -> str:
    during = max(env.load_during, default=env.load_before[0])
    return f"{env.load_before[0]:.2f}, {during:.2f}, {env.load_after[0]:.2f}"


def _busy(env: Environment) -> str:
    return ", ".join(f"{100 * b:.0f}%" for b in env.cpu_busy) or "?"


# -- text ----------------------------------------------------------------------------


def _text_table(t: Table) -> list[str]:
    cells = [t.columns, *t.rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(t.columns))]

    def line(r: list[str]) -> str:
        cells = [
            c.ljust(w) if i < t.text_columns else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    out = [t.caption] if t.caption else []
    out += [line(t.columns), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in t.rows]
    return out


def render_text(report: Report) -> str:
    """The run as plain text for a terminal."""
    env = report.env
    lines = [
        f"edgesql benchmarks — {env.date}{' (QUICK: not for the record)' if report.cfg.quick else ''}",
        f"{env.cpu}, {env.cores} cores, {env.ram}; Chromium {env.chromium}; "
        f"load average (1 min): before, highest during, after: {_loads(env)}",
    ]
    for s in report.sections:
        lines += ["", f"== {s.title} =="]
        for t in s.tables:
            lines += ["", *_text_table(t)]
        lines += [f"note: {n}" for n in s.notes]
    if report.checks:
        lines += ["", "== Targets =="]
        for c in report.checks:
            verdict = "MET   " if c.met else "MISSED"
            lines.append(f"{verdict} issue {c.issue}: {c.what} {c.target} (measured {c.measured})")
    lines += ["", f"({report.seconds:.0f} s)"]
    return "\n".join(lines)


# -- markdown --------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    # Leading spaces mark nesting in the text table; keep them visible in markdown.
    stripped = text.lstrip(" ")
    indent = (len(text) - len(stripped)) // 2
    return ("↳ " * min(indent, 1) + "&nbsp;&nbsp;" * max(indent - 1, 0) + stripped).replace("|", "\\|")


def _md_table(t: Table) -> list[str]:
    out = [f"*{t.caption}*", ""] if t.caption else []
    out.append("| " + " | ".join(t.columns) + " |")
    ncols = len(t.columns)
    out.append("|" + "|".join([" --- "] * t.text_columns + [" ---: "] * (ncols - t.text_columns)) + "|")
    out += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in t.rows]
    return out


def _machine(report: Report) -> list[str]:
    env = report.env
    pages = env.pages
    any_page = next(iter(pages.values()), {})
    pyodide = f"{any_page.get('pyodide', '?')} (npm {env.pyodide_package})"
    sqlite = f"SQLite {any_page.get('sqlite_version', '?')}"
    rows = [
        ["date", env.date],
        ["CPU", f"{env.cpu}, {env.cores} cores"],
        ["RAM", env.ram],
        ["OS", env.os],
        ["Chromium", f"{env.chromium}, /usr/bin/chromium"],
        ["Pyodide", f"{pyodide}, CPython {any_page.get('python', '?')}"],
        ["SQLite-Wasm", f"npm @sqlite.org/sqlite-wasm {env.sqlite_wasm_package}, {sqlite}"],
        ["storage", f"{any_page.get('storage', '?')} (OPFS), persistent profile"],
        [
            "the worker's SQLite settings",
            f"journal_mode={any_page.get('journal_mode', '?')}, locking_mode={any_page.get('locking_mode', '?')}, "
            f"synchronous={any_page.get('synchronous', '?')} (0 off, 1 normal, 2 full)",
        ],
        ["host Python / Playwright", f"{env.host_python} / {env.playwright}"],
        ["edgesql", env.edgesql],
        ["load average (1 min): before, highest during, after", _loads(env)],
        ["CPUs busy during each page load (all processes)", _busy(env)],
    ]
    for path, info in pages.items():
        page_us, worker_us = info.get("page_clock_us", 0.0), info.get("worker_clock_us", 0.0)
        rows.append(
            [f"clock resolution, {path} page", f"main thread {page_us:.1f} µs, worker {worker_us:.1f} µs"]
        )
    return _md_table(Table(columns=["", ""], rows=rows, text_columns=2))


def _targets(report: Report) -> list[str]:
    rows = [
        [f"issue {c.issue}", c.what, c.target, c.measured, "met" if c.met else "**missed**"]
        for c in report.checks
    ]
    return _md_table(Table(columns=["from", "target", "limit", "measured", ""], rows=rows, text_columns=5))


#: The other pages `make bench` writes, each by its own script.
MORE = [
    "More, each from its own run of `make bench`: sync (push of 10k changes to the embedded primary",
    "and local D1, a fresh device's first pull of 100k rows with queries running, capture cost) in",
    "[benchmarks-sync.md](benchmarks-sync.md); a non-owner tab next to the owner in",
    "[benchmarks-tabs.md](benchmarks-tabs.md); the demo app's start, cold and warm, and its precache",
    "in [benchmarks-startup.md](benchmarks-startup.md).",
    "",
]


def render_markdown(report: Report) -> str:
    """docs/benchmarks.md for this run."""
    cfg = report.cfg
    out = [
        "# edgesql benchmarks",
        "",
        "<!-- Generated by `make bench` (`python -m bench`) from one run. Do not edit by hand: rerun. -->",
        "",
        "Every figure is measured in headless Chromium on this machine, in one run, on the same page as",
        "its floor: the raw JavaScript round trip through the same bridge to the same worker, and the",
        "time SQLite itself takes inside that worker. The ratios are the point; absolute times move with",
        "the machine."
        + (" **This was a `--quick` run: its figures are not for the record.**" if cfg.quick else ""),
        "",
        *MORE,
        *(
            [f"![Latency distributions of every operation and contender]({report.plot})", ""]
            if report.plot
            else []
        ),
        "## Machine and versions",
        "",
        *_machine(report),
        "",
        "## Targets",
        "",
        "Issue 2's targets are this run's bar; issue 7's are later ones, shown to track progress.",
        "",
        *_targets(report),
        "",
        "## How it is measured",
        "",
        "- `python -m bench` starts `serve.py` on a free 127.0.0.1 port and headless Chromium (the",
        "  system build, on a fresh persistent profile so OPFS is on disk, not incognito memory), opens",
        "  `/console.html`, waits for `data-ready`, and runs the benchmark code in the page's Pyodide",
        "  (`pyodide.runPythonAsync`) and in page JavaScript. Nothing is fetched from outside 127.0.0.1.",
        f"- {cfg.loads} page load(s) per bridge path, alternating fast path and postMessage; each",
        "  figure is measured on every load and the median over the loads is reported (the median of",
        "  per-load p50s, of per-load p99s).",
        "- The fast path is the page as serve.py serves it (COOP/COEP, cross-origin isolated, calls",
        "  answered through a SharedArrayBuffer). The postMessage path is the same page with those",
        "  headers removed by Playwright routing. Without isolation Chromium coarsens `performance.now()`",
        "  (and Pyodide's `time.perf_counter_ns()`, which reads it) to 100 µs, so per-call figures there",
        "  are quantised to 100 µs; means stay accurate.",
        "- Service workers are blocked in the benchmark's browser: the app's offline shell would add",
        "  COOP/COEP to the page itself, out of the routing's reach. No measured call touches the network.",
        f"- The machine may be shared ({report.env.cores} cores). The load average and how busy the",
        "  CPUs were during each page load are recorded above. The benchmark itself keeps about one",
        "  core busy (Python on the page's main thread makes call after call while the worker",
        "  answers); much more means a neighbour was on the CPU, which shows as slower calls and",
        "  longer tails. `--wait-idle` makes the run wait for idle CPUs before each page load.",
        "- Contenders run the same rows, keys and statements (bench/shapes.py) in the same run: native",
        "  CPython `sqlite3` in the benchmark process, raw IndexedDB from the benchmark page's JavaScript,",
        "  Pyodide's own `sqlite3` in memory (not persistent) in the benchmark page's Python, edgesql",
        "  from a second page that does not own the database, and `pyscript.storage` on a PyScript page",
        "  opened beside it. The side-by-side section divides each by the floor measured on the same",
        "  page loads.",
        *(
            [
                f"- The plot ([{report.plot}]({report.plot})) shows each operation's per-call latencies as",
                "  a cumulative distribution (every sample of every load), on a log time axis.",
            ]
            if report.plot
            else []
        ),
    ]
    for s in report.sections:
        out += ["", f"## {s.title}", "", *[f"- {m}" for m in s.method]]
        for t in s.tables:
            out += ["", *_md_table(t)]
        out += [f"\n{n}" for n in s.notes]
    out += [""]
    return "\n".join(out)
