"""bench/sync_users.py runs end to end on tiny sizes (two primaries, a crowded pull against a
lone one, a bucket gained), and its section replaces itself in the page.

Speed is not asserted here (the machine is shared); `python -m bench.sync_users` prints the
figures against issue 15's targets.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.sync_users import BEGIN, END, render, run, write


def test_the_users_benchmark_measures_both_pulls_and_a_gained_bucket(tmp_path: Path) -> None:
    # On a thread: run() calls asyncio.run, which refuses where Playwright's loop runs.
    with ThreadPoolExecutor(1) as pool:
        report = pool.submit(
            run, user_rows=20, others=3, other_rows=60, gained_rows=50, repeat=2, gain_repeat=1
        ).result()
    for name in ("crowded", "alone"):
        pull = report["pulls"][name]
        assert pull["pull"]["n"] == 2 and 0 < pull["pull"]["median_s"] <= pull["pull"]["p99_s"] < 60
        assert pull["changes"] == 22  # the 20 tasks, the project and its owner's membership
    assert report["ratio"]["median_s"] > 0
    gained = report["gained"]
    assert gained["n"] == 1 and 0 < gained["median_s"] < 60 and gained["runs"][0]["syncs"] >= 1
    section = render(report)
    assert section.startswith(BEGIN) and section.rstrip().endswith(END)
    assert "with 3x others' rows" in section


def test_the_section_replaces_the_previous_one_and_keeps_the_page(tmp_path: Path) -> None:
    page = tmp_path / "benchmarks-sync.md"
    page.write_text("# Sync\n\nthe browser's figures\n")
    write(f"{BEGIN}\nfirst\n{END}\n", page)
    write(f"{BEGIN}\nsecond\n{END}\n", page)
    text = page.read_text()
    assert text.startswith("# Sync\n\nthe browser's figures\n") and "first" not in text
    assert text.count(BEGIN) == 1 and "second" in text
