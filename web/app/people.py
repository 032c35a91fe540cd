"""The people of the app: who is signed in, and who shares the open project.

Only when the server has access rules (someone is signed in, ``app/signin.py``):
the sidebar says who, with "Switch" to sign in as someone else, and the project
header lists its owner and members, with a box to share it by name. Sharing is
an ordinary synced write — a row in ``members`` — and the access rules do the
rest: the person's devices receive the project at their next sync (or lose it
when the row goes). Without users all of this stays hidden::

    people = People(db, user="alice", on_error=app._show_error)
    people.show_project(project_id)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyscript import document  # type: ignore[import-not-found]

import edgesql

from . import data, views
from .live import LiveView

__all__ = ["People"]


def _el(id_: str) -> Any:
    return document.getElementById(id_)


class People:
    """The signed-in person (sidebar) and the open project's members (project header)."""

    def __init__(
        self, db: edgesql.Connection, user: str | None, on_error: Callable[[BaseException], None]
    ) -> None:
        self.db = db
        self.user = user
        self.project: str | None = None
        self.live_members = LiveView(db, self._render, on_error)
        _el("signed-in").hidden = user is None
        _el("sync-token-form").hidden = user is not None  # one or the other: a user's token is asked for
        if user is not None:
            _el("signed-in-name").textContent = user
            _el("signed-in-avatar").textContent = views._initials(user)

    def show_project(self, project_id: str | None) -> None:
        """List who shares ``project_id`` (nothing without users)."""
        if project_id != self.project:
            _el("member-error").hidden = True
        self.project = project_id
        if self.user is None or project_id is None:
            _el("members").hidden = True
            self.live_members.stop()
            return
        self.live_members.show(data.MEMBERS_SQL, (project_id,))

    def _render(self, rs: edgesql.ResultSet) -> None:
        _el("members").hidden = False
        markup = views.member_items(rs.rows, self.user)
        if _el("member-list").innerHTML != markup:
            _el("member-list").innerHTML = markup

    async def share(self, name: str) -> None:
        """Add ``name`` to the open project (raises data.InputError or edgesql.Error)."""
        if self.project is not None:
            await data.add_member(self.db, self.project, name, added_by=self.user or "")

    async def unshare(self, name: str) -> None:
        if self.project is not None:
            await data.remove_member(self.db, self.project, name)
