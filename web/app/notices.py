"""Notices of edits that lost: "Your edit to task “Buy milk” was lost: the task was deleted…".

Sync merges every change deterministically, so a device's own edit can lose —
overwritten by a later write on another device, erased by a delete that won,
or refused by the server (a constraint, a project no longer shared). edgesql
records each one (``await db.conflicts()``); this shows them above the content
until dismissed (``db.dismiss_conflicts``). They are read from the local
database, so checking costs no request: every couple of seconds, and at once
when asked (after a sync)::

    notices = ConflictNotices(db)
    spawn(notices.run())
"""

from __future__ import annotations

import asyncio
from typing import Any

from pyscript import document  # type: ignore[import-not-found]

import edgesql

from .views import _LABEL_COLUMN, conflict_text, notice_items

__all__ = ["ConflictNotices"]

POLL_S = 2.0
SHOWN = 3  # the newest few; "Dismiss" reveals the next


def _el(id_: str) -> Any:
    return document.getElementById(id_)


class ConflictNotices:
    """Keeps ``#notices`` showing the device's undismissed conflicts."""

    def __init__(self, db: edgesql.Connection) -> None:
        self.db = db
        self._wake = asyncio.Event()
        self._drawn = ""

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except edgesql.Error:
                pass  # closed, or busy: the next turn tries again
            try:
                await asyncio.wait_for(self._wake.wait(), POLL_S)
            except TimeoutError:
                pass
            self._wake.clear()

    def poke(self) -> None:
        """Look again now (a sync just ended, or one was dismissed)."""
        self._wake.set()

    async def dismiss(self, conflict_id: int) -> None:
        await self.db.dismiss_conflicts([conflict_id])
        self.poke()

    async def refresh(self) -> None:
        conflicts = (await self.db.conflicts())[-SHOWN:][::-1]
        items = [(c.id, conflict_text(c, await self._label(c))) for c in conflicts]
        markup = notice_items(items)
        if markup != self._drawn:
            self._drawn = markup
            box = _el("notices")
            box.innerHTML = markup
            box.hidden = not items

    async def _label(self, c: Any) -> str | None:
        """The row's name as it is now on this device (None when it is gone)."""
        col = _LABEL_COLUMN.get(c.tbl)
        if col is None or len(c.key) != 1:
            return None
        try:
            rs = await self.db.execute(f'SELECT "{col}" FROM "{c.tbl}" WHERE id = ?', (c.key[0],))
        except edgesql.Error:
            return None
        value = rs.scalar()
        return str(value) if value is not None else None
