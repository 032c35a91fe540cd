"""The latency distributions of a run as one PNG (docs/benchmarks-latency.png).

One panel per operation, one line per contender: the empirical CDF of every
per-call sample of the run (all page loads together) on a log time axis, so
medians and tails of contenders a thousand times apart fit in one picture.
matplotlib is optional: without it the plot is skipped with a message, and
the markdown simply does not link one.
"""

from __future__ import annotations

from pathlib import Path

from .model import Section

__all__ = ["PANELS", "collect_samples", "write_plot"]

#: Operation → panel title, in panel order.
PANELS = {
    "point": "point read by key",
    "range": "range read: 100 rows, index + join",
    "write_normal": "single write, NORMAL / 'relaxed'",
    "write_full": "single write, FULL / 'strict'",
    "burst": "write burst (per write)",
    "watch": "live query: write → new result",
}

#: One colour per contender, the same in every panel (others get the next free one).
COLOURS = {
    "edgesql Python": "tab:green",
    "edgesql Python (postMessage)": "tab:olive",
    "edgesql watch": "tab:green",
    "edgesql watch (postMessage)": "tab:olive",
    "raw JS round trip": "tab:brown",
    "SQLite-Wasm in worker": "tab:orange",
    "native sqlite3": "tab:purple",
    "IndexedDB (JS)": "tab:blue",
    "pyscript.storage": "tab:red",
    "edgesql Python (non-owner tab)": "tab:cyan",
    "Pyodide sqlite3 (memory)": "tab:pink",
}
SPARE = ["tab:gray", "black", "gold", "navy"]

INSTALL_HINT = "pip install matplotlib (or the dev extras, once they list it)"


def collect_samples(sections: list[Section]) -> dict[str, dict[str, list[float]]]:
    """Every section's samples, merged: operation → contender → per-call µs."""
    out: dict[str, dict[str, list[float]]] = {}
    for s in sections:
        for op, series in s.samples.items():
            for label, xs in series.items():
                out.setdefault(op, {}).setdefault(label, []).extend(xs)
    return out


def write_plot(sections: list[Section], path: Path, title: str) -> str | None:
    """Draw the PNG; returns None when written, else why it was skipped."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import NullFormatter
    except ImportError:
        return f"matplotlib is not installed: {INSTALL_HINT}"
    samples = collect_samples(sections)
    panels = [op for op in PANELS if samples.get(op)]
    if not panels:
        return "no per-call samples in this run"
    cols = 3
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), squeeze=False)
    for ax, op in zip(axes.flat, panels, strict=False):
        spare = iter(SPARE * 4)
        for label, xs in sorted(samples[op].items()):
            ys = sorted(x for x in xs if x > 0)
            if not ys:
                continue
            n = len(ys)
            colour = COLOURS.get(label) or next(spare)
            ax.step(
                ys, [(i + 1) / n for i in range(n)], where="post", color=colour, label=f"{label} (n={n:,})"
            )
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_ylim(0, 1)
        ax.set_title(PANELS[op], fontsize=10)
        ax.set_xlabel("µs per call (log)")
        ax.set_ylabel("share of calls ≤ x")
        ax.axhline(0.5, color="grey", lw=0.5, ls=":")
        ax.axhline(0.99, color="grey", lw=0.5, ls=":")
        ax.grid(True, which="major", lw=0.3)
        ax.legend(fontsize=7, loc="lower right")
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
