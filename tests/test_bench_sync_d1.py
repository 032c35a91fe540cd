"""bench/sync_d1.py runs end to end on a small push and returns its figures for every primary.

Speed is not asserted here (the machine is shared); `python -m bench.sync_d1` prints the
figures against the target of issue 4.
"""

from __future__ import annotations

from bench.sync_d1 import TARGET_S, run


def test_the_d1_push_benchmark_measures_every_way() -> None:
    report = run(changes=300, repeat=1)
    assert set(report["results"]) == {"d1-local", "d1-local-direct", "sqlite"}
    for figures in report["results"].values():
        assert len(figures["seconds"]) == 1 and 0 < figures["median_s"] < 60
        assert figures["changes_per_s"] > 0
    assert report["target_s"] == TARGET_S and isinstance(report["met"], bool)
