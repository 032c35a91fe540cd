"""The HTTP layer in front of /sync against hostile and broken clients, on both primaries.

Issue 12: slow and idle clients held serve.py forever, a body was read before
its token was checked, a declared 10 GB ``Content-Length`` got no answer from
d1-local, any ``Host`` and any ``Origin`` could read and write, and slow /sync
work starved the static files. Each test here reproduces one of those over
real sockets against a real serve.py (``--primary sqlite`` and ``--primary
d1-local``), with the timeouts shortened by flags so that it takes seconds.
"""

from __future__ import annotations

import json
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import ROOT, start_server
from tests.helpers.load import fill_log, hammer, page_latencies
from tests.helpers.rawhttp import connect, read_answer, request, rss_bytes, send_head
from tests.sync.primaries import CONTRACT_SCHEMA, TOKEN, PrimaryServer, insert, key, replica_id, worker_url
from tests.sync.wire import envelope

from edgesql.server.hosts import HostPolicy

PRIMARIES = ["sqlite", "d1-local"]
#: The shortened limits the module's servers run with (the defaults are in connections.py).
HEADER_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 1.0
#: How late past a limit the server may act and still pass (a loaded 2-core machine).
SLACK_S = 3.0
ALLOWED_HOST = "sync.example"
ALLOWED_ORIGIN = "http://app.example"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JSON_TYPE = {"Content-Type": "application/json"}


@pytest.fixture(scope="module", params=PRIMARIES)
def primary(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrimaryServer]:
    base = tmp_path_factory.mktemp(f"hardening-{request.param}")
    schema = base / "schema.sql"
    schema.write_text(CONTRACT_SCHEMA)
    server = start_server(
        base / "data",
        *("--primary", request.param, "--schema", str(schema), "--auth-token", TOKEN),
        *("--header-timeout", str(HEADER_TIMEOUT_S), "--body-timeout", str(BODY_TIMEOUT_S)),
        *("--allowed-host", ALLOWED_HOST, "--allowed-origin", ALLOWED_ORIGIN),
        timeout=90,
    )
    yield PrimaryServer(request.param, server, worker_url(server))
    server.stop()


def host_of(p: PrimaryServer) -> str:
    return p.url.split("//", 1)[1]


def push_body(tag: str, n: int = 1) -> bytes:
    """A request pushing ``n`` fresh rows whose keys start with ``tag``."""
    changes = [insert(i + 1, "items", key(f"{tag}-{i}"), c=tag) for i in range(n)]
    return json.dumps(envelope(replica_id(tag), changes=changes)).encode()


def stored(p: PrimaryServer, tag: str) -> int:
    return p.query("SELECT count(*) FROM items WHERE c = ?", (tag,))[0][0]


def ended_within(sock: socket.socket, seconds: float) -> tuple[str, float]:
    """Wait for the server to end the connection (or answer); how it ended and after how long."""
    t0 = time.monotonic()
    answer = read_answer(sock, timeout=seconds)
    return answer.ended if answer.status == 0 else f"answered {answer.status}", time.monotonic() - t0


# -- finding 3: slow and idle clients ---------------------------------------------------------


def test_an_idle_connection_is_closed_after_the_header_timeout(primary: PrimaryServer) -> None:
    with connect(primary.url) as sock:
        how, after = ended_within(sock, HEADER_TIMEOUT_S + SLACK_S)
    assert how in ("closed", "reset"), how
    assert after >= HEADER_TIMEOUT_S * 0.9


def test_a_request_head_dripped_a_byte_at_a_time_is_cut_off(primary: PrimaryServer) -> None:
    """Slowloris: each byte comes in time for a per-read timeout, but the head never ends."""
    head = f"GET /sync/schema HTTP/1.1\r\nHost: {host_of(primary)}\r\nX-Padding: {'a' * 200}\r\n".encode()
    t0 = time.monotonic()
    sent = 0
    with connect(primary.url) as sock:
        try:
            for byte in head:
                sock.sendall(bytes([byte]))
                sent += 1
                time.sleep(0.1)
                if time.monotonic() - t0 > HEADER_TIMEOUT_S + SLACK_S:
                    break
            answer = read_answer(sock, timeout=SLACK_S)
        except (BrokenPipeError, ConnectionResetError):
            answer = None
    elapsed = time.monotonic() - t0
    assert sent < len(head), "the server waited for the whole dripped head"
    assert elapsed < HEADER_TIMEOUT_S + SLACK_S
    if answer is not None and answer.status:
        assert answer.status == 408 and answer.json["error"] == "request_timeout"


