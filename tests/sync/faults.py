"""Transports that misbehave on purpose (fault injection around a real transport).

These are the named mocks of the suite: a network that loses a response
after the primary committed, or delivers a request twice, cannot be produced
on demand otherwise.

* :class:`LoseResponses`, :class:`Duplicate`, :class:`Offline`: one fault each,
  for tests that want exactly that one.
* :class:`FaultPlan` decides, from a seeded random stream, which fault (if
  any) each request gets; :class:`FaultyTransport` applies its decisions
  around a CPython replica's transport, and ``tests/sync/faultproxy.py``
  applies the same decisions to a browser's requests in an HTTP proxy. Both
  log every POST (when, which fault, what ``Retry-After`` it was told) so a
  test can check that a replica waited as long as it was asked to.
"""

from __future__ import annotations

import asyncio
import collections
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from edgesql.sync.transport import Response

#: What a :class:`FaultPlan` can do to one request.
FAULTS = (
    "drop_request",  # never delivered; the client sees a connection reset
    "drop_response",  # delivered (the primary commits), the answer is lost
    "duplicate",  # delivered twice; the client gets the second answer
    "reorder",  # held back (the client sees a timeout), delivered after the next request
    "delay",  # delivered late
    "error_500",  # answered 500 without being delivered
    "rate_limited",  # answered 429 with Retry-After without being delivered
)


@dataclass(frozen=True)
class FaultRates:
    """The probability of each fault per request (the rest pass untouched)."""

    drop_request: float = 0.0
    drop_response: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    delay: float = 0.0
    error_500: float = 0.0
    rate_limited: float = 0.0
    #: A delayed request waits up to this long.
    max_delay_s: float = 0.2
    #: The ``Retry-After`` of an injected 429, in whole seconds (HTTP's delay-seconds).
    retry_after_s: int = 1


#: Every fault, often: about one request in three is hit.
MIXED = FaultRates(
    drop_request=0.05,
    drop_response=0.05,
    duplicate=0.05,
    reorder=0.04,
    delay=0.06,
    error_500=0.04,
    rate_limited=0.03,
)


@dataclass
class Event:
    """One POST that went through a fault seam."""

    at: float  # time.monotonic() when the client sent it
    client: str  # who sent it (a replica id)
    fault: str  # "pass" or one of FAULTS
    retry_after: float | None = None  # the Retry-After the client was told


@dataclass
class FaultPlan:
    """Seeded decisions about which fault each request gets, and a log of what happened.

    ``enabled`` can be switched off (from any thread) to let a system settle.
    """

    seed: int
    rates: FaultRates = MIXED
    enabled: bool = True
    events: list[Event] = field(default_factory=list)
    counts: collections.Counter[str] = field(default_factory=collections.Counter)

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)
        self._lock = threading.Lock()

    def choose(self, client: str) -> Event:
        """The fault for the next request of ``client`` (logged)."""
        with self._lock:
            fault = "pass"
            if self.enabled:
                x = self.random.random()
                for name in FAULTS:
                    x -= getattr(self.rates, name)
                    if x < 0:
                        fault = name
                        break
            ev = Event(time.monotonic(), client, fault)
            if fault == "rate_limited":
                ev.retry_after = float(self.rates.retry_after_s)
            self.events.append(ev)
            self.counts[fault] += 1
            return ev

    def record(self, ev: Event) -> None:
        """Log a request that got a real answer (no fault chosen)."""
        with self._lock:
            self.events.append(ev)
            self.counts[ev.fault] += 1

    def delay(self) -> float:
        """How long a delayed request waits."""
        with self._lock:
            return self.random.uniform(0, self.rates.max_delay_s)

    def retry_after_violations(self) -> list[tuple[Event, Event]]:
        """Pairs (429 answer, next request of the same client) that came sooner than asked."""
        bad = []
        last: dict[str, Event] = {}
        for ev in sorted(self.events, key=lambda e: e.at):
            prev = last.get(ev.client)
            if prev is not None and prev.retry_after is not None and ev.at - prev.at < prev.retry_after:
                bad.append((prev, ev))
            last[ev.client] = ev
        return bad

    def retry_after_waits(self) -> list[float]:
        """For each injected 429 that was followed by another request: how long the client waited."""
        waits = []
        last: dict[str, Event] = {}
        for ev in sorted(self.events, key=lambda e: e.at):
            prev = last.get(ev.client)
            if prev is not None and prev.retry_after is not None:
                waits.append(ev.at - prev.at)
            last[ev.client] = ev
        return waits


