"""``serve.py --primary d1-local`` as a process, and what only the Worker itself does:
CORS for the app's origin, its own checks before D1 (size, configuration,
migrations), D1's query budget, and a clean lifetime (a crash is reported,
nothing outlives serve.py)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from tests.conftest import ROOT, Server, start_server
from tests.sync.primaries import (
    CONTRACT_SCHEMA,
    TOKEN,
    http,
    insert,
    key,
    post_oversized,
    replica_id,
    sync,
    worker_url,
)
from tests.sync.wire import envelope

from edgesql.sync import d1
from edgesql.sync.schema import Migration

APP = "http://app.example"


def start_d1(data: Path, *args: str, env: dict[str, str] | None = None) -> Server:
    schema = data.parent / "schema.sql"
    schema.write_text(CONTRACT_SCHEMA)
    saved = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})  # serve.py passes its environment on to the Worker
    try:
        return start_server(data, "--primary", "d1-local", "--schema", str(schema), *args, timeout=90)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def d1_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """d1-local with a token, the app's origin, and a budget of 18 D1 queries per request (the least it takes)."""
    data = tmp_path_factory.mktemp("d1-local") / "data"
    server = start_d1(
        data, "--auth-token", TOKEN, env={"EDGESQL_ALLOWED_ORIGIN": APP, "EDGESQL_D1_QUERY_LIMIT": "18"}
    )
    yield server
    server.stop()


def miniflare_pid(server: Server) -> int:
    line = next(line for line in server.log if line.startswith("edgesql d1-local:"))
    return int(re.search(r"pid (\d+)", line).group(1))  # type: ignore[union-attr]


def descendants(pid: int) -> set[int]:
    """The process ids under ``pid`` (workerd under node), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    out: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_gone(pids: set[int], timeout: float = 15) -> set[int]:
    deadline = time.monotonic() + timeout
    while (left := {p for p in pids if alive(p)}) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


# -- CORS ------------------------------------------------------------------------------


def test_cors_answers_the_app_origin_only(d1_server: Server) -> None:
    worker = worker_url(d1_server)
    assert worker
    pre = {
        "origin": APP,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
    }
    ok = http("OPTIONS", worker + "/sync", token=None, headers=pre)
    assert ok.status == 204
    assert ok.headers["access-control-allow-origin"] == APP
    assert "POST" in ok.headers["access-control-allow-methods"]
    assert "authorization" in ok.headers["access-control-allow-headers"]
    evil = http("OPTIONS", worker + "/sync", token=None, headers={**pre, "origin": "http://evil.example"})
    assert evil.status == 403 and evil.json["error"] == "forbidden_origin"
    assert "access-control-allow-origin" not in evil.headers

    body = json.dumps(envelope(replica_id("cors"))).encode()
    mine = http("POST", worker + "/sync", body, headers={"origin": APP})
    assert mine.status == 200 and mine.headers["access-control-allow-origin"] == APP
    other = http("POST", worker + "/sync", body, headers={"origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    # Errors are readable by the app too (else the browser reports a CORS failure instead).
    denied = http("GET", worker + "/sync/schema", token="wrong", headers={"origin": APP})
    assert denied.status == 401 and denied.headers["access-control-allow-origin"] == APP


def test_the_worker_checks_size_and_routes_itself(d1_server: Server) -> None:
    worker = worker_url(d1_server)
    assert worker
    answer = post_oversized(worker + "/sync", b"x" * 4_000_001)
    assert (answer.status, json.loads(answer.body)["error"]) == (413, "too_large")
    assert http("GET", worker + "/elsewhere").status == 404
    wrong = http("GET", worker + "/sync")
    assert (wrong.status, wrong.json["error"], wrong.headers["allow"]) == (405, "method_not_allowed", "POST")


def test_a_change_too_long_for_d1_to_bind_is_rejected_alone(d1_server: Server) -> None:
    """Cells are at most 1.9 MB, but a key is not measured by the protocol: a change whose JSON
    passes D1's 2 MB per value cannot be bound even alone, so the Worker rejects it."""
    rid = replica_id("hugekey")
    changes = [insert(1, "items", key("k" * 1_100_000), c="x"), insert(2, "items", key("hugekey-ok"), c="y")]
    answer = sync(d1_server.url + "/sync", rid, changes)
    assert answer.status == 200 and answer.json["acked"] == 2, answer.body
    [rejected] = answer.json["rejected"]
    assert (
        rejected["seq"] == 1 and rejected["code"] == "too_large" and "D1 binds at most" in rejected["reason"]
    )


# -- D1's query budget -----------------------------------------------------------------


