"""The Turso push benchmark (bench/sync_d1.py's ``turso-local`` ways, which bench/sync_turso.py
reports) runs end to end on a small push, and its section replaces itself in the page.

Speed is not asserted here (the machine is shared); `python -m bench.sync_turso` prints the
figures against issue 19's targets.
"""

from __future__ import annotations

from pathlib import Path

from bench.sync_d1 import run
from bench.sync_turso import BEGIN, END, write


def test_the_push_benchmark_measures_both_turso_fronts() -> None:
    report = run(changes=300, repeat=1, only=("turso-local",))
    assert set(report["results"]) == {"turso-local", "turso-local-direct"}
    for figures in report["results"].values():
        assert len(figures["seconds"]) == 1 and 0 < figures["median_s"] < 60
        assert figures["changes_per_s"] > 0


def test_the_section_replaces_the_previous_one_and_keeps_the_page(tmp_path: Path) -> None:
    page = tmp_path / "benchmarks-sync.md"
    page.write_text("# Sync\n\nthe browser's figures\n")
    write(f"{BEGIN}\nfirst\n{END}\n", page)
    write(f"{BEGIN}\nsecond\n{END}\n", page)
    text = page.read_text()
    assert text.startswith("# Sync\n\nthe browser's figures\n") and "first" not in text
    assert text.count(BEGIN) == 1 and "second" in text
