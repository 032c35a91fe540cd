"""The CPython replica's sync loop: the same protocol, SQL and rules as the browser worker.

It fetches the primary's schema document and migrates to it (:mod:`.migrate`),
then runs rounds: build the request with the document's SQL programs, send it,
react to the answer as :mod:`.rules` says, and hand the answer to the programs
(acknowledgements, rejections, the pulled page, the snapshot's position). It
decides nothing about data itself; the browser's worker (``worker/sync.js``)
runs the same steps.

Sync never sees or disturbs the app's open transaction: it shares the app's
connection, so every step that reads the outbox or writes waits until no
transaction is open (``when_idle``), then runs without awaiting in between.

A background task syncs after local writes (debounced), every ``interval``
seconds, and backs off exponentially with jitter when the primary cannot be
reached; after a ``Retry-After`` (429, 503) it waits at least that long.
Failures never lose or reorder the outbox. Meanwhile, over HTTP, it holds the
primary's change stream (``GET <sync_url>/stream``, :mod:`.livestream`) on a
thread: a log end past the cursor wakes the loop at once, so other replicas'
changes arrive without waiting for the interval; where there is no stream (not
200, or no first event within 5 s) it polls and asks again later, with backoff.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from .._exceptions import ProgrammingError
from .credentials import TokenProvider, ask_token, token_user
from .livestream import EventStream
from .migrate import apply_schema_doc, cached_doc
from .rules import RULES, answer_problem, reaction
from .status import SyncError, SyncProgress, SyncResult, SyncStatus, sync_state
from .transport import HttpTransport, Response, Transport

__all__ = ["NativeReplica", "apply_schema_doc", "schema_url"]

log = logging.getLogger("edgesql.sync")

NOT_UTF8 = (
    "a TEXT value in the change is not valid UTF-8 (bytes stored as TEXT, e.g. with CAST(x AS TEXT)), "
    "so no primary can store it and no device could read it: store bytes as a BLOB"
)


def schema_url(sync_url: str) -> str:
    """Where the schema document lives: ``<sync_url>/schema``."""
    return sync_url.rstrip("/") + "/schema"


async def _always_idle() -> None:
    return None


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
        when_idle: Callable[[], Awaitable[None]] = _always_idle,
        auth: TokenProvider | None = None,
    ) -> None:
        if not sync_url.startswith(("http://", "https://")):
            raise SyncError(
                f"sync_url must be an absolute http(s) URL on CPython, got {sync_url!r}", code="bad_url"
            )
        self._conn = conn
        self.url = sync_url
        self._token = auth_token
        # The app's token provider: asked at start, and again when the primary refuses the token.
        self._auth = auth
        self._transport = transport or HttpTransport()
        self._interval = interval
        self._on_change = on_change
        self._when_idle = when_idle
        self._programs: dict[str, list[str]] = {}
        self._last_error: str | None = None
        #: The failure behind _last_error (status(): is it passing or does it need action?).
        self._last_failure: BaseException | None = None
        self._online = False
        self._progress: SyncProgress | None = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._reauthed = False
        #: The change stream: the task that holds it, the connection, whether it is held now,
        #: and the highest log end a round was started for.
        self._stream_task: asyncio.Task[None] | None = None
        self._stream: EventStream | None = None
        self._live = False
        self._stream_handled = 0

    # -- schema ---------------------------------------------------------------------

    async def start(self) -> None:
        """Fetch (or, offline, reuse) the schema, then start background sync if asked."""
        if self._auth is not None:
            await self._refresh_token()
        await self.ensure_schema()
        await self._check_user()
        if self._interval:
            self._task = asyncio.create_task(self._background(), name="edgesql-sync")
            if isinstance(self._transport, HttpTransport):  # (a test's transport: polling only)
                self._stream_task = asyncio.create_task(self._listen(), name="edgesql-stream")

    async def ensure_schema(self) -> None:
        """Migrate to the primary's schema if it moved on; offline, use the cached one."""
        try:
            resp = await self._transport.request("GET", schema_url(self.url), None, self._headers())
            if resp.status == 401 and self._auth is not None:
                await self._refresh_token()
                resp = await self._transport.request("GET", schema_url(self.url), None, self._headers())
        except OSError as e:
            self._online = False
            if cached_doc(self._conn) is None:
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
            if resp.status in RULES["schema_fallback_statuses"] and cached_doc(self._conn) is not None:
                # The primary's trouble (rate limit, outage), not this database's: start on
                # the cached schema, as offline. A 401 or 409 is a setup error and is raised.
                self._last_error = str(err)
                self._last_failure = err
                self._load_programs()
                return
            raise err
        try:
            doc = json.loads(resp.body)
        except ValueError as e:
            raise SyncError(f"the primary's schema document is not JSON ({e})", code="bad_response") from None
        cached = cached_doc(self._conn)
        if cached is None or cached["version"] < doc["version"] or cached.get("client") != doc.get("client"):
            await self._when_idle()
            apply_schema_doc(self._conn, doc, cached)
        self._load_programs()

    async def _refresh_token(self) -> None:
        """Ask the app's token provider for a token."""
        assert self._auth is not None
        self._token = await ask_token(self._auth)

    async def _check_user(self) -> None:
        """A token for another user than this database's: that user's data goes, and the
        database starts as a new replica (it says so) — before anything is sent or shown."""
        user = token_user(self._token)
        if user is None or "reset_user" not in self._programs:
            return
        (was,) = self._conn.execute("SELECT user FROM _edgesql_replica WHERE id = 1").fetchone()
        if was == user:
            return
        await self._when_idle()
        if was is None:
            self._atomic(lambda: self._run("set_user", {"user": user}))
            return
        log.warning(
            "edgesql: %r signed in on this database of %r: %r's data is removed here (unsent writes kept in "
            "_edgesql_rejected) and it starts again as a new replica",
            user,
            was,
            was,
        )
        self._atomic(lambda: self._run("reset_user", {"user": user}))
        if self._on_change:
            self._on_change({"*"})

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
        except (ValueError, AttributeError):
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

    def _one(self, name: str, params: dict[str, Any]) -> Any:
        return self._conn.execute(self._programs[name][0], params).fetchone()

    def _atomic(self, work: Callable[[], None]) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            work()
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _page(self, limit: int) -> tuple[str, int]:
        """The next page of the outbox (JSON) and its size; changes that can never be sent
        (too large, not UTF-8) are rejected here first, locally, so the rest flows."""
        for _ in range(100):
            params = {"after": 0, "limit": limit, "bytes": RULES["push_bytes"]}
            try:
                page, _upto, n, oversized = self._one(
                    "push_page", {**params, "max_cells": RULES["max_cells_bytes"]}
                )
            except sqlite3.OperationalError as e:
                if "decode" not in str(e).lower():
                    raise
                self._reject_local(self._undecodable(limit))
                continue
            too_big = json.loads(oversized or "[]")
            if not too_big:
                return page, int(n)
            self._reject_local(
                [
                    {
                        "seq": s,
                        "code": "too_large",
                        "reason": f"the change is over {RULES['max_cells_bytes']:,} bytes encoded, more than a "
                        "primary stores: store large files elsewhere and keep a reference",
                    }
                    for s in too_big
                ]
            )
        raise SyncError("the outbox keeps yielding changes that cannot be sent", code="bad_outbox")

    def _undecodable(self, limit: int) -> list[dict[str, Any]]:
        bad = []
        rows = self._conn.execute(
            "SELECT seq, CAST(tbl AS BLOB), CAST(pk AS BLOB), CAST(cells AS BLOB) FROM _edgesql_outbox "
            "ORDER BY seq LIMIT ?",
            (limit,),
        ).fetchall()
        for seq, *texts in rows:
            try:
                for t in texts:
                    bytes(t).decode("utf-8")
            except UnicodeDecodeError:
                bad.append({"seq": seq, "code": "malformed", "reason": NOT_UTF8})
        if not bad:
            raise SyncError("the outbox holds text that is not UTF-8 beyond this page", code="bad_outbox")
        return bad

    def _reject_local(self, rejected: list[dict[str, Any]]) -> None:
        for r in rejected:
            log.warning("edgesql: change %s cannot be sent: %s (%s)", r["seq"], r["reason"], r["code"])
        self._atomic(lambda: self._run("reject_local", {"rejected": json.dumps(rejected)}))
        if self._on_change:
            self._on_change({"*"})

    def _state(self) -> tuple[str, int, int, bool]:
        row = self._conn.execute(
            "SELECT s.replica, s.cursor, s.schema_version, r.snapshot IS NOT NULL "
            "FROM _edgesql_state s, _edgesql_replica r WHERE s.id = 1 AND r.id = 1"
        ).fetchone()
        return row[0], row[1], row[2], bool(row[3])

    async def round(
        self, *, push_limit: int = RULES["push_limit"], pull_limit: int = RULES["pull_limit"]
    ) -> tuple[int, int, bool]:
        """One request: push a page, pull a page. Returns (pushed, pulled, more to do)."""
        await self._when_idle()
        replica, cursor, _version, snapshotting = self._state()
        page, n = self._page(push_limit) if push_limit else ("[]", 0)
        (body,) = self._one("request", {"page": page, "limit": pull_limit, "cursor": None, "snapshot": None})
        try:
            resp = await self._transport.request("POST", self.url, body.encode(), self._headers())
        except OSError as e:
            self._online = False
            raise SyncError(f"cannot reach the primary at {self.url}: {e}", code="offline") from None
        self._online = True
        if resp.status != 200:
            err = self._http_error(resp)
            todo = reaction(resp.status, err.code)
            if todo == "rotate":
                # A restored or copied file, or an id another device owns: this copy takes
                # a new id and key and syncs again.
                await self._when_idle()
                self._atomic(lambda: self._run("rotate", {}))
                log.warning("edgesql: replica id %s: %s; now %s", replica, err, self._state()[0])
                return 0, 0, True
            if todo == "reauth" and self._auth is not None and not self._reauthed:
                # The token expired or was refused: the provider's next one, once per round.
                self._reauthed = True
                await self._refresh_token()
                await self._check_user()
                return 0, 0, True
            if todo == "reset":
                await self._when_idle()
                self._atomic(lambda: self._run("reset_user", {"user": token_user(self._token)}))
                log.warning("edgesql: %s; this device starts again as a new replica of this user", err)
                if self._on_change:
                    self._on_change({"*"})
                return 0, 0, True
            if todo == "migrate":
                await self.ensure_schema()
                if self._state()[2] == _version:
                    raise SyncError(
                        f"{err}; and the newer schema could not be fetched: nothing was sent, the next "
                        "sync retries",
                        code="schema_unavailable",
                    )
                return 0, 0, True
            raise err
        problem: str | None
        try:
            r = json.loads(resp.body)
        except ValueError as e:
            r, problem = None, str(e)
        else:
            problem = answer_problem(r)
        if problem is not None:
            raise SyncError(f"the primary's answer is not a sync response ({problem})", code="bad_response")
        acked, changes, new_cursor = r["acked"], r["changes"], r["cursor"]
        rejected = r.get("rejected") or []
        snapshot = r.get("snapshot")
        await self._when_idle()

        def apply() -> None:
            self._run(
                "ack",
                {
                    "acked": acked if n else 0,
                    "rejected": json.dumps(rejected),
                    "server_hlc": str(r.get("server_hlc", "0")),
                    "buckets": json.dumps(r.get("buckets") or []),
                },
            )
            if r.get("drop"):  # buckets this user lost: their rows go from this device
                self._run("drop_buckets", {"buckets": json.dumps(r["drop"])})
            if snapshot is not None and not snapshotting and snapshot.get("full", True):
                # The primary says to start from its state (the log before its last
                # migration holds values from before it).
                self._run("begin_snapshot", {})
            if changes or (snapshot is None and new_cursor != cursor):
                at = self._conn.execute("SELECT cursor FROM _edgesql_state WHERE id = 1").fetchone()[0]
                cur = at if snapshot is not None else new_cursor
                self._run("apply", {"page": json.dumps(changes), "cursor": cur, "me": replica})
            if snapshot is not None:
                if snapshot.get("done"):
                    self._run("snapshot_done", {"cursor": new_cursor})
                else:
                    self._run("snapshot_position", {"snapshot": json.dumps(snapshot)})

        self._atomic(apply)
        for rej in rejected:
            log.warning(
                "edgesql: the primary rejected change %s: %s (%s)",
                rej.get("seq"),
                rej.get("reason"),
                rej.get("code"),
            )
        everything = rejected or r.get("drop") or (snapshot or {}).get("done")
        if (changes or everything) and self._on_change:
            tables = {c[2] for c in changes if isinstance(c, list) and len(c) > 2}
            self._on_change(tables | ({"*"} if everything else set()))
        more = bool(r.get("more")) or (n > 0 and self._pending() > 0)
        if r.get("more"):
            applied = (self._progress.applied if self._progress else 0) + len(changes)
            total = None if snapshot is not None else applied + int(r.get("remaining", 0))
            self._progress = SyncProgress(applied, total)
        else:
            self._progress = None
        return n - len(rejected), len(changes), more

    def _pending(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM _edgesql_outbox").fetchone()[0])

    async def sync(self) -> SyncResult:
        """Push everything pending and pull everything new."""
        async with self._lock:
            pushed = pulled = 0
            self._reauthed = False
            try:
                while True:
                    p, q, more = await self.round()
                    pushed, pulled = pushed + p, pulled + q
                    if not more:
                        break
            except SyncError as e:
                self._last_error = str(e)
                self._last_failure = e
                raise
            self._last_error = None
            self._last_failure = None
            return SyncResult(pushed, pulled)

    def status(self) -> SyncStatus:
        """Where sync stands (see :class:`SyncStatus`)."""
        replica, pending, _cursor, version, last, _hlc, rejected = self._conn.execute(
            self._programs["status"][0]
        ).fetchone()
        failure = None if self._last_error is None else (self._last_failure or self._last_error)
        state = sync_state(device_online=True, error=failure, running=self._lock.locked(), pending=pending)
        code = None
        if failure is not None:
            code = failure.code if isinstance(failure, SyncError) else "local_error"
        return SyncStatus(
            pending,
            last,
            self._last_error,
            self._online,
            self._progress,
            replica,
            version,
            rejected,
            state=state,
            error_code=code,
            transport="stream" if self._live else "poll",
        )

    # -- background ----------------------------------------------------------------

    def wrote(self) -> None:
        """A local write committed: sync soon."""
        self._wake.set()

    async def _background(self) -> None:
        failures = 0
        assert self._interval is not None
        while not self._closed:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval)
                await asyncio.sleep(RULES["debounce_ms"] / 1000)
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
                    self._last_failure = e
                    log.warning("edgesql: sync failed unexpectedly; retrying with backoff", exc_info=True)
                retry_after = e.retry_after if isinstance(e, SyncError) else None
                if retry_after is not None:
                    # The primary said when (429, 503): never sooner. Jitter only adds,
                    # and a local write does not cut the wait short (it would be refused too).
                    delay = retry_after * (1 + RULES["retry_after_jitter"] * random.random())
                    log.info("edgesql: sync refused (%s); retrying in %.1f s as asked", e, delay)
                    await asyncio.sleep(delay)
                else:
                    delay = (
                        min(RULES["backoff_max_ms"], RULES["backoff_base_ms"] * 2 ** (failures - 1)) / 1000
                    )
                    delay *= 0.5 + random.random()  # jitter: replicas that failed together retry apart
                    log.info("edgesql: sync failed (%s); retrying in %.1f s", e, delay)
                    try:
                        # A local write ends the wait: the network may be back.
                        await asyncio.wait_for(self._wake.wait(), timeout=delay)
                    except TimeoutError:
                        pass
                self._wake.set()

    async def _listen(self) -> None:
        """Hold the change stream while background sync runs; reconnect with backoff and jitter."""
        loop = asyncio.get_running_loop()
        refused = failures = 0
        while not self._closed:
            stream = EventStream(self.url.rstrip("/") + "/stream", self._headers())
            self._stream = stream

            why = await _run_stream(loop, stream, self._heard)
            self._stream = None
            if self._live:
                self._live = False
            if self._closed:
                return
            if why in ("ended", "silent"):  # it was held: the primary restarted, or ended it at its age limit
                refused = failures = 0
                delay = RULES["probe_ms"] / 1000
            elif why == "network":  # the primary does not answer: the rounds back off meanwhile
                failures += 1
                delay = min(30.0, RULES["probe_ms"] / 1000 * 2 ** (failures - 1))
            else:  # no stream here (refused, buffered): poll, and ask again later
                refused += 1
                delay = max(min(300.0, 30.0 * 2 ** (refused - 1)), stream.retry_after or 0.0)
            await asyncio.sleep(delay * (0.5 + random.random()))

    def _heard(self, seq: int) -> None:
        """The stream says the log ends at ``seq``: sync now if that is past the cursor."""
        if self._closed:
            return
        if not self._live:
            self._live = True  # (re)connected: catch up, and send what waits
            if self._last_error is not None or (self._programs and self._pending()):
                self._wake.set()
        if seq <= self._stream_handled or not self._programs:
            return
        try:
            cursor = self._state()[1]
        except sqlite3.Error:
            return
        if seq > cursor:
            self._stream_handled = seq
            self._wake.set()

    async def close(self) -> None:
        """Stop background sync."""
        self._closed = True
        self._wake.set()
        if self._stream is not None:
            self._stream.close()
        if self._stream_task is not None:
            self._stream_task.cancel()
            try:
                await self._stream_task
            except (asyncio.CancelledError, Exception):
                pass
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass


