"""Which ``Host`` and ``Origin`` headers serve.py answers: no DNS rebinding, no cross-site writes.

The default serve.py needs no token on 127.0.0.1: being on this machine is
the credential. Two ways let a web page borrow that position (issue 12):

* **DNS rebinding.** A page at ``attacker.example`` makes its own name
  resolve to 127.0.0.1; the browser then sends the page's requests to
  serve.py as same-origin ones, ``Host: attacker.example``. So every request
  must name a host the server was started for (:class:`HostPolicy`), or it
  gets 421 — static files too, since a page served under a rebound name
  would run with that name's origin. Accepted: ``--host`` with the port;
  ``localhost``, ``127.0.0.1`` and ``[::1]`` with the port when the server
  listens on loopback (or everywhere); any IP address with the port when it
  listens everywhere (``0.0.0.0``, ``::``): rebinding needs a name, and a
  client that typed an address is talking to this machine; and every
  ``--allowed-host`` (``name`` for any port, ``name:port`` for one).
* **Cross-site requests.** A page of another origin (another local dev
  server) can send a "simple" POST with no preflight. ``/sync`` takes only
  JSON (``front.py``; a browser preflights JSON, and serve.py answers no
  preflight), and :func:`origin_allowed` refuses an ``Origin`` other than the
  server's own or an ``--allowed-origin``. One more is let through: a request
  whose ``Sec-Fetch-Site`` is ``same-origin``, which only the browser sets
  (pages cannot) and which says the page that sent it came from the same
  origin as the URL it called — true of a page behind a proxy that rewrites
  ``Host`` (a reverse proxy, or the tests' fault proxy).
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = [
    "HostGuardMiddleware",
    "HostPolicy",
    "check_origin",
    "is_local_host",
    "origin_allowed",
    "split_host",
]

#: The names of this machine's loopback interface, as a Host header spells them.
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
_WILDCARD = frozenset({"0.0.0.0", "::", "[::]", ""})
_DEFAULT_PORT = {"http": 80, "https": 443}
#: A host as a Host header may name it: a DNS name or IPv4 address, or an IPv6 one in brackets.
_NAME = re.compile(r"\[[0-9a-f:.]+\]|[a-z0-9_.-]+")


def split_host(value: str, default_port: int = 80) -> tuple[str, int] | None:
    """``("name", port)`` from a Host header (``name``, ``name:port``, ``[v6]:port``), lower-cased;
    None if it is not one."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[: end + 1], value[end + 1 :]
    else:
        name, sep, port = value.partition(":")
        rest = f":{port}" if sep else ""
    if not _NAME.fullmatch(name):
        return None
    if not rest:
        return name, default_port
    if not rest.startswith(":") or not rest[1:].isdigit():
        return None
    return name, int(rest[1:])


def is_local_host(host: str) -> bool:
    """Is ``host`` reachable from this machine only (a loopback address, or localhost)?"""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def _host_name(bind: str) -> str:
    """How a Host header spells the address serve.py listens on."""
    bind = bind.lower()
    if ":" in bind and not bind.startswith("["):
        return f"[{bind}]"
    return bind


