"""Connections to serve.py: how long a client may take to send, and how many it may hold.

uvicorn's HTTP/1.1 protocol (``uvicorn/protocols/http/h11_impl.py``) starts
no timer on a fresh connection (its keep-alive timer runs only after a
response, and any byte received cancels it), so an idle socket, a request
head sent a byte every 10 s, or a body sent that way stayed open for good;
~200 of them and the process ran out of file descriptors, and asyncio's
accept loop stopped taking connections, pages included (issue 12).

:class:`GuardedH11Protocol` is uvicorn's protocol with a deadline on each
phase of a connection that waits on the client:

* **head** (a fresh connection, or one kept alive after a response): the
  whole request head within ``header_timeout`` seconds, however the bytes
  trickle in. Then the connection closes (with 408 if part of a head came).
* **body** (a request whose body is still arriving and not yet answered):
  ``body_timeout`` seconds plus one second per ``body_min_rate`` bytes
  received, as Apache's mod_reqtimeout does, so a large body on a slow link
  passes and a drip does not. ``front.py`` reads /sync bodies against the
  same deadline and answers 408 itself; this one is the backstop.
* **linger** (answered before the body was read: 401, 413, 415…): uvicorn
  keeps reading and dropping the body, so a client that sends its whole
  body before it reads (most do) still finds the answer instead of a
  connection reset; for at most ``linger`` seconds.

Nothing limits the time the app takes to answer (a sync may be long), but a
client that reads none of its answer for ``write_stall`` seconds, while the
answer waits for it, is cut off (a slow reader that makes progress is not).

At most ``max_connections`` are open at once; a new one beyond that makes the
connection that has waited longest for a request head go (browsers open a
new one when an idle keep-alive connection closes), and is refused only when
every open connection is busy. :func:`raise_open_file_limit` lifts the soft
limit on open files to the hard one at start, and :func:`connection_cap`
keeps the cap below it, so accept() never fails for lack of descriptors.
"""

from __future__ import annotations

import asyncio
import json
import resource
import socket
import struct
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = [
    "ConnectionGuard",
    "ConnectionLimits",
    "GuardedH11Protocol",
    "connection_cap",
    "raise_open_file_limit",
]

#: Seconds for a whole request head. A browser sends its head at once; 10 s covers a slow
#: mobile link, and is longer than uvicorn's 5 s keep-alive, which closes idle connections first.
HEADER_TIMEOUT_S = 10.0
#: Seconds a request body may take before :data:`BODY_MIN_RATE` must be met on average.
BODY_TIMEOUT_S = 20.0
#: Bytes a second a body must average after the first :data:`BODY_TIMEOUT_S` seconds: a 4 MB
#: sync page passes on a 10 kbit/s link; a byte every few seconds does not.
BODY_MIN_RATE = 1_000.0
#: Seconds to keep reading (and dropping) a body after answering it unread, so the client
#: reads the answer rather than a reset; a 4 MB body needs 0.4 s at 10 MB/s.
LINGER_S = 10.0
#: Seconds a client may read nothing of an answer that waits for it before it is cut off.
WRITE_STALL_S = 60.0
#: Open connections: room for the ~1,000 long-lived connections of live sync planned for a
#: later issue, plus pages loading beside them.
MAX_CONNECTIONS = 4_096
#: Descriptors kept for what is not a client connection: files being served, the database
#: and its WAL, the d1-local proxy's connections to the Worker, pipes, logs.
FD_RESERVE = 256
#: How long past its own deadline the backstop lets the app answer a slow body (front.py does, with 408).
BODY_BACKSTOP_S = 2.0

_NEW, _HEAD, _BODY, _BUSY, _LINGER, _CLOSED = "new", "head", "body", "busy", "linger", "closed"


@dataclass(frozen=True)
class ConnectionLimits:
    """The limits of :class:`GuardedH11Protocol`, with their defaults (see the constants)."""

    header_timeout: float = HEADER_TIMEOUT_S
    body_timeout: float = BODY_TIMEOUT_S
    body_min_rate: float = BODY_MIN_RATE
    linger: float = LINGER_S
    write_stall: float = WRITE_STALL_S
    max_connections: int = MAX_CONNECTIONS

    def body_deadline(self, started: float, received: int) -> float:
        """When a body begun at ``started`` (loop time) with ``received`` bytes so far is too slow."""
        return started + self.body_timeout + received / self.body_min_rate


