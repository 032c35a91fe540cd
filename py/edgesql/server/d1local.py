"""``serve.py --primary d1-local``: the Cloudflare Worker on workerd, with a local D1
(and, for ``--primary turso`` / ``turso-local``, the same Worker in front of a Turso database:
see ``turso.py``).

serve.py starts ``cloudflare/dev.mjs`` (Miniflare: Cloudflare's own runtime,
workerd, and its local D1) as a child Node process, and proxies ``/sync`` and
``/sync/schema`` to it, so the app's sync URL stays ``/sync`` on the page's own
origin and the page does not change between primaries. The proxy stands
behind the same door as the embedded primary (``front.py``: origin, rate
limit, token, content type, size, a thread pool of its own), so both answer
a bad request alike before the Worker sees it; the Worker checks the token
again, and gets the tokens as a JSON array (``EDGESQL_TOKEN``), never joined
with spaces it would split a passphrase at. The Worker runs the
exact code that ``wrangler deploy`` ships, against a D1 persisted under
``--data/d1/state``, migrated with the files ``python -m edgesql d1-migrations``
generates from ``--schema`` (written under ``--data/d1``).

Lifetime: the child runs in its own process group with a pipe on its stdin.
serve.py closes the pipe when it exits (and the kernel does, when serve.py is
killed), and dev.mjs exits on end-of-input, taking workerd with it; stop()
also kills the group, so no node or workerd process outlives serve.py. When
the child dies on its own, serve.py says so on stderr and ``/sync`` answers
503 ``d1_worker_died`` with the child's last words, instead of hanging.
"""

from __future__ import annotations

import atexit
import collections
import http.client
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

from starlette.routing import BaseRoute

from ..sync import d1
from ..sync.buckets import Access
from ..sync.schema import Migration
from .app import ROOT
from .front import Answer, FrontConfig, front_routes

__all__ = ["D1Local"]

#: How long Miniflare may take to start and migrate (about 1 s here; CI machines are slower).
START_TIMEOUT_S = 60.0
#: A /sync request may take this long in the Worker (D1's own limit per batch is 30 s).
REQUEST_TIMEOUT_S = 60.0
#: Threads forwarding to the Worker at once. Each waits on a socket while workerd works;
#: workerd serves requests concurrently, and D1 queues what it cannot run at once.
D1_PROXY_THREADS = 16
_PASSED_HEADERS = ("cache-control", "retry-after")  # (front.py sets the content type)


