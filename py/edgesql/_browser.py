"""The browser backend: SQLite-Wasm on OPFS in a Web Worker, from Pyodide.

Python on the page talks to the DB worker through ``bridge.js``. Where the
page is cross-origin isolated a call is answered synchronously through a
SharedArrayBuffer (tens of microseconds), so ``await db.execute(...)`` often
completes without suspending; otherwise it awaits a postMessage answer.
Requests and answers are JSON text with exact types (see ``_wire.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ._backend import BackendInfo, Statement
from ._exceptions import OperationalError, ProgrammingError, error_from_data
from ._result import ResultSet
from ._wire import PLAIN, dumps, loads

__all__ = ["BrowserBackend", "configure", "open_browser_backend"]

log = logging.getLogger("edgesql")

_config: dict[str, str] = {"bridge_url": "/bridge.js"}
_bridge: Any = None


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

    def __init__(self, bridge: Any, session: int, info: BackendInfo) -> None:
        self._bridge = bridge
        self._call_sync = bridge.callSync
        self._wait = bridge.wait
        self._s = session
        self._in_tx = False
        self.info = info
        self._listeners: set[Callable[[set[str]], None]] = set()
        self._js_unsubscribe: Any = None
        self._proxy: Any = None

    @property
    def in_transaction(self) -> bool:
        return self._in_tx

    async def _call(self, req: dict[str, Any], slow: bool = False) -> dict[str, Any]:
        # A slow request (a sync round trip) goes by postMessage, so it never holds
        # the fast path while the app's queries wait behind it.
        out = self._bridge.callAsync(dumps(req)) if slow else self._call_sync(dumps(req))
        if not isinstance(out, str):
            out = await self._wait(out)
        resp: dict[str, Any] = loads(out)
        tx = resp.get("tx")
        if tx is not None:
            self._in_tx = tx
        if not resp["ok"]:
            raise error_from_data(resp["error"])
        return resp

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
        await self._call({"op": "tx", "s": self._s, "action": action, "name": name, "mode": mode})

    async def tables(self, sql: str) -> tuple[list[str], list[str]]:
        """The tables ``sql`` reads and writes (from SQLite's authorizer)."""
        r = await self._call({"op": "tables", "s": self._s, "sql": sql})
        return r["reads"], r["writes"]

    def subscribe(self, listener: Callable[[set[str]], None]) -> Callable[[], None]:
        """Call ``listener(tables)`` after each committed change to this database."""
        self._listeners.add(listener)
        if self._js_unsubscribe is None:
            from pyodide.ffi import create_proxy  # type: ignore[import-not-found]

            self._proxy = create_proxy(self._on_event)
            self._js_unsubscribe = self._bridge.subscribe(self._proxy)

        def unsubscribe() -> None:
            self._listeners.discard(listener)

        return unsubscribe

    def _on_event(self, msg: Any) -> None:
        if msg.db != self.info.path:
            return
        event = msg.event
        if event.type == "changes":
            tables = set(event.tables.to_py())
            for listener in list(self._listeners):
                listener(tables)

    async def sync(self) -> Any:
        from .sync.status import SyncResult

        r = await self._call({"op": "sync.now", "s": self._s}, slow=True)
        return SyncResult(r["pushed"], r["pulled"])

    async def sync_status(self) -> Any:
        from .sync.status import SyncProgress, SyncStatus

        st = (await self._call({"op": "sync.status", "s": self._s}))["status"]
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
        )

    async def close(self) -> None:
        await self._call({"op": "close", "s": self._s})
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
    interval = options.pop("sync_interval", 30.0)
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
    out = bridge.callSync(
        dumps({"op": "open", "path": path, "options": {"storage": storage, "durability": durability}})
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
    backend = BrowserBackend(bridge, r["s"], info)
    if sync_url:
        import js  # type: ignore[import-not-found]

        url = str(js.URL.new(sync_url, js.location.href).href)
        try:
            await backend._call(
                {"op": "sync.start", "s": r["s"], "url": url, "token": auth_token, "interval": interval or 0},
                slow=True,
            )
        except BaseException:
            await backend.close()
            raise
    return backend
