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
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import edgesql

__all__ = ["LiveView", "spawn"]

_running: set[asyncio.Future[Any]] = set()
_error_handler: list[Callable[[BaseException], None]] = []


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
        watch = self._db.watch(sql, tuple(params))
        self._watch = watch
        spawn(self._pump(watch))

    def stop(self) -> None:
        """Stop showing the current query."""
        watch, self._watch, self._key = self._watch, None, None
        if watch is not None:
            spawn(watch.close())

    async def _pump(self, watch: Any) -> None:
        try:
            async for rs in watch:
                if watch is not self._watch:  # replaced while this result was being read
                    return
                try:
                    self._render(rs)
                except Exception as e:  # a bug in a render function: show it, keep the view live
                    self._on_error(e)
        except edgesql.Error as e:
            if watch is self._watch:
                self._on_error(e)
