"""Transports that misbehave on purpose (fault injection around a real transport).

These are the named mocks of the suite: a network that loses a response
after the primary committed, or delivers a request twice, cannot be produced
on demand otherwise.
"""

from __future__ import annotations

from typing import Any

from edgesql.sync.transport import Response


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
