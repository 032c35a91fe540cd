"""The CPython replica's end of the change stream (``GET <sync_url>/stream``, docs/protocol.md).

A blocking reader, run on a thread by :class:`~.replica.NativeReplica`: it
opens the stream with the replica's headers, calls ``on_seq`` with the seq of
each event, and returns why it ended. The stream only says *when* to sync (the
log's end seq); the replica's ordinary rounds pull from its cursor, so a stream
that drops loses nothing. :meth:`EventStream.close` shuts the socket from any
thread, which ends a read that waits for the next heartbeat.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
from collections.abc import Callable

__all__ = ["FIRST_EVENT_S", "SILENCE_S", "EventStream"]

#: The first event must come within this many seconds, or the stream is taken for buffered.
FIRST_EVENT_S = 5.0
#: The primary sends a heartbeat every 25 s: this long without a byte, the stream is dead.
SILENCE_S = 60.0


class EventStream:
    """One ``GET .../stream`` connection."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.url = url
        self.headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        self.headers["accept"] = "text/event-stream"
        self.status: int | None = None
        self.retry_after: float | None = None
        self._conn: http.client.HTTPConnection | None = None
        self._closed = False

    def run(self, on_seq: Callable[[int], None]) -> str:
        """Read events until the stream ends: 'ended' (it was held, then closed), 'refused'
        (not a 200 stream: :attr:`status` says which), 'buffered' (no first event in time),
        'silent' (no heartbeat), 'network' or 'closed'."""
        parts = urllib.parse.urlsplit(self.url)
        cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        conn = cls(parts.netloc, timeout=FIRST_EVENT_S)
        self._conn = conn
        held = False
        try:
            conn.connect()
            if self._closed:  # (close() found no socket to shut yet)
                return "closed"
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            conn.request("GET", path, headers=self.headers)
            resp = conn.getresponse()
            self.status = resp.status
            if resp.status != 200 or not (resp.getheader("content-type") or "").startswith(
                "text/event-stream"
            ):
                retry = resp.getheader("retry-after")
                self.retry_after = float(retry) if retry and retry.replace(".", "", 1).isdigit() else None
                return "refused"
            data: list[str] = []
            while True:
                raw = resp.readline()
                if not raw:
                    return "ended" if held else "buffered"
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if line.startswith("data:"):
                    data.append(line[5:].strip())
                elif line == "" and data:
                    try:
                        seq = int(json.loads("\n".join(data))["seq"])
                    except (ValueError, KeyError, TypeError):
                        seq = None
                    data = []
                    if seq is not None:
                        if not held:
                            held = True
                            if conn.sock is not None:
                                conn.sock.settimeout(SILENCE_S)
                        on_seq(seq)
        except TimeoutError:
            return "silent" if held else "buffered"
        except (OSError, http.client.HTTPException):
            if self._closed:
                return "closed"
            return "ended" if held else "network"
        finally:
            conn.close()

    def close(self) -> None:
        """End the stream from another thread."""
        self._closed = True
        conn = self._conn
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
