"""The sync indicator in the app's header: where sync stands, in a word and a colour.

Sync runs by itself in the DB worker (after writes, every few seconds, and
when the browser comes back online); this only shows where it stands and
offers "Sync now". It reads ``await db.sync_status()`` once a second — one
round trip to the worker, well under a millisecond, and no request to the
server — and redraws only what changed. It shows ``status.state`` (docs/sync.md):
synced (green), syncing or pending changes (blue), the device offline or the
server unreachable while the device is online (amber: sync retries by itself),
and an error that needs action (red, with its message). During a long first pull it shows a progress bar
(``status.progress``). When the number of writes the primary rejected
changes, it tells the app, which re-reads ``_edgesql_rejected``::

    bar = SyncIndicator(db, on_rejected=app.rejected_changed, notify=app.toast)
    spawn(bar.run())

The token the sync server asks for (``serve.py --auth-token``) is kept in this
browser's localStorage (:func:`saved_token`, :func:`save_token`): ``main.py``
passes it to ``connect(auth_token=...)`` and asks for it when the server turns
the device away; the sidebar's Token field changes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import js  # type: ignore[import-not-found]
from pyscript import document  # type: ignore[import-not-found]

import edgesql

from .views import ago

__all__ = ["SyncIndicator", "save_token", "saved_token"]

POLL_S = 1.0
TOKEN_KEY = "edgesql-demo:sync-token"


def saved_token() -> str | None:
    """The sync token kept on this device, or None."""
    token = js.localStorage.getItem(TOKEN_KEY)
    return str(token) if token else None


def save_token(token: str) -> None:
    """Keep ``token`` on this device (an empty one forgets it). Blanks around it are dropped:
    a pasted token often brings a line break, and no server accepts a token with them."""
    token = token.strip()
    if token:
        js.localStorage.setItem(TOKEN_KEY, token)
    else:
        js.localStorage.removeItem(TOKEN_KEY)


def _el(id_: str) -> Any:
    return document.getElementById(id_)


class SyncIndicator:
    """Keeps the header's sync pill and the progress strip up to date."""

    def __init__(
        self,
        db: edgesql.Connection,
        on_rejected: Callable[[int], None],
        notify: Callable[[str], None],
    ) -> None:
        self.db = db
        self.on_rejected = on_rejected
        self.notify = notify
        self.status: Any = None
        self._rejected: int | None = None
        self._shown: tuple[Any, ...] | None = None
        self._wake = asyncio.Event()

    async def run(self) -> None:
        """Poll the status until the database closes."""
        while not self.db.closed:
            try:
                self.render(await self.db.sync_status())
            except edgesql.Error as e:
                _el("sync-label").textContent = "Sync status unavailable"
                _el("sync").title = str(e)
            try:
                await asyncio.wait_for(self._wake.wait(), POLL_S)
            except TimeoutError:
                pass
            self._wake.clear()

    def render(self, st: Any) -> None:
        """Show status ``st`` (an ``edgesql.SyncStatus``)."""
        self.status = st
        if st.rejected != self._rejected:
            self._rejected = st.rejected
            self.on_rejected(st.rejected)
        live = getattr(st, "live", False)
        retrying = (
            f" · retrying in {st.retry_in:.0f} s" if st.retry_in is not None and st.retry_in >= 1 else ""
        )
        if st.progress is not None:
            total = st.progress.total or st.progress.applied
            state, label = "busy", "Downloading…"
        elif st.state == "offline":  # the device has no network: edits wait here
            state, label = "off", "Offline"
        elif st.state == "unreachable":  # the network is fine, the server does not answer (or is busy)
            state, label = "off", "Server unreachable" + retrying
        elif st.state == "error":  # the server refused, or a change cannot be applied: someone must act
            state, label = "error", f"Sync error: {st.last_error}"
        elif st.state == "syncing":
            state, label = "busy", "Syncing…"
        elif st.pending:
            state, label = "busy", "Saving…"
        else:
            state, label = "on", "Synced " + ago(st.last_synced_at)
            if live:  # the server's change stream: others' edits arrive at once
                label += " · Live"
        pending = f"{st.pending} pending" if st.pending else ""
        shown = (state, label, pending, st.last_error, st.progress)
        if shown == self._shown:
            return
        self._shown = shown
        box = _el("sync")
        box.hidden = False  # hidden until there is a status to show
        box.dataset.state = state
        _el("sync-label").textContent = label
        pill = _el("sync-pending")
        pill.textContent = pending
        pill.hidden = not pending
        details = [
            {
                "offline": "Offline: changes are kept on this device and sent when back online",
                "unreachable": "The server does not answer: changes are kept on this device and sent "
                "as soon as it is back",
                "error": "Sync needs attention: changes are kept on this device, but sync fails until "
                "the error below is fixed",
            }.get(st.state, "Online" + (" · live: other devices' changes arrive at once" if live else "")),
            f"last sync: {st.last_synced_at.replace('T', ' ')[:19] + ' UTC' if st.last_synced_at else 'never'}",
            f"{st.pending} change(s) waiting to be sent",
            f"schema v{st.schema_version} · device {st.replica[:8]}",
        ]
        if st.last_error:
            details.append(f"last error: {st.last_error}")
        box.title = "\n".join(details)
        strip = _el("sync-progress")
        if st.progress is not None:
            strip.hidden = False
            bar = _el("sync-bar")
            bar.max = max(total, 1)
            bar.value = st.progress.applied
            _el(
                "sync-count"
            ).textContent = f"Downloading your data: {st.progress.applied:,} of {total:,} changes"
        else:
            strip.hidden = True

    async def sync_now(self) -> None:
        """Push and pull now; say what happened."""
        button = _el("sync-button")
        button.disabled = True
        _el("sync").dataset.state = "busy"
        _el("sync-label").textContent = "Syncing…"
        self._shown = None
        try:
            r = await self.db.sync()
        except edgesql.SyncError as e:
            self.notify(f"Could not sync: {e}")
        else:
            moved = []
            if r.pushed:
                moved.append(f"sent {r.pushed}")
            if r.pulled:
                moved.append(f"received {r.pulled}")
            self.notify("Synced: " + (", ".join(moved) + " change(s)." if moved else "up to date."))
        finally:
            button.disabled = False
            self._wake.set()
