"""serve.py: the right MIME types and isolation headers, the wheel, nothing from outside."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import httpx
import pytest


@pytest.mark.parametrize(
    ("path", "mime"),
    [
        ("/vendor/sqlite-wasm/sqlite3.wasm", "application/wasm"),
        ("/vendor/pyodide/pyodide.asm.wasm", "application/wasm"),
        ("/vendor/pyodide/pyodide.mjs", "text/javascript"),
        ("/vendor/sqlite-wasm/index.mjs", "text/javascript"),
        ("/worker/db-worker.js", "text/javascript"),
        ("/console.html", "text/html"),
        ("/console.py", "text/x-python"),
    ],
)
def test_mime_types_and_isolation_headers(server: Any, path: str, mime: str) -> None:
    r = httpx.get(server.url + path)
    assert r.status_code == 200
    assert r.headers["content-type"].split(";")[0] == mime
    assert r.headers["cross-origin-opener-policy"] == "same-origin"
    assert r.headers["cross-origin-embedder-policy"] == "require-corp"
    assert r.headers["cross-origin-resource-policy"] == "same-origin"


def test_wheel_is_installable_and_excludes_the_server(server: Any) -> None:
    index = httpx.get(server.url + "/wheels/edgesql.json").json()
    r = httpx.get(server.url + index["url"])
    assert r.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
    assert "edgesql/__init__.py" in names and "edgesql/_browser.py" in names
    assert not [n for n in names if n.startswith("edgesql/server/")]
    assert any(n.endswith(".dist-info/RECORD") for n in names)


def test_unknown_path_is_404(server: Any) -> None:
    assert httpx.get(server.url + "/nope.js").status_code == 404
    assert httpx.get(server.url + "/wheels/other-1.0-py3-none-any.whl").status_code == 404


def test_pages_reference_nothing_outside(server: Any) -> None:
    for path in ("/console.html", "/boot.js", "/bridge.js"):
        text = httpx.get(server.url + path).text
        assert "http://" not in text and "https://" not in text, path


def test_the_schema_folder_is_not_served(server: Any) -> None:
    """The app's schema is the primary's to give, as /sync/schema (token-checked when tokens are
    set): the SQL files it is made of are not static files (issue 12, finding 8)."""
    for path in ("/app/schema/0001_init.sql", "/app/schema/", "/app/schema"):
        assert httpx.get(server.url + path).status_code == 404, path
    assert httpx.get(server.url + "/app/main.py").status_code == 200  # the rest of the app is
    assert "CREATE TABLE" in httpx.get(server.url + "/sync/schema").text
