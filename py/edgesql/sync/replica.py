"""The CPython replica's sync engine: the same protocol and SQL as the browser worker.

It fetches the primary's schema document, applies its migrations, triggers
and statement programs, then pushes the outbox and applies pulled pages by
running those programs — it decides nothing itself. A background task syncs
after local writes (debounced), every ``interval`` seconds, and backs off
exponentially with jitter when the primary cannot be reached; when the
primary answers with ``Retry-After`` (429 ``rate_limited``, 503) it waits at
least that long. Failures never lose or reorder the outbox.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import secrets
import sqlite3
from collections.abc import Callable
from typing import Any

from .._split import split_statements
from .protocol import DEFAULT_PULL_LIMIT, MAX_PAGE_BYTES, MAX_PAGE_CHANGES, PROTOCOL_VERSION
from .status import SyncError, SyncProgress, SyncResult, SyncStatus
from .transport import HttpTransport, Response, Transport

__all__ = ["NativeReplica", "apply_schema_doc", "schema_url"]

log = logging.getLogger("edgesql.sync")

#: Wait after a local write before syncing, so a burst goes in one round.
DEBOUNCE_S = 0.05
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 60.0
#: After a Retry-After of t seconds the next try comes between t and (1 + this) * t.
RETRY_AFTER_JITTER = 0.25


def schema_url(sync_url: str) -> str:
    """Where the schema document lives: ``<sync_url>/schema``."""
    return sync_url.rstrip("/") + "/schema"


def apply_schema_doc(conn: sqlite3.Connection, doc: dict[str, Any]) -> None:
    """Bring a local database to the schema document's version, in one transaction.

    Runs the migrations this database has not seen, then replaces edgesql's
    capture triggers and statement programs with the document's.
    """
    client = doc["client"]
    conn.execute("BEGIN IMMEDIATE")
    try:
        for sql in client["setup"]:
            conn.execute(sql)
        local = conn.execute("SELECT schema_version FROM _edgesql_state WHERE id = 1").fetchone()[0]
        if local > doc["version"]:
            raise SyncError(
                f"this database is at schema version {local}, ahead of the primary's {doc['version']}: "
                "the primary's migrations were rolled back",
                code="schema_ahead",
            )
        conn.execute("UPDATE _edgesql_state SET applying = 1 WHERE id = 1")
        for m in doc["migrations"]:
            if m["version"] > local:
                for stmt in split_statements(m["sql"]):
                    conn.execute(stmt)
        triggers = conn.execute(
            "SELECT name FROM sqlite_schema WHERE type = 'trigger' AND name LIKE '\\_edgesql\\_%' ESCAPE '\\'"
        ).fetchall()
        for (name,) in triggers:
            conn.execute(f'DROP TRIGGER "{name.replace(chr(34), chr(34) * 2)}"')
        for sql in client["triggers"]:
            conn.execute(sql)
        conn.execute("DELETE FROM _edgesql_sql")
        for name, stmts in client["programs"].items():
            conn.execute("INSERT INTO _edgesql_sql (name, sql) VALUES (?, ?)", (name, json.dumps(stmts)))
        conn.execute(
            "INSERT OR REPLACE INTO _edgesql_schema (version, doc) VALUES (?, ?)",
            (doc["version"], json.dumps(doc)),
        )
        conn.execute(
            "UPDATE _edgesql_state SET schema_version = ?, applying = 0 WHERE id = 1", (doc["version"],)
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


class NativeReplica:
    """Sync for one CPython database connection."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        sync_url: str,
        auth_token: str | None = None,
        transport: Transport | None = None,
        interval: float | None = 30.0,
        on_change: Callable[[set[str]], None] | None = None,
    ) -> None:
        if not sync_url.startswith(("http://", "https://")):
            raise SyncError(
                f"sync_url must be an absolute http(s) URL on CPython, got {sync_url!r}", code="bad_url"
            )
        self._conn = conn
        self.url = sync_url
        self._token = auth_token
        self._transport = transport or HttpTransport()
        self._interval = interval
        self._on_change = on_change
        self._programs: dict[str, list[str]] = {}
        self._last_error: str | None = None
        self._online = False
        self._progress: SyncProgress | None = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # -- schema ---------------------------------------------------------------------

    async def start(self) -> None:
        """Fetch (or, offline, reuse) the schema, then start background sync if asked."""
        await self.ensure_schema()
        if self._interval:
            self._task = asyncio.create_task(self._background(), name="edgesql-sync")

    async def ensure_schema(self) -> None:
        """Apply the primary's schema if it is newer than ours; offline, use the cached one."""
        try:
            resp = await self._transport.request("GET", schema_url(self.url), None, self._headers())
        except OSError as e:
            self._online = False
            if self._cached_doc() is None:
                raise SyncError(
                    f"cannot reach the primary at {self.url} ({e}) and this database has never synced: "
                    "the first start needs the network to fetch the schema",
                    code="offline",
                ) from None
            self._load_programs()
            return
        self._online = True
        if resp.status != 200:
            err = self._http_error(resp)
            if (resp.status == 429 or resp.status >= 500) and self._cached_doc() is not None:
                # The primary's trouble (rate limit, outage), not this database's: start on
                # the cached schema, as offline. A 401 or 409 is a setup error and is raised.
                self._last_error = str(err)
                self._load_programs()
                return
            raise err
        doc = json.loads(resp.body)
        cached = self._cached_doc()
        if cached is None or cached["version"] < doc["version"] or cached.get("client") != doc.get("client"):
            apply_schema_doc(self._conn, doc)
        self._load_programs()

    def _cached_doc(self) -> dict[str, Any] | None:
        try:
            row = self._conn.execute(
                "SELECT doc FROM _edgesql_schema ORDER BY version DESC LIMIT 1"
            ).fetchone()
        except sqlite3.OperationalError:  # never synced: no edgesql tables yet
            return None
        return json.loads(row[0]) if row else None

    def _load_programs(self) -> None:
        rows = self._conn.execute("SELECT name, sql FROM _edgesql_sql").fetchall()
        self._programs = {name: json.loads(sql) for name, sql in rows}
        # The JSONB variant needs SQLite 3.45; CPython may link an older one (Debian 12: 3.40).
        if sqlite3.sqlite_version_info >= (3, 45, 0) and "apply_jsonb" in self._programs:
            self._programs["apply"] = self._programs["apply_jsonb"]

    @property
    def txend_sql(self) -> list[str]:
        """SQL to run before each COMMIT of a write (marks transaction ends in the outbox)."""
        return self._programs.get("txend", [])

    # -- one round ------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        h = {"content-type": "application/json"}
        if self._token:
            h["authorization"] = f"Bearer {self._token}"
        return h

    def _http_error(self, resp: Response) -> SyncError:
        try:
            body = json.loads(resp.body)
            code, message = body.get("error", "http_error"), body.get("message", "")
        except ValueError:
            code, message = "http_error", resp.body[:200].decode(errors="replace")
        retry = resp.headers.get("retry-after")
        return SyncError(
            f"the primary answered {resp.status} {code}: {message}",
            code=code,
            status=resp.status,
            retry_after=float(retry) if retry and retry.replace(".", "", 1).isdigit() else None,
        )

    def _run(self, name: str, params: dict[str, Any]) -> None:
        for sql in self._programs[name]:
            self._conn.execute(sql, params)

    def _state(self) -> tuple[str, int, int]:
        row = self._conn.execute(
            "SELECT replica, cursor, schema_version FROM _edgesql_state WHERE id = 1"
        ).fetchone()
        return row[0], row[1], row[2]

    async def round(
        self, *, push_limit: int = MAX_PAGE_CHANGES, pull_limit: int = DEFAULT_PULL_LIMIT
    ) -> tuple[int, int, bool]:
        """One request: push a page, pull a page. Returns (pushed, pulled, more to do)."""
        replica, cursor, version = self._state()
        page, n = "[]", 0
        if push_limit:
            page, _upto, n = self._conn.execute(
                self._programs["push_page"][0], {"after": 0, "limit": push_limit, "bytes": MAX_PAGE_BYTES}
            ).fetchone()
        body = (
            f'{{"v":{PROTOCOL_VERSION},"replica":"{replica}","schema":{version},"cursor":{cursor},'
            f'"limit":{pull_limit},"changes":{page}}}'
        ).encode()
        try:
            resp = await self._transport.request("POST", self.url, body, self._headers())
        except OSError as e:
            self._online = False
            raise SyncError(f"cannot reach the primary at {self.url}: {e}", code="offline") from None
        self._online = True
        if resp.status == 409:
            err = self._http_error(resp)
            if err.code == "replica_conflict":
                # A restored or copied file: this copy takes a new id and pushes again.
                new = secrets.token_hex(16)
                log.warning(
                    "edgesql: replica id %s is used by another copy of this database; now %s", replica, new
                )
                with self._conn:
                    self._conn.execute("UPDATE _edgesql_state SET replica = ? WHERE id = 1", (new,))
                return 0, 0, True
            raise err
        if resp.status != 200:
            raise self._http_error(resp)
        try:
            r = json.loads(resp.body)
            acked, changes, new_cursor = int(r["acked"]), r["changes"], int(r["cursor"])
        except (ValueError, KeyError, TypeError) as e:
            raise SyncError(
                f"the primary's answer is not a sync response ({e})", code="bad_response"
            ) from None
        if int(r.get("schema", version)) > version:
            # Migrate before applying: the page may carry cells of columns this
            # version does not have yet, and the old programs would drop them.
            await self.ensure_schema()
            if self._state()[2] < int(r["schema"]):
                raise SyncError(
                    f"the primary is at schema version {r['schema']} and its schema could not be fetched; "
                    "nothing was applied, the next sync retries",
                    code="schema_unavailable",
                )
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            self._run(
                "ack",
                {
                    "acked": acked if n else 0,
                    "rejected": json.dumps(r.get("rejected", [])),
                    "server_hlc": str(r.get("server_hlc", "0")),
                },
            )
            if changes or new_cursor != cursor:
                self._run("apply", {"page": json.dumps(changes), "cursor": new_cursor, "me": replica})
        if r.get("rejected"):
            for rej in r["rejected"]:
                log.warning(
                    "edgesql: the primary rejected change %s: %s (%s)",
                    rej.get("seq"),
                    rej.get("reason"),
                    rej.get("code"),
                )
        if (changes or r.get("rejected")) and self._on_change:
            tables = {c[2] for c in changes if isinstance(c, list) and len(c) > 2}
            self._on_change(tables | ({"*"} if r.get("rejected") else set()))
        more = bool(r.get("more")) or (n > 0 and self._pending() > 0)
        if r.get("more"):
            applied = (self._progress.applied if self._progress else 0) + len(changes)
            self._progress = SyncProgress(applied, applied + int(r.get("remaining", 0)))
        else:
            self._progress = None
        return n - len(r.get("rejected", [])), len(changes), more

    def _pending(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM _edgesql_outbox").fetchone()[0])

    async def sync(self) -> SyncResult:
        """Push everything pending and pull everything new."""
        async with self._lock:
            pushed = pulled = 0
            try:
                while True:
                    p, q, more = await self.round()
                    pushed, pulled = pushed + p, pulled + q
                    if not more:
                        break
            except SyncError as e:
                self._last_error = str(e)
                raise
            self._last_error = None
            return SyncResult(pushed, pulled)

    def status(self) -> SyncStatus:
        """Where sync stands (see :class:`SyncStatus`)."""
        replica, pending, _cursor, version, last, _hlc, rejected = self._conn.execute(
            self._programs["status"][0]
        ).fetchone()
        return SyncStatus(
            pending, last, self._last_error, self._online, self._progress, replica, version, rejected
        )

    # -- background ----------------------------------------------------------------

    def wrote(self) -> None:
        """A local write committed: sync soon."""
        self._wake.set()

    async def _background(self) -> None:
        failures = 0
        while not self._closed:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval)
                await asyncio.sleep(DEBOUNCE_S)
            except TimeoutError:
                pass
            self._wake.clear()
            if self._closed:
                return
            try:
                await self.sync()
                failures = 0
            except Exception as e:
                failures += 1
                if not isinstance(e, SyncError):
                    # A bug, or a local failure (the file locked by another process past
                    # the busy timeout...): the loop must outlive it, or nothing would
                    # sync again until the app restarts. The outbox keeps every change.
                    self._last_error = f"{type(e).__name__}: {e}"
                    log.warning("edgesql: sync failed unexpectedly; retrying with backoff", exc_info=True)
                retry_after = e.retry_after if isinstance(e, SyncError) else None
                if retry_after is not None:
                    # The primary said when (429, 503): never sooner. Jitter only adds,
                    # and a local write does not cut the wait short (it would be refused too).
                    delay = retry_after * (1 + RETRY_AFTER_JITTER * random.random())
                    log.info("edgesql: sync refused (%s); retrying in %.1f s as asked", e, delay)
                    await asyncio.sleep(delay)
                else:
                    delay = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (failures - 1))
                    delay *= 0.5 + random.random()  # jitter: replicas that failed together retry apart
                    log.info("edgesql: sync failed (%s); retrying in %.1f s", e, delay)
                    try:
                        # A local write ends the wait: the network may be back.
                        await asyncio.wait_for(self._wake.wait(), timeout=delay)
                    except TimeoutError:
                        pass
                self._wake.set()

    async def close(self) -> None:
        """Stop background sync."""
        self._closed = True
        self._wake.set()
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
