"""Both primaries behind real HTTP, for the contract suite: serve.py with ``--primary sqlite``
(the embedded primary) or ``--primary d1-local`` (the Cloudflare Worker on workerd's D1).

Helpers speak the protocol by hand (urllib, no edgesql code), build changes in
edgesql's encoding, and read a primary's own database file, so tests can check
what the primary materialized, not only what it answers.
"""

from __future__ import annotations

import glob
import json
import socket
import sqlite3
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import apsw
from tests.conftest import Server
from tests.sync.wire import envelope

TOKEN = "contract-token-0123456789"

#: The harness's tables, and one whose CHECK and NOT NULL the primary enforces.
CONTRACT_SCHEMA = """
CREATE TABLE items (id TEXT PRIMARY KEY, a, b INTEGER, c TEXT, d REAL);
CREATE TABLE pairs (x TEXT NOT NULL, y INTEGER NOT NULL, v, PRIMARY KEY (x, y)) WITHOUT ROWID;
CREATE TABLE checked (id TEXT PRIMARY KEY, n INTEGER NOT NULL DEFAULT 0 CHECK (n >= 0), t TEXT);
"""


@dataclass
class PrimaryServer:
    """serve.py running one kind of primary."""

    kind: str
    server: Server
    worker_url: str | None  # the Worker itself (d1-local), behind serve.py's /sync proxy

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def sync_url(self) -> str:
        return self.server.url + "/sync"

    def db_path(self) -> Path:
        """The primary's own database file."""
        data = self.server.data
        if self.kind == "sqlite":
            return data / "primary.db"
        if self.kind.startswith("turso"):
            return data / "turso" / "sqld" / "dbs" / "default" / "data"  # sqld's own layout
        files = [
            f
            for f in glob.glob(str(data / "d1" / "state" / "**" / "*.sqlite"), recursive=True)
            if not f.endswith("metadata.sqlite")
        ]
        assert len(files) == 1, files
        return Path(files[0])

    def query(self, sql: str, params: tuple[Any, ...] = (), raw_text: bool = False) -> list[tuple[Any, ...]]:
        """Read the primary's own database file (read-only, while it runs).

        ``raw_text``: TEXT comes back as bytes, so text that is not UTF-8 can be read too.
        """
        if not raw_text:
            # apsw: the primaries' own SQLite, which reads every trigger they write (an
            # expression in RAISE needs 3.47; the stdlib's may be older).
            db = apsw.Connection(str(self.db_path()), flags=apsw.SQLITE_OPEN_READONLY)
            db.set_busy_timeout(10_000)
            try:
                return [tuple(r) for r in db.execute(sql, params)]
            finally:
                db.close()
        conn = sqlite3.connect(f"file:{self.db_path()}?mode=ro", uri=True, timeout=10)
        conn.text_factory = bytes
        try:
            return [tuple(r) for r in conn.execute(sql, params)]
        finally:
            conn.close()


def worker_url(server: Server) -> str | None:
    """The Worker's own URL, which serve.py prints when it runs d1-local."""
    for line in server.log:
        if line.startswith("edgesql d1-local:"):
            return next(w for w in line.split() if w.startswith("http://")).rstrip("/,")
    return None


@dataclass
class Answer:
    """An HTTP answer; ``json`` is the decoded body (None when it is not JSON)."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    token: str | None = TOKEN,
    headers: dict[str, str] | None = None,
    timeout: float = 60,
) -> Answer:
    """One HTTP request; an error status is an answer, not an exception."""
    h = {"content-type": "application/json", **(headers or {})}
    if token is not None:
        h["authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=body, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Answer(r.status, {k.lower(): v for k, v in r.headers.items()}, r.read())
    except urllib.error.HTTPError as e:
        with e:
            return Answer(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())


def post_oversized(url: str, body: bytes, token: str = TOKEN) -> Answer:
    """POST a body the server refuses before reading it all: the answer may come (and the
    connection close) while the body is still being sent, which urllib reports as an error."""
    parts = urllib.parse.urlsplit(url)
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    received = b""
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as sock:
        try:
            sock.sendall(head + body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed: read what it said
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
    header, _, rest = received.partition(b"\r\n\r\n")
    lines = header.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return Answer(status, headers, rest[: int(headers.get("content-length", len(rest)))])


def sync(url: str, replica: str, changes: list[Any] | None = None, **fields: Any) -> Answer:
    """POST /sync with a request built from the arguments."""
    req = {**envelope(replica), "limit": 2000, **fields}
    if changes is not None:
        req["changes"] = changes
    return http("POST", url, json.dumps(req).encode())


# -- edgesql's encodings, by hand -------------------------------------------------------


def enc(v: Any) -> list[str]:
    """A value as a cell: ["n"], ["i", "42"], ["t", "text"], ["b", "HEX"]."""
    if v is None:
        return ["n"]
    if isinstance(v, bool) or not isinstance(v, int | str | bytes):
        raise TypeError(v)
    if isinstance(v, int):
        return ["i", str(v)]
    if isinstance(v, bytes):
        return ["b", v.hex().upper()]
    return ["t", v]


def key(*parts: str | int) -> str:
    """A primary key in edgesql's canonical form."""
    return json.dumps([f"i{p}" if isinstance(p, int) else "t" + p.encode().hex().upper() for p in parts])


_last_hlc = 0


def hlc() -> str:
    """A fresh stamp: now in ms, shifted 16 bits, always increasing."""
    global _last_hlc
    _last_hlc = max(_last_hlc + 1, int(time.time() * 1000) << 16)
    return str(_last_hlc)


def insert(seq: int, table: str, k: str, txend: int = 1, **cols: Any) -> list[Any]:
    """A change that inserts a row: every given column and _edgesql_exists = 1, one stamp."""
    cells = {c: enc(v) for c, v in cols.items()}
    cells["_edgesql_exists"] = ["i", "1"]
    return [seq, table, k, hlc(), cells, txend]


def replica_id(tag: str) -> str:
    """A replica id unique to this run."""
    return f"{tag}-{time.time_ns():x}"[:64]
