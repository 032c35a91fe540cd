"""The browser backend: SQLite-Wasm on OPFS in a Web Worker, from Pyodide.

Python on the page talks to the DB worker through ``bridge.js``. Where the
page is cross-origin isolated a call is answered synchronously through a
SharedArrayBuffer (tens of microseconds), so ``await db.execute(...)`` often
completes without suspending; otherwise it awaits a postMessage answer.
Requests and answers are JSON text with exact types (see ``_wire.py``).

Long statements: a statement runs in the worker, so the page's event loop
stays free and ``db.interrupt()`` can stop it from any task. Each request
carries what the worker needs to stop it (worker/interrupts.js): how many
interrupts its connection had seen when it was sent (``g``), and, with
``statement_timeout``, its deadline (``dl``). A call whose answer does not
come within the limit (the worker holding the database is busy with someone
else's long statement) stops waiting; the worker then refuses to start it.
Cursors (``db.iterate``) fetch a page per call and, when the answers come
back synchronously, let the browser draw a frame every ``YIELD_EVERY_S``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from ._backend import BackendInfo, Statement
from ._cursor import Page
from ._exceptions import OperationalError, ProgrammingError, error_from_data, interrupted_message
from ._result import ResultSet
from ._wire import PLAIN, dumps, loads

__all__ = ["BrowserBackend", "configure", "open_browser_backend"]

log = logging.getLogger("edgesql")

_config: dict[str, str] = {"bridge_url": "/bridge.js"}
_bridge: Any = None

SQLITE_INTERRUPT = 9
#: How long past its deadline a call still waits for its answer before it gives up: the
#: worker stops a running statement at the deadline itself, so an answer due comes well within.
DEADLINE_GRACE_S = 0.5
#: A cursor whose pages come back synchronously gives the browser a turn this often, so the
#: page keeps drawing frames while Python reads a big result.
YIELD_EVERY_S = 0.012
#: Cursor pages of more rows than this are asked for by postMessage (see cursor_open).
SMALL_PAGE = 50


def configure(*, bridge_url: str | None = None) -> None:
    """Where the page finds ``bridge.js`` (default ``/bridge.js``), before the first connect."""
    if bridge_url is not None:
        _config["bridge_url"] = bridge_url


async def _get_bridge() -> Any:
    global _bridge
    if _bridge is None:
        import json

        from pyodide.code import run_js  # type: ignore[import-not-found]

        # A page that reloaded to let a new app version take over starts no worker until
        # it has (web/pwa.js): the worker's requests could keep the old version busy.
        await run_js("globalThis.edgesqlWorkersMayStart ?? Promise.resolve()")
        url = json.dumps(_config["bridge_url"])
        module = await run_js(f"import(new URL({url}, globalThis.location.href).href)")
        if _bridge is None:  # (another connect may have made it while this one waited)
            _bridge = module.getBridge()
    return _bridge


class BrowserBackend:
    """One session on a database owned by the page's DB worker."""

    #: Statement values arrive tagged for the worker's plain JSON.parse (see _wire).
    wire_tags = True

    def __init__(
        self,
        bridge: Any,
        session: int,
        info: BackendInfo,
        key: int = 0,
        signals: str = "",
        statement_timeout: float | None = None,
    ) -> None:
        self._bridge = bridge
        self._call_sync = bridge.callSync
        self._wait = bridge.wait
        self._s = session
        self._in_tx = False
        self.info = info
        self._listeners: set[Callable[[set[str]], None]] = set()
        self._js_unsubscribe: Any = None
        self._proxy: Any = None
        # The app's token provider (connect(auth=...)), and its renewal under way.
        self._auth: Callable[[], Any] | None = None
        self._token_task: asyncio.Future[None] | None = None
        # Stopping statements (worker/interrupts.js): this connection's key, its interrupts so far,
        # the signal file's name, and the time limit of each call.
        self._key = key
        self._gen = 0
        self._signals = signals
        self._timeout = statement_timeout
        self._last_yield = time.monotonic()

    @property
    def in_transaction(self) -> bool:
        return self._in_tx

    async def _call(self, req: dict[str, Any], slow: bool = False, limited: bool = True) -> dict[str, Any]:
        # A slow request (a sync round trip, a big page of a cursor) goes by postMessage, so
        # it never holds the fast path while the app's queries wait behind it.
        if self._gen:
            req["g"] = self._gen
        timeout = self._timeout if limited else None
        if timeout is not None:
            req["dl"] = time.time() * 1000 + timeout * 1000
        out = self._bridge.callAsync(dumps(req)) if slow else self._call_sync(dumps(req))
        if not isinstance(out, str):
            self._last_yield = time.monotonic()
            out = await (self._wait(out) if timeout is None else self._wait_until(out, timeout))
        resp: dict[str, Any] = loads(out)
        tx = resp.get("tx")
        if tx is not None:
            self._in_tx = tx
        if not resp["ok"]:
            raise self._error(resp["error"])
        return resp

    async def _wait_until(self, ticket: int, timeout: float) -> str:
        """The answer to ``ticket``, or a timeout error once the call's deadline (and a grace) passed."""

        async def answer() -> str:
            return str(await self._wait(ticket))

        try:
            return await asyncio.wait_for(answer(), timeout + DEADLINE_GRACE_S)
        except TimeoutError:
            # The worker holding the database is still busy (another connection's long statement):
            # it refuses this call when its turn comes, since its deadline has passed.
            self._bridge.abandon(ticket)
            raise OperationalError(
                interrupted_message("timeout", timeout, started=False, lost_tx=False),
                sqlite_errorcode=SQLITE_INTERRUPT,
                sqlite_errorname="SQLITE_INTERRUPT",
            ) from None

    def _error(self, data: dict[str, Any]) -> Exception:
        stop = data.get("stop")
        if stop is None:
            return error_from_data(data)
        # Stopped by an interrupt or its deadline (worker/interrupts.js): worded as on CPython.
        prefix = str(data.get("message", "")).removesuffix("interrupted")
        message = interrupted_message(
            stop["why"], self._timeout, started=stop["started"], lost_tx=stop["lost_tx"]
        )
        return OperationalError(
            prefix + message, sqlite_errorcode=SQLITE_INTERRUPT, sqlite_errorname="SQLITE_INTERRUPT"
        )

    def interrupt(self) -> None:
        """Stop the statement this connection runs now (and its requests queued in the worker)."""
        self._gen += 1
        self._bridge.interrupt(self._s, self._key, self._gen, self._signals)

    async def execute(self, sql: str, params: list[Any] | dict[str, Any]) -> ResultSet:
        r = await self._call({PLAIN: 1, "op": "execute", "s": self._s, "sql": sql, "params": params})
        return ResultSet(r["cols"], r["rows"], r["n"], r["rowid"])

    async def executemany(self, sql: str, seq: list[list[Any] | dict[str, Any]]) -> ResultSet:
        r = await self._call({PLAIN: 1, "op": "executemany", "s": self._s, "sql": sql, "rows": seq})
        return ResultSet(r["cols"], [], r["n"], r["rowid"])

    async def batch(self, statements: list[Statement]) -> list[ResultSet]:
        r = await self._call({PLAIN: 1, "op": "batch", "s": self._s, "stmts": statements})
        return [ResultSet(x["cols"], x["rows"], x["n"], x["rowid"]) for x in r["results"]]

    async def script(self, sql: str) -> None:
        await self._call({"op": "script", "s": self._s, "sql": sql})

    async def tx(self, action: str, name: str = "", mode: str = "") -> None:
        # Only a BEGIN may wait on others; the end of a transaction this session holds never does.
        req = {"op": "tx", "s": self._s, "action": action, "name": name, "mode": mode}
        await self._call(req, limited=action == "begin")

    # -- cursors (db.iterate) ------------------------------------------------------

    # A page of many rows takes the worker milliseconds: asked for by postMessage, it leaves the
    # page's main thread free meanwhile, instead of spinning on the SharedArrayBuffer for nothing.

    async def cursor_open(self, sql: str, params: list[Any] | dict[str, Any], page: int) -> tuple[Any, Page]:
        req = {PLAIN: 1, "op": "cursor.open", "s": self._s, "sql": sql, "params": params, "n": page}
        r = await self._call(req, slow=page > SMALL_PAGE)
        await self._let_the_page_draw()
        return r["c"] or None, Page(r["cols"], r["rows"], r["done"], r["n"], r["rowid"])

    async def cursor_next(self, handle: Any, page: int) -> Page:
        r = await self._call(
            {"op": "cursor.next", "s": self._s, "c": handle, "n": page}, slow=page > SMALL_PAGE
        )
        await self._let_the_page_draw()
        return Page(r["cols"], r["rows"], r["done"])

    async def cursor_close(self, handle: Any) -> None:
        await self._call({"op": "cursor.close", "s": self._s, "c": handle}, limited=False)

    def cursor_discard(self, handle: Any) -> None:
        # From a cursor's __del__: sent without waiting for the answer.
        self._bridge.abandon(self._bridge.callAsync(dumps({"op": "cursor.close", "s": self._s, "c": handle})))

    async def _let_the_page_draw(self) -> None:
        # Answers that come back synchronously never give the browser a turn: a loop over a
        # big result would freeze the page. A macrotask now and then lets it draw.
        if time.monotonic() - self._last_yield >= YIELD_EVERY_S:
            await asyncio.sleep(0)
            self._last_yield = time.monotonic()

    async def tables(self, sql: str) -> tuple[list[str], list[str]]:
        """The tables ``sql`` reads and writes (from SQLite's authorizer)."""
        r = await self._call({"op": "tables", "s": self._s, "sql": sql})
        return r["reads"], r["writes"]

    def subscribe(self, listener: Callable[[set[str]], None]) -> Callable[[], None]:
        """Call ``listener(tables)`` after each committed change to this database."""
        self._listeners.add(listener)
        self._hear_events()

        def unsubscribe() -> None:
            self._listeners.discard(listener)

        return unsubscribe

    async def _start_sync(self, url: str, token: str | None, interval: float) -> None:
        """Start the worker's sync; with a token provider, its token (asked once more if the
        primary refuses the first: it may have expired meanwhile)."""
        from .sync.credentials import TOKEN_REFUSED, ask_token
        from .sync.status import SyncError

        for attempt in (1, 2):
            if self._auth is not None:
                token = await ask_token(self._auth)
                self._hear_events()
            start = {"op": "sync.start", "s": self._s, "url": url, "token": token, "interval": interval}
            try:
                await self._call(start, slow=True, limited=False)
                return
            except SyncError as e:
                if attempt == 2 or self._auth is None or e.code not in TOKEN_REFUSED:
                    raise

    def _hear_events(self) -> None:
        """Receive the worker's events for this database (changes, a token wanted)."""
        if self._js_unsubscribe is None:
            from pyodide.ffi import create_proxy  # type: ignore[import-not-found]

            self._proxy = create_proxy(self._on_event)
            self._js_unsubscribe = self._bridge.subscribe(self._proxy)

    def _on_event(self, msg: Any) -> None:
        if msg.db != self.info.path:
            return
        event = msg.event
        if event.type == "changes":
            tables = set(event.tables.to_py())
            for listener in list(self._listeners):
                listener(tables)
        elif event.type == "token" and self._auth is not None and self._token_task is None:
            # Background sync got a 401: ask the app's token provider, give the worker its answer.
            self._token_task = asyncio.ensure_future(self._renew_token())

    async def _renew_token(self) -> None:
        from .sync.credentials import ask_token

        assert self._auth is not None
        try:
            token = await ask_token(self._auth)
            await self._call({"op": "sync.token", "s": self._s, "token": token}, slow=True, limited=False)
        except Exception as e:  # the provider failed: the next 401 asks again
            log.warning("edgesql: the token provider (connect(auth=...)) failed: %s", e)
        finally:
            self._token_task = None

    async def sync(self) -> Any:
        from .sync.status import SyncError, SyncResult

        try:
            r = await self._call({"op": "sync.now", "s": self._s}, slow=True, limited=False)
        except SyncError as e:
            from .sync.credentials import TOKEN_REFUSED, ask_token

            if self._auth is None or e.code not in TOKEN_REFUSED:
                raise
            # The token expired or was refused: the provider's next one, and once more.
            token = await ask_token(self._auth)
            await self._call({"op": "sync.token", "s": self._s, "token": token}, slow=True, limited=False)
            r = await self._call({"op": "sync.now", "s": self._s}, slow=True, limited=False)
        return SyncResult(r["pushed"], r["pulled"])

    async def sync_status(self) -> Any:
        from .sync.status import SyncProgress, SyncStatus

        # A poll (the app's status bar): it may wait for a busy worker, it changes nothing.
        st = (await self._call({"op": "sync.status", "s": self._s}, limited=False))["status"]
        progress = (
            SyncProgress(st["progress"]["applied"], st["progress"]["total"]) if st["progress"] else None
        )
        return SyncStatus(
            st["pending"],
            st["last_synced_at"],
            st["last_error"],
            st["online"],
            progress,
            st["replica"],
            st["schema_version"],
            st["rejected"],
            st.get("retry_in"),
            st.get("state", "synced"),
            st.get("device_online", True),
            st.get("error_code"),
            st.get("transport", "poll"),
        )

    async def close(self) -> None:
        await self._call({"op": "close", "s": self._s}, limited=False)
        self._in_tx = False
        if self._js_unsubscribe is not None:
            self._js_unsubscribe()
            self._js_unsubscribe = None
            self._proxy.destroy()
        self._listeners.clear()


