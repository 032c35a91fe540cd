"""Request rate limits for the embedded primary: one token bucket per caller.

A caller is the pair (which app token it sent, its IP address): tokens are per
app, shared by every device of the app, so a bucket per token alone would be
one cap for the whole user base, while a bucket per IP alone would let one
machine spend the budget of every app it holds a token for. Requests whose
token does not match are counted per IP in a bucket of their own, which also
slows down guessing tokens.

A bucket holds up to ``burst`` requests and refills at ``rate`` per second.
A refused request gets 429 ``rate_limited`` with ``Retry-After``: the whole
seconds until the bucket holds a request again (HTTP allows only whole
seconds there). Replicas wait at least that long before they retry
(``sync/replica.py``, ``worker/sync.js``).

Cloudflare deployments limit rates at Cloudflare's edge (rate limiting rules),
not in the Worker; this module is the embedded primary's own.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["DEFAULT_BURST", "DEFAULT_RATE", "RateLimiter", "parse_rate"]

#: Requests per second per caller: a replica syncs a few times a second at most
#: (debounced writes, pages of 5,000 changes), so only a runaway client reaches it.
DEFAULT_RATE = 50.0
#: Requests a caller may make at once before the rate applies (a first sync pages fast).
DEFAULT_BURST = 100.0
#: Buckets kept before full ones are forgotten (a full bucket is the same as none).
MAX_BUCKETS = 10_000


def parse_rate(text: str) -> float:
    """``"50/s"``, ``"50"`` or ``"off"`` (``"0"``) as requests per second; 0 means no limit."""
    t = text.strip().lower()
    if t in ("off", "none", "0", "0/s"):
        return 0.0
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(?:/\s*s)?", t)
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"a rate is N/s (requests per second, e.g. 50/s) or off, not {text!r}")
    return float(m.group(1))


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """Token buckets by key; :meth:`take` says whether a request may go, or how long to wait."""

    def __init__(
        self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive (no limiter at all means no limit)")
        self.rate = rate
        self.burst = max(1.0, burst if burst is not None else 2 * rate)
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float | None:
        """Spend one request of ``key``'s bucket: ``None`` if it may go, else the seconds to wait."""
        with self._lock:
            now = self._clock()
            b = self._buckets.get(key)
            if b is None:
                if len(self._buckets) >= MAX_BUCKETS:
                    self._forget_full(now)
                b = self._buckets[key] = _Bucket(self.burst, now)
            b.tokens = min(self.burst, b.tokens + (now - b.at) * self.rate)
            b.at = now
            if b.tokens >= 1:
                b.tokens -= 1
                return None
            return (1 - b.tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        full = [k for k, b in self._buckets.items() if b.tokens + (now - b.at) * self.rate >= self.burst]
        for k in full:
            del self._buckets[k]
        if len(self._buckets) >= MAX_BUCKETS:  # all busy: drop the oldest rather than grow
            oldest = sorted(self._buckets, key=lambda k: self._buckets[k].at)[: MAX_BUCKETS // 10]
            for k in oldest:
                del self._buckets[k]


def retry_after_header(wait: float) -> str:
    """``Retry-After`` for a wait of ``wait`` seconds: whole seconds, at least 1, never shorter."""
    return str(max(1, math.ceil(wait)))
