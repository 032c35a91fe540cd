"""``serve.py``'s command line: parse options, bind, print the URL, serve."""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

import uvicorn

from ..sync.schema import SchemaError, load_migrations
from .app import ROOT, ServerConfig, create_app
from .primary import Primary
from .sync_routes import sync_routes

DEFAULT_SCHEMA = ROOT / "web" / "app" / "schema"

__all__ = ["main"]


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
        help="require 'Authorization: Bearer TOKEN' on /sync (repeatable; default: no token needed)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.data.mkdir(parents=True, exist_ok=True)
    try:
        migrations = load_migrations(args.schema)
        primary = Primary(args.data / "primary.db", migrations)
    except SchemaError as e:
        sys.exit(f"serve.py: {e}")
    app = create_app(ServerConfig(data_dir=args.data), extra_routes=sync_routes(primary, args.auth_token))
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as e:
        sys.exit(f"serve.py: cannot listen on {args.host}:{args.port}: {e.strerror}; pick another --port")
    port = sock.getsockname()[1]
    print(app.state.precache.manifest.summary(), flush=True)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(
        f"edgesql serving http://{host}:{port}/  (SQL console: http://{host}:{port}/console.html)", flush=True
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[sock])
