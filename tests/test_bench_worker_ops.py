"""The benchmark's worker requests stay out of the app.

bench/worker-ops.js times work inside the DB worker; only benchmark pages
load it (bench/browser.py routes it into their worker). serve.py must not
serve it, the production worker must not answer its requests, and the
service worker must not precache it. That the benchmark pages do get it is
tests/test_bench_smoke.py's business: every in-worker figure comes from it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
OPS = ROOT / "bench" / "worker-ops.js"


def _bench_ops() -> set[str]:
    """The op names bench/worker-ops.js answers (its `case 'bench.x':` lines)."""
    ops = set(re.findall(r"case '(bench\.\w+)'", OPS.read_text()))
    assert {"bench.ping", "bench.loop", "bench.repeat", "bench.bulk"} <= ops, ops
    return ops


def test_no_served_or_precached_script_holds_benchmark_requests(server: Any) -> None:
    ops = _bench_ops()
    manifest = httpx.get(server.url + "/precache-manifest.json").json()
    urls = {e["url"] for e in manifest["entries"]}
    assert not [u for u in urls if "bench" in u]
    worker_files = {f"/worker/{p.name}" for p in (ROOT / "worker").glob("*.js")}
    with httpx.Client(base_url=server.url) as client:
        for url in sorted({u for u in urls if u.endswith((".js", ".mjs"))} | worker_files):
            text = client.get(url).text
            assert not [op for op in ops if op in text], url
        for url in ("/bench/worker-ops.js", "/worker/bench-ops.js", "/worker-ops.js"):
            assert client.get(url).status_code == 404, url


def test_the_worker_imports_no_benchmark_code() -> None:
    imports = {
        p.name: re.findall(r"""^\s*import\b[^'"]*['"]([^'"]+)['"]""", p.read_text(), flags=re.M)
        for p in (ROOT / "worker").glob("*.js")
    }
    assert not {name: found for name, found in imports.items() if any("bench" in i for i in found)}