def injected(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    """An answer the fault seam makes up (the primary never saw the request)."""
    body = f'{{"error":"{code}","message":"{message} (injected)"}}'.encode()
    return Response(status, {"content-type": "application/json", **(headers or {})}, body)


class FaultyTransport:
    """A CPython replica's transport with :class:`FaultPlan`'s faults on every POST.

    GETs (the schema document) pass untouched: a replica that cannot fetch it on
    its first start refuses to start, which is tested elsewhere.
    """

    def __init__(self, inner: Any, plan: FaultPlan, client: str) -> None:
        self.inner = inner
        self.plan = plan
        self.client = client
        #: Requests held back by "reorder", delivered after the next one.
        self.held: list[tuple[str, str, bytes | None, dict[str, str]]] = []

    async def request(self, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> Response:
        if method != "POST":
            return await self.inner.request(method, url, body, headers)
        ev = self.plan.choose(self.client)
        match ev.fault:
            case "drop_request":
                raise ConnectionResetError("connection reset before the request was delivered (injected)")
            case "error_500":
                return injected(500, "internal", "the primary failed")
            case "rate_limited":
                return injected(
                    429, "rate_limited", "too many requests", {"retry-after": f"{ev.retry_after:.0f}"}
                )
            case "reorder":
                self.held.append((method, url, body, headers))
                raise TimeoutError("the request timed out (injected; it is delivered later)")
            case "delay":
                await asyncio.sleep(self.plan.delay())
        resp = await self.inner.request(method, url, body, headers)
        if ev.fault == "duplicate":
            resp = await self.inner.request(method, url, body, headers)
        await self.flush()  # older requests arrive after this newer one
        if ev.fault == "drop_response":
            raise ConnectionResetError("connection reset after the request was delivered (injected)")
        return resp

    async def flush(self) -> None:
        """Deliver the requests held back (their answers go nowhere)."""
        held, self.held = self.held, []
        for method, url, body, headers in held:
            await self.inner.request(method, url, body, headers)


class RecordingTransport:
    """Passes every request through and logs each POST's time, status and Retry-After.

    Not a fault: it shows how a replica behaves against a real primary's
    answers (the rate limit's 429s).
    """

    def __init__(self, inner: Any, plan: FaultPlan, client: str) -> None:
        self.inner = inner
        self.plan = plan
        self.client = client

    async def request(self, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> Response:
        at = time.monotonic()
        resp = await self.inner.request(method, url, body, headers)
        if method == "POST":
            retry = resp.headers.get("retry-after") if resp.status == 429 else None
            self.plan.record(Event(at, self.client, f"status {resp.status}", float(retry) if retry else None))
        return resp


class LoseResponses:
    """Delivers requests, but loses the answer to the next ``n`` POSTs (the primary did commit)."""

    def __init__(self, inner: Any, n: int = 1) -> None:
        self.inner = inner
        self.n = n

    async def request(self, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> Response:
        resp = await self.inner.request(method, url, body, headers)
        if method == "POST" and self.n > 0:
            self.n -= 1
            raise ConnectionResetError("connection reset after the request was delivered (injected)")
        return resp


class Duplicate:
    """Delivers every POST twice and answers with the second answer."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def request(self, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> Response:
        if method == "POST":
            await self.inner.request(method, url, body, headers)
        return await self.inner.request(method, url, body, headers)


class Offline:
    """No network at all while ``down`` is set."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.down = False

    async def request(self, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> Response:
        if self.down:
            raise ConnectionRefusedError("network unreachable (injected)")
        return await self.inner.request(method, url, body, headers)
