"""Nobody let in: a token wherever other machines can reach serve.py, tokens never in its output,
and no Cloudflare credential in anything the app serves."""

from __future__ import annotations

import io
import json
import re
import secrets
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest
from tests.conftest import ROOT, start_server
from tests.sync.primaries import http, insert, key, post_oversized, replica_id
from tests.sync.wire import envelope

from edgesql.server.cli import exposure_problem, is_local_host

# -- every non-local deployment requires a token ----------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2", "[::1]"])
def test_loopback_addresses_are_local(host: str) -> None:
    assert is_local_host(host) and exposure_problem(host, [], False) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "10.0.0.1", "example.com", "my-laptop"])
def test_anything_else_needs_a_token_or_an_explicit_opt_out(host: str) -> None:
    problem = exposure_problem(host, [], False)
    assert problem and "--auth-token" in problem and "--insecure-no-auth" in problem
    assert exposure_problem(host, ["a-token"], False) is None
    assert exposure_problem(host, [], True) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_serve_refuses_to_listen_on_a_public_address_without_a_token(host: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "serve.py"), "--host", host, "--port", "0", "--data", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert proc.returncode != 0
    assert "--auth-token" in proc.stderr and "--insecure-no-auth" in proc.stderr, proc.stderr
    assert "edgesql serving" not in proc.stdout


def test_a_token_from_the_environment_opens_a_public_address(tmp_path: Path) -> None:
    """EDGESQL_AUTH_TOKEN keeps the token out of the process list (`ps` shows arguments)."""
    token = "env-token-" + secrets.token_hex(8)
    server = start_server(tmp_path / "data", "--host", "0.0.0.0", env={"EDGESQL_AUTH_TOKEN": token})
    try:
        url = server.url.replace("0.0.0.0", "127.0.0.1")
        assert http("GET", url + "/sync/schema", token=None).status == 401
        assert http("GET", url + "/sync/schema", token=token).status == 200
        cmdline = Path(f"/proc/{server.proc.pid}/cmdline").read_bytes()
        assert token.encode() not in cmdline
    finally:
        server.stop()


# -- tokens are never logged --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sqlite", "d1-local"])
def test_the_token_appears_nowhere_in_the_output_or_the_data(kind: str, tmp_path: Path) -> None:
    token = "secret-" + secrets.token_urlsafe(24)
    schema = tmp_path / "schema.sql"
    schema.write_text("CREATE TABLE items (id TEXT PRIMARY KEY, n INTEGER CHECK (n >= 0));\n")
    extra = ["--rate-limit", "5/s", "--rate-burst", "5"] if kind == "sqlite" else []
    server = start_server(
        tmp_path / "data",
        *("--primary", kind, "--schema", str(schema), "--auth-token", token, *extra),
        timeout=90,
    )
    try:
        url = server.url + "/sync"
        rid = replica_id("log")
        assert http("GET", server.url + "/sync/schema", token=token).status == 200
        body = json.dumps(envelope(rid, changes=[insert(1, "items", key("a"), n=-1)])).encode()
        assert http("POST", url, body, token=token).status == 200  # a change rejected, with SQLite's words
        for wrong in ("wrong", token[:-1], token + "x", token.upper(), f"{token} {token}"):
            assert http("POST", url, body, token=wrong).status in (401, 429)
        assert http("POST", url, b"{not json", token=token).status in (400, 429)
        assert http("POST", url, b'{"v": 1, "replica": "x"}', token=token).status in (400, 429)
        post_oversized(url, b'{"pad": "' + b"x" * 4_100_000 + b'"}', token=token)
        for _ in range(10):  # past the rate limit, where there is one
            http("POST", url, body, token=token)
    finally:
        server.stop()
    output = "".join(server.log)
    assert "edgesql serving" in output
    assert token not in output, "the token appears in serve.py's output"
    for path in (tmp_path / "data").rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), f"the token is stored in {path}"


# -- no Cloudflare credential in anything served -------------------------------------------------