def test_a_body_dripped_a_byte_at_a_time_gets_408(primary: PrimaryServer) -> None:
    body = push_body("drip")
    with connect(primary.url) as sock:
        send_head(
            sock, "POST", "/sync", host_of(primary), {**AUTH, **JSON_TYPE, "Content-Length": str(len(body))}
        )
        t0 = time.monotonic()
        answer = None
        for byte in body:
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            sock.settimeout(0.2)
            try:
                if sock.recv(1, socket.MSG_PEEK):
                    break  # the server said something
            except TimeoutError:
                continue
        answer = read_answer(sock, timeout=SLACK_S)
    assert time.monotonic() - t0 < BODY_TIMEOUT_S + SLACK_S
    assert answer.status == 408, answer
    assert answer.json["error"] == "request_timeout" and "seconds" in answer.json["message"]
    assert stored(primary, "drip") == 0


def test_the_token_is_checked_before_the_body_is_read(primary: PrimaryServer) -> None:
    """401 right after the head: no byte of the declared body sent, and nothing buffered for it."""
    with connect(primary.url) as sock:
        send_head(sock, "POST", "/sync", host_of(primary), {**JSON_TYPE, "Content-Length": "3990000"})
        answer = read_answer(sock, timeout=5)
    assert answer.status == 401 and answer.json["error"] == "unauthorized"