class D1Local:
    """The Worker on Miniflare, as a child process of serve.py; see the module docstring."""

    def __init__(
        self, proc: subprocess.Popen[str], url: str, stderr_tail: collections.deque[str], kind: str = "d1"
    ) -> None:
        self.proc = proc
        self.kind = kind  # "d1" or "turso": the database behind the Worker, in messages and codes
        self.url = url.rstrip("/")
        parts = urlsplit(self.url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._tail = stderr_tail
        self._stopping = False
        self.died: str | None = None
        threading.Thread(target=self._watch, name="d1-local-watch", daemon=True).start()
        atexit.register(self.stop)

    # -- lifetime -------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        data: Path,
        migrations: tuple[Migration, ...],
        tokens: Sequence[str] = (),
        root: Path = ROOT,
        turso_url: str | None = None,
        turso_token: str = "",
        access: Access | None = None,
        worker_env: Mapping[str, str] | None = None,
    ) -> D1Local:
        """Generate the D1 migrations and bundle for ``migrations``, start Miniflare, wait until it serves.

        With ``turso_url`` the Worker fronts that Turso (libSQL) database instead of a local D1,
        and the same migrations are applied to it; its files live under ``data``/turso.
        ``access`` are the schema's access rules; ``worker_env`` the users' JWT settings
        (identity.JwtIdentity.worker_env), which the Worker checks as serve.py does.

        Raises SystemExit with the reason when Node or Miniflare is missing or fails to start.
        """
        kind = "turso" if turso_url else "d1"
        node = shutil.which("node")
        if node is None or not (root / "node_modules" / "miniflare").is_dir():
            raise SystemExit(
                f"serve.py --primary {kind}{'' if turso_url else '-local'} needs Node.js (20 or later) and "
                "Miniflare to run the Worker: install Node, "
                "then run `make install` (npm ci)"
            )
        base = (data / kind).resolve()  # node runs in the checkout, not in serve.py's directory
        d1.write(migrations, base / "migrations", base / "bundle.json", access)
        # The Worker checks users exactly as serve.py does: no JWT setting from the shell.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGESQL_JWT", "EDGESQL_JWKS"))}
        env.update(worker_env or {})
        # No --auth-token means no token, as with the embedded primary (never a token from .dev.vars).
        # A JSON array: a token's spaces stay inside it (the Worker reads "[..." as an array).
        env["EDGESQL_TOKEN"] = json.dumps(list(tokens)) if tokens else ""
        env["EDGESQL_ALLOW_ANONYMOUS"] = "false" if tokens else "true"
        env["EDGESQL_TURSO_TOKEN"] = turso_token  # (never on the command line)
        cmd = [
            node,
            str(root / "cloudflare" / "dev.mjs"),
            *("--persist", str(base / "state")),
            *("--migrations", str(base / "migrations")),
            *("--bundle", str(base / "bundle.json")),
            *("--host", "127.0.0.1", "--port", "0", "--exit-on-stdin-eof"),
            *(("--turso-url", turso_url) if turso_url else ()),
        ]
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            env=env,
            cwd=root,
            start_new_session=True,  # its own process group: stop() kills workerd with it
        )
        tail: collections.deque[str] = collections.deque(maxlen=20)
        assert proc.stdout is not None and proc.stderr is not None
        threading.Thread(target=_pump_stderr, args=(proc.stderr, tail), daemon=True).start()
        events: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_pump_stdout, args=(proc.stdout, events), daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                line = events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                _kill_group(proc)
                raise SystemExit(
                    f"serve.py: Miniflare did not start within {START_TIMEOUT_S:.0f} s:\n" + "".join(tail)
                ) from None
            if line is None:
                proc.wait(5)
                raise SystemExit(
                    f"serve.py: the {'D1' if kind == 'd1' else 'Turso'} worker (Miniflare) exited with code "
                    f"{proc.returncode} while starting:\n" + "".join(tail)
                )
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "ready":
                applied = ", ".join(event.get("applied") or []) or "none new"
                where = (
                    f"D1 in {base / 'state'}" if kind == "d1" else f"in front of {_redacted(turso_url or '')}"
                )
                print(
                    f"edgesql {'d1-local' if kind == 'd1' else 'turso'}: the Worker on workerd (Miniflare, pid {proc.pid}) at {event['url']}, "
                    f"{where}; migrations applied: {applied}",
                    flush=True,
                )
                return cls(proc, event["url"], tail, kind)

    def _watch(self) -> None:
        code = self.proc.wait()
        if self._stopping:
            return
        last = "".join(self._tail).strip() or "(it printed nothing)"
        self.died = (
            f"the {self._label} worker (Miniflare, pid {self.proc.pid}) exited with code {code}; restart serve.py. "
            f"Its last words: {last[-1500:]}"
        )
        print(f"serve.py: {self.died}", file=sys.stderr, flush=True)
        _kill_group(self.proc)  # workerd, if node died without taking it along

    @property
    def _label(self) -> str:
        return "D1" if self.kind == "d1" else "Turso"

    def stop(self) -> None:
        """Stop Miniflare and workerd (idempotent): end of input first, then signals."""
        if self._stopping:
            return
        self._stopping = True
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        _kill_group(self.proc)

    # -- the proxy ------------------------------------------------------------------

    def routes(self, front: FrontConfig) -> list[BaseRoute]:
        """``POST /sync`` and ``GET /sync/schema``, checked by ``front``, then forwarded to the Worker."""
        return front_routes(_WorkerBackend(self), replace(front, threads=D1_PROXY_THREADS))

    def forward(self, method: str, path: str, body: bytes | None, auth: str | None) -> Answer:
        """Send one request to the Worker (blocking); its answer, or a 5xx saying why there is none."""
        if self.died:
            return _json_answer(503, f"{self.kind}_worker_died", self.died)
        try:
            status, headers, data = self._send(method, path, body, auth)
        except OSError as e:
            if self.died or self.proc.poll() is not None:
                message = self.died or f"the {self._label} worker (Miniflare) exited; restart serve.py"
                return _json_answer(503, f"{self.kind}_worker_died", message)
            return _json_answer(
                502, f"{self.kind}_worker_unreachable", f"the {self._label} worker did not answer: {e}"
            )
        return Answer(status, data, headers)

    def _send(
        self, method: str, path: str, body: bytes | None, auth: str | None
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(self._host, self._port, timeout=REQUEST_TIMEOUT_S)
        try:
            headers = {"content-type": "application/json"}
            if auth is not None:
                headers["authorization"] = auth
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            kept = {k: v for k in _PASSED_HEADERS if (v := resp.getheader(k)) is not None}
            return resp.status, kept, data
        finally:
            conn.close()


class _WorkerBackend:
    """:meth:`D1Local.forward` as front.py's backend."""

    def __init__(self, d1: D1Local) -> None:
        self.d1 = d1

    def schema(self, authorization: str | None) -> Answer:
        return self.d1.forward("GET", "/sync/schema", None, authorization)

    def sync(self, authorization: str | None, body: bytes) -> Answer:
        return self.d1.forward("POST", "/sync", body, authorization)


def _redacted(url: str) -> str:
    """A database URL without any credentials in it (a URL may carry ?authToken=...)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"


def _json_answer(status: int, code: str, message: str) -> Answer:
    return Answer(status, json.dumps({"error": code, "message": message}).encode())


def _pump_stdout(stream: object, events: queue.Queue[str | None]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        events.put(line)
    events.put(None)


def _pump_stderr(stream: object, tail: collections.deque[str]) -> None:
    """Forward the child's log to serve.py's stderr, keeping the last lines for a crash report."""
    for line in stream:  # type: ignore[attr-defined]
        tail.append(line)
        print(f"[d1-local] {line}", end="", file=sys.stderr, flush=True)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """Kill the child's process group (node and the workerd it started), if anything is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(3)
        except subprocess.TimeoutExpired:
            continue
        if sig is signal.SIGTERM:
            time.sleep(0.2)  # let workerd go too, then make sure
