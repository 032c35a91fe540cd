"""The precache list behind /sw.js: generated from globs, revisions of the served bytes, under budget."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgesql.server.pwa import PrecacheBuilder, StaticMount

#: Issue 5: the whole offline shell must stay under this.
PRECACHE_BUDGET_BYTES = 20_000_000

#: What console.html and a PyScript page fetch to start (seen in Chromium).
MUST_PRECACHE = {
    "/console.html",
    "/console.py",
    "/boot.js",
    "/bridge.js",
    "/pwa.js",
    "/style.css",
    "/manifest.webmanifest",
    "/icons/icon-192.png",
    "/icons/icon-512.png",
    "/icons/icon-maskable-512.png",
    "/worker/db-worker.js",
    "/worker/engine.js",
    "/worker/codec.js",
    "/vendor/pyodide/pyodide.mjs",
    "/vendor/pyodide/pyodide.asm.mjs",
    "/vendor/pyodide/pyodide.asm.wasm",
    "/vendor/pyodide/python_stdlib.zip",
    "/vendor/pyodide/pyodide-lock.json",
    "/vendor/sqlite-wasm/index.mjs",
    "/vendor/sqlite-wasm/sqlite3.wasm",
    "/vendor/pyscript/core.js",
    "/wheels/edgesql.json",
}


def test_sw_is_served_with_its_list_and_headers(server: Any) -> None:
    r = httpx.get(server.url + "/sw.js")
    assert r.status_code == 200
    assert r.headers["content-type"].split(";")[0] == "text/javascript"
    assert r.headers["service-worker-allowed"] == "/"
    assert r.headers["cache-control"] == "no-cache"
    assert "__EDGESQL_PRECACHE__" not in r.text
    manifest = httpx.get(server.url + "/precache-manifest.json").json()
    assert json.dumps(manifest, separators=(",", ":")) in r.text


def test_precache_covers_the_app_and_stays_under_budget(server: Any) -> None:
    manifest = httpx.get(server.url + "/precache-manifest.json").json()
    urls = {e["url"] for e in manifest["entries"]}
    assert urls >= MUST_PRECACHE, MUST_PRECACHE - urls
    # The wheel the server builds, under the URL its index names.
    wheel_url = httpx.get(server.url + "/wheels/edgesql.json").json()["url"]
    assert wheel_url in urls
    # PyScript's plugin chunks are in; source maps and the worker itself are not.
    assert any(u.startswith("/vendor/pyscript/error-") for u in urls)
    assert not [u for u in urls if u.endswith(".map") or u in ("/sw.js", "/precache-manifest.json")]
    assert manifest["size_bytes"] == sum(e["size"] for e in manifest["entries"])
    assert manifest["size_bytes"] <= PRECACHE_BUDGET_BYTES
    assert any(line.startswith(f"edgesql precache {manifest['version']}: ") for line in server.log)


def test_every_revision_is_the_hash_of_the_served_bytes(server: Any) -> None:
    manifest = httpx.get(server.url + "/precache-manifest.json").json()
    with httpx.Client(base_url=server.url) as client:
        for entry in manifest["entries"]:
            r = client.get(entry["url"])
            assert r.status_code == 200, entry["url"]
            assert len(r.content) == entry["size"], entry["url"]
            assert hashlib.sha256(r.content).hexdigest().startswith(entry["revision"]), entry["url"]


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_builder_versions_follow_content(tmp_path: Path) -> None:
    web, lib = tmp_path / "web", tmp_path / "lib"
    _write(web / "index.html", "<p>home</p>")
    _write(web / "app.js", "1")
    _write(web / "sub" / "page.py", "print()")
    _write(web / ".hidden.js", "editor swap file")
    _write(web / "sw.js", "the service worker")
    _write(web / "lib" / "shadowed.js", "served from lib/, not from web/lib/")
    _write(lib / "mod.js", "lib")
    mounts = [StaticMount("", web, html=True), StaticMount("/lib", lib, html=False)]
    builder = PrecacheBuilder(
        mounts, globs=("/**/*.html", "/**/*.js", "/**/*.py", "/lib/*.js"), exclude=frozenset({"/sw.js"})
    )
    first = builder.manifest
    revs = {e.url: e.revision for e in first.entries}
    assert set(revs) == {"/", "/app.js", "/sub/page.py", "/lib/mod.js"}

    assert builder.build() == first  # nothing changed: same list, same version

    _write(web / "app.js", "2")
    os.utime(web / "app.js", ns=(1, 1))  # a new mtime, even on a coarse clock
    second = builder.build()
    changed = {e.url for e in second.entries if revs[e.url] != e.revision}
    assert changed == {"/app.js"}
    assert second.version != first.version

    _write(web / "new.js", "new")
    assert "/new.js" in {e.url for e in builder.build().entries}


def test_builder_refuses_a_glob_no_mount_serves(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="under no static mount"):
        PrecacheBuilder([StaticMount("/lib", tmp_path, html=False)], globs=("/other/*.js",))
