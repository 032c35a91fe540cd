"""``python -m edgesql``: edgesql's command line tools.

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
    from .sync.d1 import generate, write
    from .sync.schema import SchemaError, load_migrations

    bundle = args.bundle or args.out.parent / "generated" / "bundle.json"
    try:
        migrations = load_migrations(args.schema)
        if args.check:
            result = generate(migrations, args.out)
            stale = list(result.new_migrations)
            if not bundle.exists() or bundle.read_text() != result.bundle:
                stale.append(str(bundle))
            if stale:
                print(f"out of date, run without --check to write: {', '.join(stale)}", file=sys.stderr)
                return 1
            print(f"up to date: {args.out} and {bundle}")
            return 0
        result = write(migrations, args.out, bundle)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgesql", description="edgesql's command line tools.")
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
    args = parser.parse_args(argv)
    if args.command == "d1-migrations":
        return _d1_migrations(args)
    if args.command == "gen-rules":
        return _gen_rules(args)
    return 2  # pragma: no cover - argparse refuses unknown commands


if __name__ == "__main__":
    sys.exit(main())