#: Credentials a deployer's shell may hold while running serve.py: canaries that must never be served.
CANARIES = {
    "CLOUDFLARE_API_TOKEN": "cfcanary" + secrets.token_hex(16),
    "CLOUDFLARE_ACCOUNT_ID": secrets.token_hex(16),
    "CF_API_TOKEN": "cfcanary" + secrets.token_hex(16),
    "EDGESQL_TOKEN": "edgecanary" + secrets.token_hex(16),
}
#: Names of Cloudflare credentials; none belongs in a served file.
CREDENTIAL_NAMES = re.compile(
    rb"CLOUDFLARE_API_TOKEN|CLOUDFLARE_ACCOUNT_ID|CF_API_TOKEN|account_id|EDGESQL_TOKEN"
)
#: What a Cloudflare API token looks like: 40 characters of [A-Za-z0-9_-].
TOKEN_SHAPED = re.compile(rb"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{40}(?![A-Za-z0-9_-])")
#: Files we did not write (Pyodide, SQLite-Wasm, PyScript): only the names and canaries are
#: looked for there, since minified code and binaries are full of 40-character runs.
VENDOR = "/vendor/"
#: Files under web/ that serve.py does not serve (the schema is /sync/schema's to give: test_serve.py).
NOT_SERVED = ("/app/schema/",)


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.read()


def served_files(base: str) -> dict[str, bytes]:
    """Everything the app serves: the precache list, web/ and worker/ in full, and the wheel's members."""
    manifest = json.loads(fetch(base + "/precache-manifest.json")[1])
    urls = {e["url"] for e in manifest["entries"]} | {
        "/sw.js",
        "/precache-manifest.json",
        "/wheels/edgesql.json",
    }
    for folder, prefix in ((ROOT / "web", ""), (ROOT / "worker", "/worker")):
        urls |= {f"{prefix}/{p.relative_to(folder).as_posix()}" for p in folder.rglob("*") if p.is_file()}
    urls = {u for u in urls if not u.startswith(NOT_SERVED)}
    out = {}
    for url in sorted(urls):
        status, body = fetch(base + url)
        assert status == 200, (url, status)
        out[url] = body
    wheel_url = json.loads(out["/wheels/edgesql.json"])["url"]
    with zipfile.ZipFile(io.BytesIO(fetch(base + wheel_url)[1])) as z:
        for name in z.namelist():
            out[f"{wheel_url}!{name}"] = z.read(name)
    return out


def test_no_cloudflare_credential_is_served(tmp_path: Path) -> None:
    dev_vars = ROOT / "cloudflare" / ".dev.vars"
    secrets_in_dev_vars = [
        line.split("=", 1)[1].strip().encode()
        for line in (dev_vars.read_text().splitlines() if dev_vars.exists() else [])
        if "=" in line and not line.lstrip().startswith("#") and len(line.split("=", 1)[1].strip()) >= 8
    ]
    server = start_server(tmp_path / "data", env=CANARIES)
    try:
        files = served_files(server.url)
        refused = {
            path: fetch(server.url + path)[0]
            for path in (
                "/cloudflare/.dev.vars",
                "/cloudflare/wrangler.toml",
                "/.dev.vars",
                "/%2e%2e/cloudflare/.dev.vars",
                "/worker/..%2f..%2fcloudflare/.dev.vars",
                "/vendor/pyodide/../../cloudflare/.dev.vars",
                "/.env",
                "/data/primary.db",
                "/.git/config",
            )
        }
    finally:
        server.stop()
    assert len(files) > 100
    found = []
    for url, body in files.items():
        for name, value in CANARIES.items():
            if value.encode() in body:
                found.append(f"{url}: the value of ${name}")
        found += [f"{url}: a line of cloudflare/.dev.vars" for s in secrets_in_dev_vars if s in body]
        found += [f"{url}: {m.group().decode()}" for m in CREDENTIAL_NAMES.finditer(body)]
        if VENDOR not in url:
            found += [f"{url}: token-shaped {m.group().decode()}" for m in TOKEN_SHAPED.finditer(body)]
    assert not found, "\n".join(found)
    assert all(status == 404 for status in refused.values()), refused


# -- tokens are exactly what was given (issue 12, finding 2) --------------------------------------

PASSPHRASE = "correct horse battery staple"


def schema_status(url: str, token: str | None) -> int:
    return http("GET", url + "/sync/schema", token=token).status


@pytest.mark.parametrize("kind", ["sqlite", "d1-local"])
def test_a_token_with_spaces_is_one_token_on_every_primary(kind: str, tmp_path: Path) -> None:
    """d1-local used to join tokens with spaces for the Worker, which split them again:
    `Bearer horse` got in and the whole passphrase did not."""
    server = start_server(tmp_path / "data", "--primary", kind, "--auth-token", PASSPHRASE, timeout=90)
    try:
        assert schema_status(server.url, PASSPHRASE) == 200
        for wrong in (
            *PASSPHRASE.split(),
            "correct horse",
            "correct  horse battery staple",
            PASSPHRASE.upper(),
        ):
            assert schema_status(server.url, wrong) == 401, wrong
    finally:
        server.stop()


