"""Live views: a live query whose parameters change as the person navigates.

``db.watch(sql, params)`` gives a fresh result now and whenever a table the
query reads changes — a write on this page, in another tab, or pulled from
another device. A view such as "the tasks of the selected project" needs a
new query when the selection changes: :meth:`LiveView.show` closes the old
watch and starts the new one, and drops a result of the old one that was
already on its way, so a view never shows the previous selection's rows::

    tasks = LiveView(db, render=lambda rs: ..., on_error=show_error)
    tasks.show(TASKS_SQL, (project_id,))    # now, and after every change
    tasks.show(TASKS_SQL, (other_id,))      # switches; the old watch is closed
    tasks.stop()

:func:`spawn` runs a coroutine from a DOM event handler and keeps a
reference to it until it is done (asyncio keeps only weak ones).

When the database is busy — another tab runs a long query in the worker
that owns it — a view's query waits, and gives up at the connection's
``statement_timeout`` (``main.py``). A view then keeps what it showed,
asks again shortly, and while any view has waited longer than
``WAITING_AFTER_S`` the page says it is waiting (:func:`on_waiting`; by
default a banner under the header), instead of showing an empty panel.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import edgesql

__all__ = ["LiveView", "on_waiting", "spawn"]

#: A view still without its result after this long tells the page it is waiting.
WAITING_AFTER_S = 0.3
#: After its query gave up at the time limit (the database was busy), a view asks again this much later.
RETRY_AFTER_S = 0.5
SQLITE_INTERRUPT = 9

_running: set[asyncio.Future[Any]] = set()
_error_handler: list[Callable[[BaseException], None]] = []
_waiting: set[LiveView] = set()
_waiting_handler: list[Callable[[bool], None]] = []


def on_waiting(handler: Callable[[bool], None]) -> None:
    """Called with True when views start waiting for a busy database, False when none waits any more."""
    _waiting_handler[:] = [handler]


def _waiting_banner(waiting: bool) -> None:
    """The default: a banner under the header while views wait (styled in /style.css)."""
    import js  # type: ignore[import-not-found]

    banner = js.document.getElementById("db-waiting")
    if not banner:  # JavaScript's null (pyodide.ffi.jsnull here, not None)
        banner = js.document.createElement("div")
        banner.id = "db-waiting"
        banner.className = "db-waiting"
        banner.setAttribute("role", "status")
        banner.textContent = (
            "Waiting for the database: it is busy with a long query (in another tab?). "
            "Everything here updates as soon as it is free."
        )
        js.document.body.append(banner)
    banner.hidden = not waiting
    js.document.documentElement.dataset.dbWaiting = "true" if waiting else "false"


def _set_waiting(view: LiveView, waiting: bool) -> None:
    before = bool(_waiting)
    if waiting:
        _waiting.add(view)
    else:
        _waiting.discard(view)
    if bool(_waiting) != before:
        (_waiting_handler[0] if _waiting_handler else _waiting_banner)(bool(_waiting))


def on_task_error(handler: Callable[[BaseException], None]) -> None:
    """Where an exception escaping a spawned coroutine is reported (the page shows it)."""
    _error_handler[:] = [handler]


def _done(task: asyncio.Future[Any]) -> None:
    _running.discard(task)
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        if _error_handler:
            _error_handler[0](exc)
        else:
            traceback.print_exception(exc)


def spawn(coro: Coroutine[Any, Any, Any]) -> asyncio.Future[Any]:
    """Run ``coro`` in the background; its exception, if any, goes to the error handler."""
    task = asyncio.ensure_future(coro)
    _running.add(task)
    task.add_done_callback(_done)
    return task


class LiveView:
    """One view of the page, kept up to date by a live query."""

    def __init__(
        self,
        db: edgesql.Connection,
        render: Callable[[edgesql.ResultSet], None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        self._db = db
        self._render = render
        self._on_error = on_error
        self._watch: Any = None
        self._key: tuple[str, tuple[Any, ...]] | None = None
        self._answered: Any = None  # the watch whose result is on screen

    @property
    def active(self) -> bool:
        """Whether the view is showing a query now."""
        return self._watch is not None

    def show(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Show the results of ``sql`` with ``params`` from now on (no-op when unchanged)."""
        key = (sql, tuple(params))
        if key == self._key:
            return
        self.stop()
        self._key = key
        self._start(key)

    def _start(self, key: tuple[str, tuple[Any, ...]]) -> None:
        watch = self._db.watch(*key)
        self._watch = watch
        spawn(self._pump(watch))
        spawn(self._notice_wait(watch))

    def stop(self) -> None:
        """Stop showing the current query."""
        watch, self._watch, self._key = self._watch, None, None
        _set_waiting(self, False)
        if watch is not None:
            spawn(watch.close())

    async def _notice_wait(self, watch: Any) -> None:
        await asyncio.sleep(WAITING_AFTER_S)
        if watch is self._watch and self._answered is not watch:
            _set_waiting(self, True)  # no first result yet: the database is busy

    async def _pump(self, watch: Any) -> None:
        try:
            async for rs in watch:
                if watch is not self._watch:  # replaced while this result was being read
                    return
                self._answered = watch
                _set_waiting(self, False)
                try:
                    self._render(rs)
                except Exception as e:  # a bug in a render function: show it, keep the view live
                    self._on_error(e)
        except edgesql.Error as e:
            if watch is not self._watch:
                return
            if e.sqlite_errorcode == SQLITE_INTERRUPT:
                # It gave up at the time limit: the database is busy. Keep what is shown, ask again.
                _set_waiting(self, True)
                await asyncio.sleep(RETRY_AFTER_S)
                if watch is self._watch and self._key is not None:
                    spawn(watch.close())
                    self._start(self._key)
                return
            self._on_error(e)
