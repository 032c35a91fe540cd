"""``serve.py``'s command line: parse options, bind, print the URL, serve.

Exposure: serve.py listens on 127.0.0.1 by default. Listening anywhere else
(``--host 0.0.0.0``, a LAN address) makes ``/sync`` — every row of the app's
data, for reading and writing — reachable from other machines, so it refuses
to start without a token (``--auth-token``, or ``EDGESQL_AUTH_TOKEN`` to keep
the token out of the process list) unless told ``--insecure-no-auth``.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys
from pathlib import Path

import uvicorn

from ..sync.schema import SchemaError, load_migrations
from .app import ROOT, ServerConfig, create_app
from .primary import Primary
from .ratelimit import DEFAULT_RATE, RateLimiter, parse_rate
from .sync_routes import sync_routes

DEFAULT_SCHEMA = ROOT / "web" / "app" / "schema"

__all__ = ["default_rate", "exposure_problem", "is_local_host", "main"]

#: Where the tokens can come from without showing in `ps` (space-separated).
TOKEN_ENV = "EDGESQL_AUTH_TOKEN"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="serve.py",
        description="Serve the edgesql app and its embedded primary on this machine.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument(
        "--data", type=Path, default=Path("data"), help="folder for the primary's data (default ./data)"
    )
    p.add_argument(
        "--schema",
        type=Path,
        default=DEFAULT_SCHEMA,
        help="the app's schema: a .sql file, or a folder of NNNN_name.sql migrations (default: the demo app's)",
    )
    p.add_argument(
        "--auth-token",
        action="append",
        default=[],
        metavar="TOKEN",
        help="require 'Authorization: Bearer TOKEN' on /sync (repeatable; default: no token needed, "
        f"or the tokens in ${TOKEN_ENV}, space-separated, which keeps them out of the process list)",
    )
    p.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="serve /sync without a token on an address other machines can reach (never in production)",
    )
    p.add_argument(
        "--rate-limit",
        type=_rate,
        default=None,
        metavar="N/s",
        help=f"/sync requests per second per client (token and IP) on the embedded primary, or off "
        f"(default: {DEFAULT_RATE:g}/s when --host is reachable from other machines, off on 127.0.0.1)",
    )
    p.add_argument(
        "--rate-burst",
        type=float,
        default=None,
        metavar="N",
        help="requests a client may make at once before --rate-limit applies (default: 2 seconds' worth)",
    )
    p.add_argument(
        "--primary",
        choices=["sqlite", "d1-local"],
        default="sqlite",
        help="sqlite: the embedded primary, a SQLite file under --data (default); d1-local: the Cloudflare "
        "Worker on workerd with a local D1 under --data/d1 (Miniflare; needs Node and npm ci)",
    )
    return p.parse_args(argv)


def _rate(text: str) -> float:
    try:
        return parse_rate(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def is_local_host(host: str) -> bool:
    """Is ``host`` reachable from this machine only (a loopback address, or localhost)?"""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def exposure_problem(host: str, tokens: list[str], insecure_no_auth: bool) -> str | None:
    """Why serve.py must not start on ``host`` with these settings, or ``None``."""
    if tokens or insecure_no_auth or is_local_host(host):
        return None
    return (
        f"--host {host} lets other machines reach /sync, which reads and writes every row of the app: "
        f"give it a token with --auth-token TOKEN (or {TOKEN_ENV}=TOKEN, which keeps it out of the "
        "process list), or pass --insecure-no-auth if this network is yours alone"
    )


def default_rate(host: str) -> float:
    """The rate limit when --rate-limit is not given: none on a loopback address, where the only
    client is this machine's own (and the test suite's bursts), else :data:`DEFAULT_RATE`."""
    return 0.0 if is_local_host(host) else DEFAULT_RATE


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    tokens = [*args.auth_token, *os.environ.get(TOKEN_ENV, "").split()]
    problem = exposure_problem(args.host, tokens, args.insecure_no_auth)
    if problem:
        sys.exit(f"serve.py: {problem}")
    args.data.mkdir(parents=True, exist_ok=True)
    try:
        migrations = load_migrations(args.schema)
        if args.primary == "d1-local":
            from .d1local import D1Local  # stopped at exit, however serve.py ends

            routes = D1Local.start(args.data, migrations, tokens).routes()
        else:
            rate = args.rate_limit if args.rate_limit is not None else default_rate(args.host)
            limiter = RateLimiter(rate, args.rate_burst) if rate else None
            routes = sync_routes(Primary(args.data / "primary.db", migrations), tokens, limiter)
    except SchemaError as e:
        sys.exit(f"serve.py: {e}")
    app = create_app(ServerConfig(data_dir=args.data), extra_routes=routes)
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as e:
        sys.exit(f"serve.py: cannot listen on {args.host}:{args.port}: {e.strerror}; pick another --port")
    # Listen before saying so: a client that connects right after the URL is
    # printed waits in the backlog instead of being refused.
    sock.listen(2048)
    port = sock.getsockname()[1]
    print(app.state.precache.manifest.summary(), flush=True)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(
        f"edgesql serving http://{host}:{port}/  (the app; devtools: http://{host}:{port}/console.html)",
        flush=True,
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[sock])
