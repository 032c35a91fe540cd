"""Helpers for the Turso primaries in tests: what ``serve.py --primary turso-local`` printed."""

from __future__ import annotations

import re

from tests.conftest import Server

__all__ = ["sqld_pid", "sqld_url", "worker_url"]


def _line(server: Server, prefix: str) -> str:
    for line in server.log:
        if line.startswith(prefix):
            return line
    raise AssertionError(f"serve.py printed no {prefix!r} line:\n{''.join(server.log)}")


def sqld_pid(server: Server) -> int:
    """The pid of the sqld that serve.py --primary turso-local started."""
    return int(re.search(r"sqld \(pid (\d+)\)", _line(server, "edgesql turso-local:")).group(1))  # type: ignore[union-attr]


def sqld_url(server: Server) -> str:
    """The Hrana URL of that sqld."""
    return re.search(r"at (http://\S+),", _line(server, "edgesql turso-local:")).group(1)  # type: ignore[union-attr]


def worker_url(server: Server) -> str:
    """The URL of the Worker (on workerd, in front of Turso) that serve.py proxies /sync to."""
    return re.search(r"at (http://\S+?)/?,", _line(server, "edgesql turso:")).group(1)  # type: ignore[union-attr]
