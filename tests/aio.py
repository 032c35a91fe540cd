"""Run a coroutine to completion from a sync test.

Playwright's sync API keeps an event loop running on the main thread for the
whole session, so ``asyncio.run`` there would refuse; a worker thread has
none.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aio")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)`` on a thread with no running loop."""
    return _pool.submit(asyncio.run, coro).result()