def test_when_d1_queries_run_out_the_rest_of_the_page_is_acknowledged_later(d1_server: Server) -> None:
    """Finding three bad changes among 64 takes more than 18 queries: each answer acknowledges
    the changes it settled, the replica sends the rest again, and in the end only the bad ones
    are rejected (a replayed change changes nothing)."""
    url = d1_server.url + "/sync"
    rid = replica_id("budget")
    changes = [
        insert(i + 1, "checked", key(f"budget-{i:02}"), n=-1 if i in (5, 30, 60) else i) for i in range(64)
    ]
    rejected: dict[int, str] = {}
    acked, rounds = 0, 0
    while acked < 64:
        answer = sync(url, rid, [c for c in changes if c[0] > acked])
        assert answer.status == 200, answer.body
        assert answer.json["acked"] > acked, "each answer settles at least one change"
        acked = answer.json["acked"]
        rejected.update({r["seq"]: r["code"] for r in answer.json["rejected"]})
        rounds += 1
    assert rounds > 1
    assert rejected == {6: "constraint", 31: "constraint", 61: "constraint"}


# -- configuration and migrations --------------------------------------------------------


@contextmanager
def dev_worker(tmp_path: Path, migrations: Path, env: dict[str, str]) -> Iterator[str]:
    """cloudflare/dev.mjs on its own, as a developer runs it."""
    result = d1.generate((Migration(1, "schema", CONTRACT_SCHEMA),), tmp_path / "none")
    bundle = tmp_path / "bundle.json"
    bundle.write_text(result.bundle)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EDGESQL_")}
    proc = subprocess.Popen(
        ["node", str(ROOT / "cloudflare" / "dev.mjs"), "--persist", str(tmp_path / "state"),
         "--migrations", str(migrations), "--bundle", str(bundle), "--exit-on-stdin-eof"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**clean, **env}, start_new_session=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        yield ready["url"].rstrip("/")
    finally:
        assert proc.stdin is not None
        proc.stdin.close()  # end of input: dev.mjs stops Miniflare and exits
        assert proc.wait(15) == 0
        proc.stdout.close()


def test_a_worker_without_a_token_refuses_to_serve(tmp_path: Path) -> None:
    (tmp_path / "migrations").mkdir()
    with dev_worker(tmp_path, tmp_path / "migrations", {}) as url:
        answer = http("GET", url + "/sync/schema", token=None)
        assert answer.status == 500 and answer.json["error"] == "not_configured"
        assert "wrangler secret put EDGESQL_TOKEN" in answer.json["message"]


def test_a_worker_on_an_unmigrated_d1_says_what_to_run(tmp_path: Path) -> None:
    (tmp_path / "migrations").mkdir()  # nothing applied
    with dev_worker(tmp_path, tmp_path / "migrations", {"EDGESQL_TOKEN": '["t1", "t2"]'}) as url:
        for token in ("t1", "t2"):  # several tokens: any of them
            answer = http("GET", url + "/sync/schema", token=token)
            assert answer.status == 503 and answer.json["error"] == "not_migrated"
            assert "wrangler d1 migrations apply" in answer.json["message"]


# -- lifetime --------------------------------------------------------------------------


def test_a_miniflare_crash_is_reported_and_sync_answers_503(tmp_path: Path) -> None:
    server = start_d1(tmp_path / "data")
    try:
        node = miniflare_pid(server)
        tree = descendants(node) | {node}
        assert http("GET", server.url + "/sync/schema", token=None).status == 200
        os.kill(node, signal.SIGKILL)
        assert not wait_gone(tree), "workerd outlived its node"
        answer = http("POST", server.url + "/sync", b"{}", token=None)
        assert answer.status == 503 and answer.json["error"] == "d1_worker_died"
        assert "exited with code" in answer.json["message"]
        deadline = time.monotonic() + 5
        while not any("D1 worker" in line and "exited" in line for line in server.log):
            assert time.monotonic() < deadline, "".join(server.log)
            time.sleep(0.1)
        assert server.proc.poll() is None  # serve.py itself keeps serving the app
    finally:
        server.stop()


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_nothing_outlives_serve_py(tmp_path: Path, how: str) -> None:
    server = start_d1(tmp_path / "data")
    node = miniflare_pid(server)
    tree = descendants(node) | {node}
    assert len(tree) >= 2, "node and workerd"
    if how == "SIGKILL":
        server.kill()  # no cleanup code runs: the closed pipe alone stops Miniflare
    else:
        server.stop()
    assert not wait_gone(tree), f"left running after {how}: {tree}"