async def _run_stream(
    loop: asyncio.AbstractEventLoop, stream: EventStream, heard: Callable[[int], None]
) -> str:
    """Run ``stream`` on a daemon thread of its own (a stream waiting for its next heartbeat
    must never hold up the interpreter's exit, as the default executor's threads would);
    each seq is handed to ``heard`` on the loop. Returns why the stream ended."""
    done: asyncio.Future[str] = loop.create_future()

    def call(fn: Callable[..., None], *args: Any) -> None:
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass  # the loop is closed: nobody listens any more

    def work() -> None:
        try:
            why = stream.run(lambda seq: call(heard, seq))
        except Exception:
            why = "network"
        call(finish, why)

    def finish(why: str) -> None:
        if not done.done():
            done.set_result(why)

    threading.Thread(target=work, name="edgesql-stream", daemon=True).start()
    try:
        return await done
    except asyncio.CancelledError:
        stream.close()
        raise


def refuse_sync_in_transaction() -> ProgrammingError:
    """``db.sync()`` inside the app's own transaction would wait for that transaction to end."""
    return ProgrammingError(
        "db.sync() inside a transaction would wait for the transaction to end, which waits for "
        "db.sync(): call it after the `async with db.transaction()` block (a sync only ever "
        "sends committed writes)"
    )
