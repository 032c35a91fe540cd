"""``python -m edgesql`` (or ``edgesql``, once installed): edgesql's command line tools.

    edgesql serve APP_DIR [--schema PATH] [--data DIR] [--host H] [--port P] [serve.py's options]
        Serve the app's folder with everything its pages need (the DB worker,
        Pyodide, SQLite-Wasm, PyScript, the edgesql wheel, the service worker)
        and the embedded primary at /sync. The schema defaults to
        APP_DIR/schema/ (NNNN_name.sql migrations) or APP_DIR/schema.sql.
        Needs edgesql[server]. See README, "Use edgesql in your own app".

    python -m edgesql d1-migrations --schema web/app/schema --out cloudflare/migrations
        Generate Cloudflare D1 migrations (wrangler's format) and the Worker's
        bundle (cloudflare/generated/bundle.json) from the app's schema.
        --check writes nothing and exits 1 when the output is out of date.

    python -m edgesql gen-rules [--root .] [--check]
        Write worker/replica-rules.js (the sync loop's constants and reactions)
        from py/edgesql/sync/rules.py.

See docs/deploy-cloudflare.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main"]


def _d1_migrations(args: argparse.Namespace) -> int:
    from .sync.buckets import load_access
    from .sync.d1 import generate, write
    from .sync.schema import SchemaError, load_migrations

    bundle = args.bundle or args.out.parent / "generated" / "bundle.json"
    try:
        migrations = load_migrations(args.schema)
        access = load_access(args.schema)  # access.sql beside the migrations, if any
        if args.check:
            result = generate(migrations, args.out, access)
            stale = list(result.new_migrations)
            if not bundle.exists() or bundle.read_text() != result.bundle:
                stale.append(str(bundle))
            if stale:
                print(f"out of date, run without --check to write: {', '.join(stale)}", file=sys.stderr)
                return 1
            print(f"up to date: {args.out} and {bundle}")
            return 0
        result = write(migrations, args.out, bundle, access)
    except SchemaError as e:
        print(f"python -m edgesql d1-migrations: {e}", file=sys.stderr)
        return 2
    for name in result.new_migrations:
        print(f"wrote {args.out / name}")
    if not result.new_migrations:
        print(f"{args.out}: no new migration")
    print(f"bundle {bundle} (schema version {len(migrations)})")
    return 0


def _gen_rules(args: argparse.Namespace) -> int:
    from .sync.rules import JS_PATH, render_js

    path = args.root / JS_PATH
    text = render_js()
    if args.check:
        if not path.exists() or path.read_text() != text:
            print(f"out of date, run without --check to write: {path}", file=sys.stderr)
            return 1
        print(f"up to date: {path}")
        return 0
    path.write_text(text)
    print(f"wrote {path}")
    return 0


def _add_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser(
        "serve",
        help="serve an app's folder with the browser runtime and the embedded primary",
        description="Serve APP_DIR at / with everything its pages need (the DB worker, Pyodide, "
        "SQLite-Wasm, PyScript, the edgesql wheel, the service worker) and the embedded primary "
        "at /sync. Nothing is fetched from outside.",
    )
    serve.add_argument("app_dir", type=Path, metavar="APP_DIR", help="the app's folder, served at /")
    try:
        from .server.cli import add_options
    except ImportError as e:  # edgesql without the [server] extra
        serve.set_defaults(missing=str(e))
        serve.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        return
    add_options(serve)
    serve.set_defaults(schema=None, missing=None)
    for action in serve._actions:
        if action.dest == "schema":
            action.help = "the app's schema: a .sql file, or a folder of NNNN_name.sql migrations "
            action.help += "(default: APP_DIR/schema, or APP_DIR/schema.sql)"


def _serve(args: argparse.Namespace) -> int:
    if args.missing:
        print(
            f"edgesql serve needs the server's libraries ({args.missing}): pip install 'edgesql[server]'",
            file=sys.stderr,
        )
        return 2
    app_dir: Path = args.app_dir.resolve()
    if not app_dir.is_dir():
        print(
            f"edgesql serve: {args.app_dir} is not a folder: give the folder of the app's pages",
            file=sys.stderr,
        )
        return 2
    if args.schema is None:
        args.schema = next((p for p in (app_dir / "schema", app_dir / "schema.sql") if p.exists()), None)
        if args.schema is None:
            print(
                f"edgesql serve: {args.app_dir} has no schema: put the app's tables in "
                f"{args.app_dir / 'schema' / '0001_init.sql'} (CREATE TABLE ...), or give --schema PATH",
                file=sys.stderr,
            )
            return 2
    args.app_dir = app_dir
    from .server.app import ROOT, shadowed
    from .server.assets import RuntimeMissingError, find_runtime
    from .server.cli import serve

    try:
        runtime = find_runtime(ROOT)
    except RuntimeMissingError as e:
        print(f"edgesql serve: {e}", file=sys.stderr)
        return 2
    for path in shadowed(app_dir, runtime):
        print(f"edgesql serve: {path} is not served: edgesql's runtime answers that URL", file=sys.stderr)
    serve(args)
    return 0


def main(argv: list[str] | None = None) -> int:
    prog = "edgesql" if Path(sys.argv[0]).name == "edgesql" else "python -m edgesql"  # the installed command
    parser = argparse.ArgumentParser(prog=prog, description="edgesql's command line tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    d1 = sub.add_parser(
        "d1-migrations",
        help="generate Cloudflare D1 migrations and the Worker's bundle from the app's schema",
        description="Generate wrangler migrations (NNNN_name.sql) for Cloudflare D1 and the Worker's "
        "bundle from the app's schema. Existing files are kept: applied migrations never change.",
    )
    d1.add_argument(
        "--schema", type=Path, required=True, help="a .sql file, or a folder of NNNN_name.sql migrations"
    )
    d1.add_argument("--out", type=Path, required=True, help="wrangler's migrations folder")
    d1.add_argument(
        "--bundle", type=Path, help="where the Worker's bundle goes (default: OUT/../generated/bundle.json)"
    )
    d1.add_argument("--check", action="store_true", help="write nothing; exit 1 if the output is out of date")
    rules = sub.add_parser(
        "gen-rules",
        help="write worker/replica-rules.js from py/edgesql/sync/rules.py",
        description="Write the browser sync loop's rules (constants, reactions) from the Python source.",
    )
    rules.add_argument("--root", type=Path, default=Path("."), help="the checkout (default: .)")
    rules.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if the file is out of date"
    )
    _add_serve(sub)
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "d1-migrations":
        return _d1_migrations(args)
    if args.command == "gen-rules":
        return _gen_rules(args)
    return 2  # pragma: no cover - argparse refuses unknown commands


if __name__ == "__main__":
    sys.exit(main())
