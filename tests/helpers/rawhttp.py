"""HTTP/1.1 by hand over raw sockets: requests no polite client sends.

Slow clients (a header or a body one byte at a time), idle connections,
headers a browser would never let a page set (``Host: attacker.example``), and
a declared ``Content-Length`` far beyond what is sent. urllib and httpx would
fix, refuse or hide each of these, so the tests that need them speak HTTP
themselves, with these few functions.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["RawAnswer", "connect", "read_answer", "request", "rss_bytes", "send_head"]


@dataclass
class RawAnswer:
    """What came back: status (0 if nothing did), lower-cased headers, the body, and how it ended."""

    status: int
    headers: dict[str, str]
    body: bytes
    ended: str  # "answered", "closed" (EOF, no answer), "reset", "timeout"

    @property
    def json(self) -> object:
        import json

        try:
            return json.loads(self.body)
        except ValueError:
            return None


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def connect(url: str, timeout: float = 10) -> socket.socket:
    sock = socket.create_connection(address(url), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def send_head(
    sock: socket.socket, method: str, path: str, host: str, headers: dict[str, str] | None = None
) -> None:
    """Send a request line and headers (and nothing of the body)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))


def read_answer(sock: socket.socket, timeout: float = 10) -> RawAnswer:
    """Read one response (headers, then Content-Length bytes of body), or say how the connection ended."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    try:
        while b"\r\n\r\n" not in data:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(65536)
            if not chunk:
                return RawAnswer(0, {}, data, "closed")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return RawAnswer(status, headers, body[:length], "answered")
    except ConnectionResetError:
        return RawAnswer(0, {}, data, "reset")
    except TimeoutError:
        return RawAnswer(0, {}, data, "timeout")


def request(
    url: str,
    method: str = "GET",
    path: str | None = None,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    host: str | None = None,
    timeout: float = 10,
) -> RawAnswer:
    """One request on a fresh connection, with exactly the headers given (plus Host and Content-Length)."""
    parts = urlsplit(url)
    h = dict(headers or {})
    if body or method == "POST":
        h.setdefault("Content-Length", str(len(body)))
    with connect(url, timeout) as sock:
        send_head(sock, method, path or parts.path or "/", host or parts.netloc, h)
        try:
            sock.sendall(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered before the body was in: read what it said
        return read_answer(sock, timeout)


def rss_bytes(pid: int) -> int:
    """The resident memory of process ``pid`` now."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise LookupError(f"no VmRSS for pid {pid}")