async def open_browser_backend(path: str, **options: Any) -> BrowserBackend:
    """Open ``path`` in the page's DB worker (OPFS, or memory where OPFS is missing)."""
    storage = options.pop("storage", "opfs")
    durability = options.pop("durability", "normal")
    sync_url = options.pop("sync_url", None)
    auth_token = options.pop("auth_token", None)
    auth = options.pop("auth", None)
    interval = options.pop("sync_interval", 30.0)
    statement_timeout = options.pop("statement_timeout", None)
    unknown = set(options)
    if unknown:
        raise ProgrammingError(f"connect() got unknown options {sorted(unknown)}")
    if storage not in ("opfs", "memory"):
        raise ProgrammingError(f'storage must be "opfs" or "memory", not {storage!r}')
    if durability not in ("normal", "full"):
        raise ProgrammingError(f'durability must be "normal" or "full", not {durability!r}')
    try:
        bridge = await _get_bridge()
    except Exception as e:  # the JS module failed to load: say where it was looked for
        raise OperationalError(
            f"cannot load the edgesql bridge from {_config['bridge_url']!r} ({e}); "
            "serve the web/ folder (serve.py does) or call edgesql.configure(bridge_url=...)"
        ) from None
    # The connection's interrupt key (worker/signals.js): random, so tabs need not agree on one.
    key = random.getrandbits(31) or 1
    out = bridge.callSync(
        dumps(
            {"op": "open", "path": path, "options": {"storage": storage, "durability": durability, "ik": key}}
        )
    )
    if not isinstance(out, str):
        out = await bridge.wait(out)
    r = loads(out)
    if not r["ok"]:
        raise error_from_data(r["error"])
    info = BackendInfo(
        backend="sqlite-wasm",
        storage=r["storage"],
        path=path,
        persistent=r["persistent"],
        sqlite_version=r["sqlite_version"],
        warning=r["warning"],
        # owner: whether this tab's worker holds the database (others route to it).
        extra={"fast_path": bool(bridge.fastPath), "owner": bool(r.get("owner", True))},
    )
    if info.warning:
        log.warning("edgesql: %s", info.warning)
    backend = BrowserBackend(bridge, r["s"], info, key, r.get("signals", ""), statement_timeout)
    if sync_url:
        import js  # type: ignore[import-not-found]

        url = str(js.URL.new(sync_url, js.location.href).href)
        backend._auth = auth
        try:
            await backend._start_sync(url, auth_token, interval or 0)
        except BaseException:
            await backend.close()
            raise
    return backend
