"""How a CPython replica reaches its primary: one narrow interface, one real implementation.

:class:`Transport` is the seam for fault injection (tests wrap it to drop,
duplicate, delay or reorder requests) instead of monkeypatching. The real
one, :class:`HttpTransport`, is the stdlib's urllib run in a thread, so the
core package needs no third-party library.
"""

from __future__ import annotations

import asyncio
import http.client
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Protocol

__all__ = ["HttpTransport", "Response", "Transport"]


@dataclass(frozen=True)
class Response:
    """An HTTP answer: status, headers (lower-case names) and body."""

    status: int
    headers: dict[str, str]
    body: bytes


class Transport(Protocol):
    """Sends one HTTP request. Raises ``OSError`` when no answer came (network down,
    connection reset, timeout); an HTTP error status is an answer, not an exception."""

    async def request(self, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> Response:
        """Send and return the answer."""
        ...


class HttpTransport:
    """HTTP over urllib, off the event loop."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout

    async def request(self, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> Response:
        return await asyncio.to_thread(self._send, method, url, body, headers)

    def _send(self, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> Response:
        req = urllib.request.Request(url, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return Response(r.status, {k.lower(): v for k, v in r.headers.items()}, r.read())
        except urllib.error.HTTPError as e:
            with e:
                return Response(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())
        except urllib.error.URLError as e:
            reason = e.reason if isinstance(e.reason, OSError) else OSError(str(e.reason))
            raise reason from None
        except http.client.HTTPException as e:
            # The connection broke mid-answer (IncompleteRead, BadStatusLine...): no answer
            # came, as the Transport contract says with OSError.
            raise ConnectionError(f"the connection broke during the answer: {e!r}") from None