@dataclass(frozen=True)
class HostPolicy:
    """The Host headers one server answers."""

    port: int
    names: frozenset[str]  # accepted with ``port``
    any_port: frozenset[str] = frozenset()  # --allowed-host names without a port
    exact: frozenset[tuple[str, int]] = frozenset()  # --allowed-host name:port
    any_ip: bool = False  # listening everywhere: any IP address with ``port``
    hint: str = field(default="", compare=False)

    @classmethod
    def for_server(cls, bind: str, port: int, allowed: list[str] | tuple[str, ...] = ()) -> HostPolicy:
        """The policy of a server listening on ``bind``:``port``, with ``--allowed-host`` values ``allowed``."""
        name = _host_name(bind)
        wildcard = name in _WILDCARD
        names = {name} if not wildcard else set()
        if wildcard or is_local_host(bind):
            names |= LOOPBACK_NAMES
        any_port, exact = set(), set()
        for value in allowed:
            parsed = split_host(value, default_port=-1)
            if parsed is None:
                raise ValueError(f"--allowed-host {value!r} is not a host name (name, or name:port)")
            host, p = parsed
            if p == -1:
                any_port.add(host)
            else:
                exact.add((host, p))
        shown = sorted(f"{n}:{port}" for n in names)
        if wildcard:
            shown.append(f"<any IP address>:{port}")
        shown += sorted(any_port) + sorted(f"{h}:{p}" for h, p in exact)
        return cls(port, frozenset(names), frozenset(any_port), frozenset(exact), wildcard, ", ".join(shown))

    def allows(self, host_header: str | None) -> bool:
        """May a request with this Host header be answered? (None: HTTP/1.0 without one, not a browser.)"""
        if host_header is None:
            return True
        parsed = split_host(host_header, default_port=-1)
        if parsed is None:
            return False
        name, port = parsed
        # No port: the default of the scheme the client used, which a proxy in front may have
        # changed (https), so either.
        ports = {80, 443} if port == -1 else {port}
        if name in self.any_port or any((name, p) in self.exact for p in ports):
            return True
        if self.port not in ports:
            return False
        return name in self.names or (self.any_ip and _is_ip(name))

    def refusal(self, host_header: str) -> bytes:
        """The JSON body of the 421 for ``host_header``."""
        message = (
            f"this server does not answer for the host {host_header[:200]!r} (a page on another name that "
            f"resolves here is refused, against DNS rebinding); it answers for {self.hint}. "
            "To serve another name, start serve.py with --allowed-host NAME"
        )
        return json.dumps({"error": "unknown_host", "message": message}).encode()


class HostGuardMiddleware:
    """421 ``unknown_host`` for a request whose Host is not in the :class:`HostPolicy`, on every path."""

    def __init__(self, app: ASGIApp, policy: HostPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            hosts = [v for k, v in scope["headers"] if k == b"host"]
            host = hosts[0].decode("latin-1") if len(hosts) == 1 else None
            if len(hosts) > 1 or not self.policy.allows(host):
                body = self.policy.refusal(host or "<several Host headers>")
                headers = [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"no-store"),
                ]
                await send({"type": "http.response.start", "status": 421, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def _origin_key(origin: str) -> tuple[str, str, int] | None:
    parts = urlsplit(origin.strip().lower())
    if parts.scheme not in _DEFAULT_PORT or not parts.hostname or parts.path or parts.query:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    try:
        port = parts.port or _DEFAULT_PORT[parts.scheme]
    except ValueError:
        return None
    return parts.scheme, host, port


def check_origin(value: str) -> str:
    """An ``--allowed-origin`` value as the browser sends it (``scheme://host[:port]``), or ValueError."""
    if _origin_key(value) is None or value.endswith("/"):
        raise ValueError(
            f"--allowed-origin {value!r} is not an origin: give scheme, host and port as the browser sends "
            "them in its Origin header, e.g. https://app.example.com or http://localhost:3000 (no path)"
        )
    return value


def origin_allowed(
    origin: str | None, host: str | None, scheme: str, allowed: frozenset[str], fetch_site: str | None
) -> bool:
    """May a request from a page of ``origin`` reach /sync? (See the module docstring.)"""
    if origin is None:
        return True  # not sent by a page of another origin (CPython replicas, curl, same-origin GETs)
    if fetch_site == "same-origin":
        return True
    key = _origin_key(origin)
    if key is None:
        return False  # "null" (sandboxed frames, file: pages) and anything unreadable
    if any(_origin_key(a) == key for a in allowed):
        return True
    if host is None:
        return False
    own = split_host(host, _DEFAULT_PORT.get(scheme, 80))
    return own is not None and (scheme, *own) == key
