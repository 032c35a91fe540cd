"""The Worker's Turso deployment (cloudflare/wrangler.turso.toml) stays the D1 one's twin: same
code, same runtime date, same module rules, and no D1 binding that would need an id."""

from __future__ import annotations

import tomllib

from tests.conftest import ROOT


def test_the_turso_wrangler_config_runs_the_same_worker_as_the_d1_one() -> None:
    d1 = tomllib.loads((ROOT / "cloudflare" / "wrangler.toml").read_text())
    turso = tomllib.loads((ROOT / "cloudflare" / "wrangler.turso.toml").read_text())
    for key in ("main", "compatibility_date", "rules"):
        assert turso[key] == d1[key], key
    assert "d1_databases" not in turso
    assert set(turso["vars"]) == {*d1["vars"], "EDGESQL_TURSO_URL"}