@pytest.mark.parametrize("kind", ["sqlite", "d1-local"])
def test_the_environment_holds_one_token_or_a_json_array(kind: str, tmp_path: Path) -> None:
    tokens = ["first-token", "second token with spaces"]
    server = start_server(
        tmp_path / "a", "--primary", kind, env={"EDGESQL_AUTH_TOKEN": json.dumps(tokens)}, timeout=90
    )
    try:
        assert [schema_status(server.url, t) for t in tokens] == [200, 200]
        assert [schema_status(server.url, t) for t in ("second", json.dumps(tokens), None)] == [401] * 3
    finally:
        server.stop()
    server = start_server(
        tmp_path / "b", "--primary", kind, env={"EDGESQL_AUTH_TOKEN": PASSPHRASE}, timeout=90
    )
    try:
        assert schema_status(server.url, PASSPHRASE) == 200  # not space-separated: one token
        assert schema_status(server.url, "horse") == 401
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("args", "env", "said"),
    [
        (["--auth-token", "padded "], {}, "whitespace"),
        (["--auth-token", " padded"], {}, "whitespace"),
        (["--auth-token", ""], {}, "empty"),
        (["--auth-token", "tab\tinside"], {}, "printable ASCII"),
        (["--auth-token", "caf\u00e9"], {}, "printable ASCII"),
        ([], {"EDGESQL_AUTH_TOKEN": "trailing-newline\n"}, "whitespace"),
        ([], {"EDGESQL_AUTH_TOKEN": '["ok-token", " padded"]'}, "whitespace"),
        ([], {"EDGESQL_AUTH_TOKEN": '["ok-token", 7]'}, "JSON array of strings"),
        ([], {"EDGESQL_AUTH_TOKEN": '["unclosed'}, "JSON array of strings"),
        ([], {"EDGESQL_AUTH_TOKEN": "[]"}, "no token"),
    ],
)
@pytest.mark.parametrize("kind", ["sqlite", "d1-local"])
def test_a_token_no_client_could_send_refuses_to_start(
    kind: str, args: list[str], env: dict[str, str], said: str, tmp_path: Path
) -> None:
    """Header values lose surrounding whitespace on the way (every HTTP parser strips it), so such
    a token could never match: serve.py says so instead of starting with a token nobody can use."""
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "serve.py"),
            "--port",
            "0",
            "--data",
            str(tmp_path),
            "--primary",
            kind,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env},
    )
    assert proc.returncode != 0 and "edgesql serving" not in proc.stdout
    assert said in proc.stderr, proc.stderr
    assert "padded" not in proc.stderr and "trailing-newline" not in proc.stderr  # never the token itself


# -- the Worker's own reading of EDGESQL_TOKEN ----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "good", "bad"),
    [
        (PASSPHRASE, [PASSPHRASE], ["horse", "correct"]),
        (json.dumps(["t1", "t two"]), ["t1", "t two"], ["t", "two", "t1 t two"]),
    ],
)
def test_the_worker_reads_one_token_or_a_json_array(
    tmp_path: Path, value: str, good: list[str], bad: list[str]
) -> None:
    from tests.test_d1_local import dev_worker

    (tmp_path / "migrations").mkdir()  # nothing applied: an authorized request gets 503 not_migrated
    with dev_worker(tmp_path, tmp_path / "migrations", {"EDGESQL_TOKEN": value}) as url:
        assert [http("GET", url + "/sync/schema", token=t).status for t in good] == [503] * len(good)
        assert [http("GET", url + "/sync/schema", token=t).status for t in bad] == [401] * len(bad)


@pytest.mark.parametrize("value", ["padded ", '["ok", " padded"]', '["ok", 7]', "[broken", "[]"])
def test_a_worker_token_no_client_could_send_is_a_configuration_error(tmp_path: Path, value: str) -> None:
    from tests.test_d1_local import dev_worker

    (tmp_path / "migrations").mkdir()
    with dev_worker(tmp_path, tmp_path / "migrations", {"EDGESQL_TOKEN": value}) as url:
        for token in ("ok", "padded", "padded ", None):
            answer = http("GET", url + "/sync/schema", token=token)
            assert answer.status == 500 and answer.json["error"] == "not_configured", (token, answer.body)
            assert "EDGESQL_TOKEN" in answer.json["message"] and "padded" not in answer.json["message"]
