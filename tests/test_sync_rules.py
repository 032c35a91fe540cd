"""The sync loop's rules exist once: the browser's copy is generated from rules.py and current."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

from edgesql.sync import rules


def test_the_workers_rules_are_generated_from_the_python_ones() -> None:
    fix = "run: python -m edgesql gen-rules"
    assert (ROOT / rules.JS_PATH).read_text() == rules.render_js(), f"worker/replica-rules.js is stale: {fix}"
    check = subprocess.run(
        [sys.executable, "-m", "edgesql", "gen-rules", "--check", "--root", str(ROOT)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT / "py")},
    )
    assert check.returncode == 0, check.stderr


def test_a_refusal_maps_to_what_a_replica_does() -> None:
    assert rules.reaction(409, "replica_conflict") == "rotate"
    assert rules.reaction(403, "replica_forbidden") == "rotate"
    assert rules.reaction(409, "schema_behind") == "migrate"
    assert rules.reaction(409, "schema_ahead") == "fail"
    assert rules.reaction(401, "unauthorized") == "reauth"
    assert rules.reaction(401, "token_expired") == "reauth"
    assert rules.reaction(503, None) == "fail"