def test_fifty_tokenless_clients_with_4mb_bodies_cost_no_memory(primary: PrimaryServer) -> None:
    """Each client announces 3.99 MB and starts sending: each is refused after its head, and
    serve.py's memory does not grow by the bodies (it grew by ~220 MB before the fix)."""
    pid = primary.server.proc.pid
    before = rss_bytes(pid)
    chunk = b"x" * 65536
    size = 3_990_000
    answers: list[int] = []

    def client() -> None:
        with connect(primary.url, timeout=30) as sock:
            send_head(sock, "POST", "/sync", host_of(primary), {**JSON_TYPE, "Content-Length": str(size)})
            sent = 0
            try:
                while sent < size:
                    sock.sendall(chunk[: size - sent])
                    sent += len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
            answers.append(read_answer(sock, timeout=30).status)

    threads = [threading.Thread(target=client) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    grew = rss_bytes(pid) - before
    assert answers.count(401) >= 45, answers  # (a few may see the connection end first)
    assert grew < 40_000_000, f"serve.py grew by {grew / 1e6:.0f} MB"


def test_a_declared_10gb_body_gets_413_at_once(primary: PrimaryServer) -> None:
    """The answer comes without the body being read, on both primaries, while the client keeps sending."""
    stop = threading.Event()
    with connect(primary.url) as sock:
        send_head(
            sock, "POST", "/sync", host_of(primary), {**AUTH, **JSON_TYPE, "Content-Length": "10000000000"}
        )

        def keep_sending() -> None:
            try:
                while not stop.is_set():
                    sock.sendall(b"x" * 65536)
            except OSError:
                pass

        sender = threading.Thread(target=keep_sending)
        sender.start()
        try:
            answer = read_answer(sock, timeout=10)
        finally:
            stop.set()
            sender.join(15)
    assert answer.status == 413, answer
    assert answer.json == {"error": "too_large", "message": answer.json["message"]}
    assert "4000000" in answer.json["message"]


def test_a_client_that_sends_the_whole_oversized_body_first_still_reads_413(primary: PrimaryServer) -> None:
    """Most clients send the whole body before they read: the server keeps reading (and dropping)
    it for a while after answering, so the answer is not lost to a connection reset."""
    body = b'{"pad": "' + b"x" * 4_100_000 + b'"}'
    answer = request(primary.url, "POST", "/sync", body, {**AUTH, **JSON_TYPE}, timeout=30)
    assert answer.status == 413 and answer.json["error"] == "too_large", answer


def test_idle_connections_beyond_the_cap_do_not_stop_the_static_files(tmp_path: Path) -> None:
    """With the cap at 60 connections and 150 idle sockets held open, pages are still served:
    the longest-idle connections make room for new ones."""
    server = start_server(tmp_path / "data", "--max-connections", "60")
    held: list[socket.socket] = []
    try:
        for _ in range(150):
            held.append(connect(server.url))
        t0 = time.monotonic()
        answer = request(server.url, path="/index.html", timeout=10)
        assert answer.status == 200 and time.monotonic() - t0 < 2
        closed = 0
        for sock in held:
            sock.settimeout(0.01)
            try:
                closed += sock.recv(1) == b""
            except (TimeoutError, ConnectionResetError):
                closed += 0
        assert closed >= 80, f"only {closed} idle connections were let go"
    finally:
        for sock in held:
            sock.close()
        server.stop()


def test_the_open_file_limit_is_raised_so_idle_sockets_cannot_exhaust_it(tmp_path: Path) -> None:
    """Started with a soft limit of 256 open files (a common default), serve.py raises it to the
    hard limit: 300 idle sockets then leave it serving (before, accept() failed: EMFILE)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 1024:
        pytest.skip(f"the hard limit here is {hard}")
    cmd = [sys.executable, str(ROOT / "serve.py"), "--port", "0", "--data", str(tmp_path / "data")]

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=low_limit
    )
    held: list[socket.socket] = []
    try:
        assert proc.stdout is not None
        url = ""
        while not url:
            line = proc.stdout.readline()
            assert line, "serve.py exited"
            if line.startswith("edgesql serving "):
                url = line.split()[2].rstrip("/")
        limits = Path(f"/proc/{proc.pid}/limits").read_text()
        [row] = [r for r in limits.splitlines() if r.startswith("Max open files")]
        soft_now = int(row.split()[3])  # "Max open files  <soft>  <hard>  files"
        assert soft_now == hard if hard != resource.RLIM_INFINITY else soft_now > 256
        for _ in range(300):
            held.append(connect(url))
        answer = request(url, path="/index.html", timeout=10)
        assert answer.status == 200
    finally:
        for sock in held:
            sock.close()
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_a_client_that_stops_reading_its_answer_is_cut_off() -> None:
    """An answer nobody reads fills the socket's buffers, and uvicorn then waits for the client
    for good, holding the connection. The guard drops it after write_stall seconds (60 by
    default; 0.5 here, on uvicorn in this process with an app that answers 16 MB)."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    from edgesql.server.connections import ConnectionGuard, ConnectionLimits

    big = b"x" * 16_000_000

    async def answer(_request: object) -> Response:
        return Response(big, media_type="application/octet-stream")

    guard = ConnectionGuard(ConnectionLimits(write_stall=0.5))
    config = uvicorn.Config(
        Starlette(routes=[Route("/big", answer)]), http=guard.protocol_class(), log_level="warning"
    )
    server = uvicorn.Server(config)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        assert len(request(url, path="/big", timeout=30).body) == len(big)  # a reader gets it all
        with connect(url) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            send_head(sock, "GET", "/big", url.split("//")[1])
            deadline = time.monotonic() + 0.5 + SLACK_S  # not reading meanwhile
            while guard.live and time.monotonic() < deadline:
                time.sleep(0.05)
            assert guard.live == 0, "the connection is still held"
            received = 0
            sock.settimeout(5)
            try:
                while chunk := sock.recv(1 << 20):
                    received += len(chunk)
            except ConnectionResetError:
                pass
        assert received < len(big)
    finally:
        server.should_exit = True
        thread.join(10)
        listener.close()


# -- finding 4: cross-site writes and DNS rebinding --------------------------------------------


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_sync_takes_only_json(primary: PrimaryServer, content_type: str | None) -> None:
    """A page of another origin can POST text/plain (or a form) without a preflight: refused, 415."""
    tag = f"ctype-{(content_type or 'none').split('/')[-1]}"
    headers = dict(AUTH)
    if content_type:
        headers["Content-Type"] = content_type
    answer = request(primary.url, "POST", "/sync", push_body(tag), headers)
    assert answer.status == 415, answer
    assert answer.json["error"] == "unsupported_media_type" and "application/json" in answer.json["message"]
    assert stored(primary, tag) == 0


def test_json_with_a_charset_is_json(primary: PrimaryServer) -> None:
    headers = {**AUTH, "Content-Type": "Application/JSON; charset=utf-8"}
    assert request(primary.url, "POST", "/sync", push_body("charset"), headers).status == 200
    assert stored(primary, "charset") == 1


@pytest.mark.parametrize("path", ["/sync", "/sync/schema", "/index.html"])
@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:{port}", "127.0.0.1.nip.io:{port}"])
def test_a_host_the_server_was_not_started_for_is_refused(
    primary: PrimaryServer, path: str, host: str
) -> None:
    """DNS rebinding: a page at attacker.example whose name now points at 127.0.0.1."""
    port = primary.url.rsplit(":", 1)[1]
    tag = f"rebind-{abs(hash((path, host))) % 10**8}"
    method, body = ("POST", push_body(tag)) if path == "/sync" else ("GET", b"")
    answer = request(primary.url, method, path, body, {**AUTH, **JSON_TYPE}, host=host.format(port=port))
    assert answer.status == 421, answer
    assert answer.json["error"] == "unknown_host" and "--allowed-host" in answer.json["message"]
    assert stored(primary, tag) == 0


@pytest.mark.parametrize(
    ("bind", "allowed", "host", "answered"),
    [
        ("127.0.0.1", [], "127.0.0.1:8000", True),
        ("127.0.0.1", [], "LOCALHOST:8000", True),
        ("127.0.0.1", [], "[::1]:8000", True),
        ("127.0.0.1", [], "localhost:8001", False),  # another port: another server's name
        ("127.0.0.1", [], "192.168.1.5:8000", False),  # not an address this server listens on
        ("127.0.0.1", [], "attacker.example:8000", False),
        ("127.0.0.1", [], "a b:8000", False),
        ("0.0.0.0", [], "192.168.1.5:8000", True),  # everywhere: any address (rebinding needs a name)
        ("0.0.0.0", [], "my-laptop.local:8000", False),
        ("192.168.1.5", [], "192.168.1.5:8000", True),
        ("192.168.1.5", [], "127.0.0.1:8000", False),
        ("127.0.0.1", ["app.example"], "app.example", True),  # without a port: any port
        ("127.0.0.1", ["app.example"], "app.example:9999", True),
        ("127.0.0.1", ["app.example:443"], "app.example", True),  # no port: 80 or 443 (a TLS proxy)
        ("127.0.0.1", ["app.example:443"], "app.example:8443", False),
    ],
)
def test_the_hosts_a_server_answers(bind: str, allowed: list[str], host: str, answered: bool) -> None:
    assert HostPolicy.for_server(bind, 8000, allowed).allows(host) is answered


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost", "[::1]", ALLOWED_HOST])
def test_the_hosts_the_server_was_started_for_are_served(primary: PrimaryServer, name: str) -> None:
    port = primary.url.rsplit(":", 1)[1]
    answer = request(primary.url, path="/sync/schema", headers=AUTH, host=f"{name}:{port}")
    assert answer.status == 200, answer


@pytest.mark.parametrize("path", ["/sync", "/sync/schema"])
@pytest.mark.parametrize(
    "origin", ["http://localhost:3000", "http://127.0.0.1:1", "null", "http://evil.example"]
)
def test_a_foreign_origin_is_refused(primary: PrimaryServer, path: str, origin: str) -> None:
    tag = f"origin-{abs(hash((path, origin))) % 10**8}"
    method, body = ("POST", push_body(tag)) if path == "/sync" else ("GET", b"")
    headers = {**AUTH, **JSON_TYPE, "Origin": origin, "Sec-Fetch-Site": "cross-site"}
    answer = request(primary.url, method, path, body, headers)
    assert answer.status == 403, answer
    assert answer.json["error"] == "forbidden_origin" and "--allowed-origin" in answer.json["message"]
    assert stored(primary, tag) == 0


@pytest.mark.parametrize("origin", ["own", ALLOWED_ORIGIN])
def test_the_own_origin_and_allowed_ones_may_sync(primary: PrimaryServer, origin: str) -> None:
    tag = f"origin-ok-{len(origin)}"
    own = primary.url if origin == "own" else origin
    answer = request(primary.url, "POST", "/sync", push_body(tag), {**AUTH, **JSON_TYPE, "Origin": own})
    assert answer.status == 200, answer
    assert stored(primary, tag) == 1


def test_a_page_the_browser_calls_same_origin_may_sync_through_a_proxy(primary: PrimaryServer) -> None:
    """A proxy in front (tests/sync/faultproxy.py, or a reverse proxy that sets its own Host) makes
    the page's Origin differ from the Host serve.py sees; the browser's Sec-Fetch-Site, which no
    page can set, still says same-origin."""
    headers = {**AUTH, **JSON_TYPE, "Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "same-origin"}
    assert request(primary.url, "POST", "/sync", push_body("proxied"), headers).status == 200


@pytest.mark.parametrize("primary", ["d1-local"], indirect=True)
def test_the_local_worker_refuses_a_page_at_its_own_origin(primary: PrimaryServer) -> None:
    """workerd answers any Host, so a rebound name can point at the Worker's own port, and the
    page is then same-origin with it: the Worker lets in only EDGESQL_ALLOWED_ORIGIN. (Only the
    Worker has a port of its own; serve.py's check is the test above.)"""
    assert primary.worker_url is not None
    port = primary.worker_url.rsplit(":", 1)[1]
    rebound = f"rebound.test:{port}"
    headers = {**AUTH, **JSON_TYPE, "Origin": f"http://{rebound}"}
    answer = request(primary.worker_url, "POST", "/sync", push_body("worker-own"), headers, host=rebound)
    assert answer.status == 403 and answer.json["error"] == "forbidden_origin", answer
    assert stored(primary, "worker-own") == 0


# -- finding 7: forwarding headers ---------------------------------------------------------------


def test_forwarding_headers_are_ignored_by_default(primary: PrimaryServer) -> None:
    """Without --forwarded-allow-ips, X-Forwarded-Proto does not change the origin the server
    considers its own (nor does X-Forwarded-For the client; see test_rate_limit.py)."""
    own = primary.url.replace("http://", "https://")
    headers = {**AUTH, **JSON_TYPE, "Origin": own, "X-Forwarded-Proto": "https"}
    assert request(primary.url, "POST", "/sync", push_body("xfp"), headers).status == 403


# -- finding 8: the schema file, D1's error text --------------------------------------------------


def test_d1_failures_answer_a_stable_message_and_log_the_detail(tmp_path: Path) -> None:
    """D1's own words (table names, SQL) stay in the Worker's log; the caller gets what to do.
    The fault is real: a table the sync SQL needs is dropped from workerd's D1 file."""
    import sqlite3

    schema = tmp_path / "schema.sql"
    schema.write_text(CONTRACT_SCHEMA)
    server = start_server(
        tmp_path / "data", "--primary", "d1-local", "--schema", str(schema), "--auth-token", TOKEN, timeout=90
    )
    try:
        p = PrimaryServer("d1-local", server, worker_url(server))
        assert request(p.url, "POST", "/sync", push_body("before-drop"), {**AUTH, **JSON_TYPE}).status == 200
        conn = sqlite3.connect(p.db_path(), timeout=10)
        try:
            conn.execute("DROP TABLE _edgesql_clock")
            conn.commit()
        finally:
            conn.close()
        answer = request(p.url, "POST", "/sync", push_body("after-drop"), {**AUTH, **JSON_TYPE})
        assert answer.status == 503 and answer.json["error"] == "primary_unavailable", answer
        assert "_edgesql_clock" not in answer.json["message"] and "SQLITE" not in answer.json["message"]
        assert answer.headers.get("retry-after")
        deadline = time.monotonic() + 5
        while not any("_edgesql_clock" in line for line in server.log):
            assert time.monotonic() < deadline, "the detail is not in the log"
            time.sleep(0.1)
    finally:
        server.stop()


# -- finding 6: sync work cannot starve the pages -----------------------------------------------


def test_pages_are_served_while_fifty_clients_hammer_sync(primary: PrimaryServer) -> None:
    """50 clients pull full pages back to back; GET /index.html stays quick. Before /sync had a
    pool of its own, pages queued behind it for the shared threads (24 s with 80 slow pulls).
    The bounds are generous: the figures come from bench/static_under_sync.py (docs/reliability.md)."""
    fill_log(primary.url, TOKEN, 4_000)
    with hammer(primary.url, TOKEN, clients=50) as stats:
        time.sleep(2)  # every client has a request in
        latencies = page_latencies(primary.url, "/index.html", 40)
    assert stats.statuses.get(200, 0) > 50, stats.statuses
    assert stats.errors == 0
    latencies.sort()
    assert latencies[-1] < 1.0, (
        f"GET /index.html took up to {latencies[-1]:.2f} s (median {latencies[20]:.3f} s)"
    )
