"""``python -m bench``: run the benchmarks, print the table, write docs/benchmarks.md.

    python -m bench                 the full run (make bench); writes docs/benchmarks.md
    python -m bench --quick         a smoke run in well under a minute; writes nothing
    python -m bench --loads 5       more page loads per bridge path
    python -m bench --out FILE      write the markdown elsewhere (also with --quick)
    python -m bench --plot FILE     write the latency plot there (also with --quick; needs matplotlib)
    python -m bench --wait-idle 300 on a shared machine: wait for idle CPUs before each page load

Exits 0 when the run completed, whether or not the targets were met (they
are printed, and recorded in the document); 1 when the run itself failed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .browser import BenchError
from .config import FULL, QUICK
from .environment import ROOT
from .plot import write_plot
from .report import render_markdown, render_text
from .runner import run

DEFAULT_OUT = ROOT / "docs" / "benchmarks.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="few rows and iterations: proves the harness works"
    )
    parser.add_argument("--loads", type=int, help="page loads per bridge path (default 3, quick 1)")
    parser.add_argument(
        "--out", type=Path, help=f"markdown output (default {DEFAULT_OUT}; none with --quick)"
    )
    parser.add_argument(
        "--wait-idle",
        type=float,
        metavar="SECONDS",
        default=0,
        help="before each page load, wait up to SECONDS for the CPUs to be idle (a shared machine)",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        help="latency plot PNG (default: beside the markdown, e.g. docs/benchmarks-latency.png; "
        "needs matplotlib)",
    )
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    if args.loads:
        cfg = cfg.with_loads(args.loads)
    out = args.out or (None if args.quick else DEFAULT_OUT)
    try:
        report = run(cfg, wait_idle=args.wait_idle)
    except BenchError as e:
        print(f"bench failed: {e}", file=sys.stderr)
        return 1
    print(render_text(report))
    plot = args.plot or (out.with_name(f"{out.stem}-latency.png") if out is not None else None)
    if plot is not None:
        title = f"edgesql benchmarks, {report.env.date}{' (quick run)' if cfg.quick else ''}"
        skipped = write_plot(report.sections, plot, title)
        if skipped:
            print(f"\nplot skipped: {skipped}")
        else:
            print(f"\nwrote {plot}")
            if out is not None:
                report.plot = os.path.relpath(plot, out.parent)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render_markdown(report))
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
