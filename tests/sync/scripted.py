"""A proxy that answers some requests itself, for the replica contract suite.

It is :class:`~.faultproxy.FaultProxy` with no random faults: everything goes
to serve.py, except the answers a test queues for a path (``answer``) and
the connections it resets (``reset``). Both replica kinds reach the primary
through it (a CPython replica by URL, a browser page opened at its origin),
so one test case runs on each. Every request is logged with its time.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from .faultproxy import FaultProxy, _replica_of
from .faults import FaultPlan, FaultRates


@dataclass
class Canned:
    """One answer the proxy gives instead of the primary (``status`` None: reset the connection)."""

    status: int | None
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    #: Only for a POST from this replica id (other pages' replicas pass through).
    replica: str | None = None


class ScriptedProxy(FaultProxy):
    """Forwards to ``upstream``; answers queued requests itself (see the module docstring)."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream, FaultPlan(0, FaultRates(), enabled=False))
        self._queue: dict[tuple[str, str], list[Canned]] = {}
        self._lock = threading.Lock()
        self.log: list[tuple[float, str, str, int | None, str | None]] = []

    def answer(
        self,
        method: str,
        path: str,
        status: int,
        body: Any = b"",
        times: int = 1,
        replica: str | None = None,
        **headers: str,
    ) -> None:
        """The next ``times`` requests ``method path`` (from ``replica``, if given) get this
        answer (JSON if ``body`` is a dict)."""
        data = json.dumps(body).encode() if isinstance(body, dict) else bytes(body)
        hs = (("content-type", "application/json"), *((k.replace("_", "-"), v) for k, v in headers.items()))
        with self._lock:
            self._queue.setdefault((method, path), []).extend([Canned(status, data, hs, replica)] * times)

    def reset(self, method: str, path: str, times: int = 1, replica: str | None = None) -> None:
        """The next ``times`` requests ``method path`` find the connection reset (the primary unreachable)."""
        with self._lock:
            self._queue.setdefault((method, path), []).extend([Canned(None, replica=replica)] * times)

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    def requests(self, method: str, path: str, replica: str | None = None) -> list[tuple[float, int | None]]:
        """(time, status) of each request to ``method path`` (from ``replica``) so far (None: reset)."""
        return [(t, s) for t, m, p, s, r in self.log if (m, p) == (method, path) and replica in (None, r)]

    async def _handle(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes] | None:
        path = target.split("?")[0]
        sender = _replica_of(body) if method == "POST" else None
        with self._lock:
            queue = self._queue.get((method, path), [])
            i = next((i for i, c in enumerate(queue) if c.replica in (None, sender)), None)
            canned = queue.pop(i) if i is not None else None
        at = time.monotonic()
        if canned is None:
            answer = await self._forward(method, target, headers, body)
            self.log.append((at, method, path, answer[0], sender))
            return answer
        self.log.append((at, method, path, canned.status, sender))
        if canned.status is None:
            return None
        return canned.status, list(canned.headers), canned.body
