"""Run a coroutine to completion from a sync test.

Playwright's sync API keeps an event loop running on the main thread for the
whole session, so ``asyncio.run`` there would refuse; a worker thread has
none.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aio")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)`` on a thread with no running loop."""
    return _pool.submit(asyncio.run, coro).result()


class LoopThread:
    """An event loop on a thread of its own, for async work that outlives one call:
    CPython replicas whose background sync keeps running while the test drives a browser."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-loop", daemon=True)
        self._thread.start()

    def submit(self, aw: Awaitable[T]) -> concurrent.futures.Future[T]:
        """Start ``aw`` (a coroutine, or edgesql.connect(...)) on the loop; its result comes through the future."""

        async def wrap() -> T:
            return await aw

        return asyncio.run_coroutine_threadsafe(wrap(), self.loop)

    def call(self, coro: Awaitable[T], timeout: float | None = 300) -> T:
        """Run ``coro`` on the loop and wait for its result."""
        return self.submit(coro).result(timeout)

    def close(self) -> None:
        """Cancel what still runs, stop the loop and its thread."""

        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.loop.shutdown_default_executor()

        self.call(cancel_all(), 60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()