def raise_open_file_limit() -> int:
    """Lift the soft limit on open files to the hard one (a process may); the limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft if soft != resource.RLIM_INFINITY else target
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        return soft  # the kernel's own ceiling (fs.nr_open) is lower: keep what we have
    return target


def connection_cap(wanted: int, open_files: int) -> int:
    """At most ``wanted`` connections, and never more than the open-file limit leaves room for."""
    return max(1, min(wanted, open_files - FD_RESERVE))


def _raw_answer(status: int, reason: str, code: str, message: str, extra: str = "") -> bytes:
    """A whole HTTP/1.1 answer that closes the connection, for when no request is being served."""
    body = json.dumps({"error": code, "message": message}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncache-control: no-store\r\n"
        f"connection: close\r\n{extra}content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class ConnectionGuard:
    """What the connections of one server share: the limits, and who waits for a request head."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.live = 0  # connections not yet closed (by either side)
        self.waiting: OrderedDict[GuardedH11Protocol, None] = OrderedDict()  # in the head phase, oldest first

    def protocol_class(self) -> type[GuardedH11Protocol]:
        """uvicorn's ``Config(http=...)``: the protocol bound to this guard."""
        return type("GuardedH11Protocol", (GuardedH11Protocol,), {"guard": self})

    def make_room(self) -> bool:
        """Close the connection that has waited longest for a request head; False if none does."""
        if not self.waiting:
            return False
        oldest, _ = self.waiting.popitem(last=False)
        oldest.close_now()
        return True


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the deadlines and the cap of the module docstring."""

    guard: ClassVar[ConnectionGuard]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase = _NEW
        self._since = 0.0
        self._received = 0  # bytes received in the current phase
        self._timer: asyncio.TimerHandle | None = None
        self._stall: asyncio.TimerHandle | None = None
        self._counted = False

    # -- uvicorn's protocol interface --------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        guard = self.guard
        guard.live += 1
        self._counted = True
        if guard.live > guard.limits.max_connections and not guard.make_room():
            message = "the server has as many connections as it takes: retry in a second"
            transport.write(_raw_answer(503, "Service Unavailable", "busy", message, "retry-after: 1\r\n"))
            self.close_now()
            return
        self._enter(_HEAD)

    def data_received(self, data: bytes) -> None:
        if self._phase == _CLOSED:
            return  # closed by us, and the rest of the request does not matter
        self._received += len(data)
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._enter(_CLOSED)
        self._uncount()
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        # The WebSocket protocol takes the connection over, and this one never hears of it
        # again (no connection_lost): stop counting it here. (No WebSocket library is
        # installed today, so uvicorn upgrades nothing; one that is would need its own cap.)
        self._enter(_CLOSED)
        self._uncount()
        super().handle_websocket_upgrade(event)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stall is None:
            self._watch_writes(self.transport.get_write_buffer_size())

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None

    # -- phases ----------------------------------------------------------------------------

    def close_now(self) -> None:
        """Close this connection (after what is already written), and stop counting it."""
        self._enter(_CLOSED)
        self._uncount()
        if not self.transport.is_closing():
            self.transport.close()

    def _uncount(self) -> None:
        if self._counted:
            self._counted = False
            self.guard.live -= 1

    def _current(self) -> str:
        if self.transport.is_closing():
            return _CLOSED
        theirs, ours = self.conn.their_state, self.conn.our_state
        if theirs is h11.IDLE:
            return _HEAD
        if theirs is h11.SEND_BODY:
            return _BODY if ours is h11.SEND_RESPONSE or ours is h11.IDLE else _LINGER
        return _BUSY  # the request is in: the app is at work, or answering

    def _follow(self) -> None:
        phase = self._current()
        if phase != self._phase:
            self._enter(phase)

    def _enter(self, phase: str) -> None:
        if self._phase == _CLOSED:
            return  # closed for good: nothing to time any more
        self._phase = phase
        self._since = self.loop.time()
        self._received = 0
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiting = self.guard.waiting
        if phase == _HEAD:
            waiting[self] = None
            waiting.move_to_end(self)
        else:
            waiting.pop(self, None)
        if phase in (_HEAD, _BODY, _LINGER):
            self._timer = self.loop.call_at(self._deadline(), self._check)

    def _deadline(self) -> float:
        limits = self.guard.limits
        if self._phase == _HEAD:
            return self._since + limits.header_timeout
        if self._phase == _BODY:
            return limits.body_deadline(self._since, self._received) + BODY_BACKSTOP_S
        return self._since + limits.linger

    def _check(self) -> None:
        self._timer = None
        if self._phase in (_BUSY, _CLOSED):
            return
        deadline = self._deadline()
        if self.loop.time() < deadline:  # bytes came meanwhile (a body's deadline moves with them)
            self._timer = self.loop.call_at(deadline, self._check)
            return
        if self._phase == _HEAD and self._received:
            seconds = f"{self.guard.limits.header_timeout:g}"
            message = f"the request's head did not arrive within {seconds} seconds: send it whole, then retry"
            self.transport.write(_raw_answer(408, "Request Timeout", "request_timeout", message))
        self.close_now()

    def _watch_writes(self, pending: int) -> None:
        """While writing is paused, check every write_stall seconds that the client took some of
        the ``pending`` bytes (one big answer stays paused for as long as a slow client reads it)."""
        self._stall = self.loop.call_later(self.guard.limits.write_stall, self._check_writes, pending)

    def _check_writes(self, pending: int) -> None:
        now = self.transport.get_write_buffer_size()
        if now < pending:
            self._watch_writes(now)
            return
        # Not a byte read for write_stall seconds: drop the connection. (close() would wait for
        # the buffer to drain, so this holds even for a connection already closing.) Linger 0
        # makes it a reset: a plain close leaves what the kernel already queued (megabytes) to
        # trickle out to the client that is not reading it.
        self._stall = None
        self._enter(_CLOSED)
        self._uncount()
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass  # already gone
        self.transport.abort()
