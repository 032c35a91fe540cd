"""``serve.py --primary turso`` and ``--primary turso-local``: Turso (libSQL) as the primary.

Both run the Cloudflare Worker of ``cloudflare/`` on workerd (``d1local.py``
starts it, exactly as for ``d1-local``), configured to front a Turso database
over Hrana instead of D1 — the same Worker a team deploys for Turso, so the
request flow is written once (``cloudflare/src/primary.js``) and serve.py only
proxies ``/sync`` behind its usual door (``front.py``).

* ``--primary turso --turso-url URL``: a Turso Cloud database (``libsql://…``)
  or any libSQL server; its token comes from ``$EDGESQL_TURSO_TOKEN`` (never a
  flag: the process list would show it). The migrations generated from
  ``--schema`` are applied to it at start.
* ``--primary turso-local``: serve.py first starts sqld (``sqld.py``) on a free
  loopback port with its database under ``--data/turso/sqld``, then the Worker
  in front of it. serve.py prints sqld's pid, so a test can stop it.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from ..sync.buckets import Access
from ..sync.schema import Migration
from .d1local import D1Local
from .sqld import Sqld, SqldError

__all__ = ["TURSO_TOKEN_ENV", "start_turso", "start_turso_local"]

#: The environment variable holding the Turso database's token.
TURSO_TOKEN_ENV = "EDGESQL_TURSO_TOKEN"


def check_url(url: str) -> str:
    """``url`` if it names a libSQL database serve.py can reach, else SystemExit saying why."""
    parts = urlsplit(url)
    if parts.scheme not in ("libsql", "https", "http") or not parts.hostname:
        raise SystemExit(
            f"serve.py: --turso-url {url!r} is not a database URL: give libsql://<db>-<org>.turso.io "
            "(what `turso db show --url` prints), https://…, or http://127.0.0.1:PORT for a local sqld"
        )
    if parts.query or parts.username or parts.password:
        raise SystemExit(
            f"serve.py: --turso-url must not carry credentials: put the token in ${TURSO_TOKEN_ENV}"
        )
    return url


def start_turso(
    data: Path,
    migrations: tuple[Migration, ...],
    tokens: Sequence[str],
    url: str,
    access: Access | None = None,
    worker_env: Mapping[str, str] | None = None,
) -> D1Local:
    """The Worker in front of the Turso database at ``url``, migrated to ``migrations``
    (``access``, ``worker_env``: as D1Local.start's)."""
    token = os.environ.get(TURSO_TOKEN_ENV, "")
    host = urlsplit(url).hostname or ""
    if not token and host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"serve.py: ${TURSO_TOKEN_ENV} is empty: a Turso Cloud database refuses requests without "
            "its token (turso db tokens create <db>)",
            file=sys.stderr,
            flush=True,
        )
    return D1Local.start(
        data,
        migrations,
        tokens,
        turso_url=check_url(url),
        turso_token=token,
        access=access,
        worker_env=worker_env,
    )


def start_turso_local(
    data: Path,
    migrations: tuple[Migration, ...],
    tokens: Sequence[str],
    access: Access | None = None,
    worker_env: Mapping[str, str] | None = None,
) -> D1Local:
    """sqld on a free loopback port with its database under ``data``/turso/sqld, then the Worker in front."""
    try:
        sqld = Sqld.start((data / "turso" / "sqld").resolve())
    except SqldError as e:
        raise SystemExit(f"serve.py --primary turso-local: {e}") from None
    atexit.register(sqld.stop)
    print(
        f"edgesql turso-local: sqld (pid {sqld.pid}) at {sqld.url}, its database in {sqld.db_path}",
        flush=True,
    )
    try:
        worker = D1Local.start(
            data, migrations, tokens, turso_url=sqld.url, access=access, worker_env=worker_env
        )
    except BaseException:
        sqld.stop()
        raise
    threading.Thread(target=_watch, args=(sqld, worker), name="sqld-watch", daemon=True).start()
    return worker


def _watch(sqld: Sqld, worker: D1Local) -> None:
    """Say so when sqld exits on its own (the Worker then answers 503 primary_unavailable)."""
    code = sqld.proc.wait()
    if not worker._stopping:
        print(
            f"serve.py: sqld (pid {sqld.pid}) exited with code {code}; /sync answers 503 until serve.py "
            f"restarts. Its last words: {sqld.log()[-1500:]}",
            file=sys.stderr,
            flush=True,
        )
