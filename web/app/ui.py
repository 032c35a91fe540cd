"""The demo app's page: live views into the DOM, a person's input into writes.

State is small — the selected project, the open task, the search text and
which view is shown — and every list on the page is a :class:`LiveView`, so
a write anywhere (this page, the console, another tab, another device
through sync) redraws what it affects and nothing else. Selecting something
only changes a view's parameters. The sidebar's Token field keeps the sync
token on the device (``syncbar.save_token``) and reloads to use it; with
users, the sidebar says who is signed in and the project header who shares
the project (``people.py``). Edits of this device that lost to others are
shown above the content until dismissed (``notices.py``).

One listener per event type on ``document`` dispatches on the target's
``data-action`` (clicks) or the form's id (submits). Writes go through
``data.py``; an :class:`edgesql.Error` or :class:`data.InputError` is shown
next to where it happened, in words::

    app = App(db, search, author="Ada", user=None)   # user: the signed-in name, with users
    await app.start()        # returns once the first projects are on screen
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import js  # type: ignore[import-not-found]
from pyodide.ffi import create_proxy  # type: ignore[import-not-found]
from pyscript import document  # type: ignore[import-not-found]

import edgesql

from . import data, views
from .data import InputError, Search
from .live import LiveView, on_task_error, spawn
from .notices import ConflictNotices
from .people import People
from .seed import add_sample_data
from .signin import forget_user
from .syncbar import SyncIndicator, save_token, saved_token

__all__ = ["App"]

SEARCH_DEBOUNCE_S = 0.12
CONFIRM_S = 4.0  # how long a "Delete? Click again" button stays armed
TOAST_S = 4.0
STORE_KEY = "edgesql-demo:project"  # the selected project, per browser


def el(id_: str) -> Any:
    """The element with this id."""
    return document.getElementById(id_)


_drawn: dict[str, str] = {}  # element id -> the markup last put there


def set_html(node: Any, markup: str) -> None:
    """Replace ``node``'s content, keeping keyboard focus on the element with the same ``data-key``.

    Unchanged markup is left alone, so a live query that re-ran without a
    visible change costs nothing on screen (and keeps hover and selection).
    """
    if _drawn.get(node.id) == markup:
        return
    _drawn[node.id] = markup
    active = document.activeElement
    key = attr(active, "key") if active and node.contains(active) else None
    node.innerHTML = markup
    if key:
        again = node.querySelector(f'[data-key="{js.CSS.escape(key)}"]')
        if again:
            again.focus()


def attr(node: Any, name: str) -> str | None:
    """``data-<name>`` of ``node``, or None (reading a missing ``dataset`` key raises in Pyodide)."""
    if not node.hasAttribute(f"data-{name}"):  # (getAttribute's null arrives as jsnull, not None)
        return None
    return str(node.getAttribute(f"data-{name}"))


def set_value(node: Any, value: str) -> None:
    """Set a field's value, unless the person is typing in it."""
    if document.activeElement != node and node.value != value:  # (a JsProxy compares with ===)
        node.value = value
    node.dataset.saved = value


def _today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


def _is_typing(target: Any) -> bool:
    if not target:
        return False
    tag = str(getattr(target, "tagName", "") or "").lower()
    return tag in ("input", "textarea", "select") or bool(getattr(target, "isContentEditable", False))


class App:
    """The page: projects, tasks, the open task, search, rejected writes, sync."""

    def __init__(self, db: edgesql.Connection, search: Search, author: str, user: str | None = None) -> None:
        self.db = db
        self.search = search
        self.author = author
        self.user = user
        self.project: str | None = js.localStorage.getItem(STORE_KEY) or None
        self.task: str | None = None
        self.query = ""
        self.view = "project"  # or "search", "rejected"
        self.project_rows: list[Any] = []
        self.task_row: Any = None
        self.rejected: int | None = None  # writes in _edgesql_rejected, once the status said
        self._search_gen = 0
        self._first_projects = asyncio.Event()
        self._proxies: list[Any] = []
        self._toast_gen = 0
        self._pending_focus: str | None = None
        show_error = self._view_error
        self.live_projects = LiveView(db, self._render_projects, show_error)
        self.live_tags = LiveView(db, self._render_tags, show_error)
        self.live_tasks = LiveView(db, self._render_tasks, show_error)
        self.live_task = LiveView(db, self._render_task, show_error)
        self.live_comments = LiveView(db, self._render_comments, show_error)
        self.live_results = LiveView(db, self._render_results, show_error)
        self.sync = SyncIndicator(db, on_rejected=self.rejected_changed, notify=self.toast)
        self.people = People(db, user, lambda e: self._show_error("member-error", e))
        self.notices = ConflictNotices(db)

    # -- start ----------------------------------------------------------------------

    async def start(self) -> None:
        """Bind events, start every view; returns once the project list is on screen."""
        on_task_error(lambda e: self.toast(f"Something went wrong: {e}", error=True))
        self._listen(document, "click", self._on_click)
        self._listen(document, "submit", self._on_submit)
        self._listen(document, "keydown", self._on_keydown)
        self._listen(document, "change", self._on_change)
        self._listen(el("search"), "input", self._on_search_input)
        self.live_projects.show(data.PROJECTS_SQL)
        self.live_tags.show(data.TAGS_SQL)
        el("search-mode").textContent = "full-text search (FTS5)" if self.search.fts else "simple search"
        el("sync-token").placeholder = "saved on this device" if saved_token() else "none"
        spawn(self.sync.run())
        spawn(self.notices.run())
        await self._first_projects.wait()

    def _listen(self, target: Any, event: str, handler: Callable[[Any], Any]) -> None:
        proxy = create_proxy(handler)
        self._proxies.append(proxy)  # proxies live as long as the page
        target.addEventListener(event, proxy)

    # -- feedback ---------------------------------------------------------------------

    def toast(self, text: str, error: bool = False) -> None:
        """A short message at the bottom of the screen."""
        box = el("toast")
        box.textContent = text
        box.className = "toast bad" if error else "toast"
        box.hidden = False
        self._toast_gen += 1
        gen = self._toast_gen

        async def hide() -> None:
            await asyncio.sleep(TOAST_S + len(text) / 40)
            if gen == self._toast_gen:
                box.hidden = True

        spawn(hide())

    def _view_error(self, e: BaseException) -> None:
        self.toast(f"A view could not be updated: {e}", error=True)

    def _show_error(self, where: str, e: BaseException) -> None:
        box = el(where)
        if isinstance(e, InputError):
            box.textContent = str(e)
        elif isinstance(e, edgesql.Error):
            name = f" ({e.sqlite_errorname})" if getattr(e, "sqlite_errorname", None) else ""
            box.textContent = f"Not saved: {e}{name}"
        else:
            box.textContent = f"Not saved: {type(e).__name__}: {e}"
        box.hidden = False

    async def _write(self, where: str, action: Awaitable[Any]) -> bool:
        """Run a write; show what went wrong next to ``where``. True when it was saved."""
        try:
            await action
        except (InputError, edgesql.Error) as e:
            self._show_error(where, e)
            return False
        el(where).hidden = True
        return True

    # -- views ----------------------------------------------------------------------

    def _show_view(self) -> None:
        view = self.view
        if view == "project" and not self.project_rows:
            view = "welcome"
        for name in ("welcome", "project", "search", "rejected"):
            el(f"view-{name}").hidden = name != view
        el("rejected-link").setAttribute("aria-current", "true" if view == "rejected" else "false")
        document.body.dataset.view = view

    def _render_projects(self, rs: edgesql.ResultSet) -> None:
        self.project_rows = list(rs.rows)
        ids = [r["id"] for r in self.project_rows]
        if self.project not in ids:
            self.select_project(ids[0] if ids else None, focus=False)
        else:
            self._draw_projects()
        self._first_projects.set()

    def _draw_projects(self) -> None:
        set_html(el("projects"), views.project_items(self.project_rows, self.project))
        row = next((r for r in self.project_rows if r["id"] == self.project), None)
        if row is not None:
            total = row["open"] + row["done"]
            set_value(el("project-name"), row["name"])
            el("project-swatch").style.setProperty("--c", views._color(row["color"]))
            stats = f"{row['open']} open · {row['done']} done" if total else "No tasks yet"
            if total:
                stats += f" · {round(100 * row['done'] / total)}% complete"
            el("project-stats").textContent = stats
            el("project-bar").style.width = f"{round(100 * row['done'] / total) if total else 0}%"
        self._show_view()
        if self._pending_focus and row is not None:
            el(self._pending_focus).focus()
            self._pending_focus = None

    def select_project(self, project_id: str | None, focus: bool = True) -> None:
        """Show a project's tasks (``None``: no project left)."""
        changed = project_id != self.project
        self.project = project_id
        self.people.show_project(project_id)  # (a no-op when it already shows this one)
        if project_id:
            js.localStorage.setItem(STORE_KEY, project_id)
            self.live_tasks.show(data.TASKS_SQL, (project_id,))
        else:
            js.localStorage.removeItem(STORE_KEY)
            self.live_tasks.stop()
            set_html(el("tasks"), "")
        if changed:
            self.close_task(refocus=False)
            el("task-error").hidden = True
            self._disarm(el("delete-project"))
        if self.view != "project":
            self.view = "project"
            self._clear_search()
        if focus and project_id:
            # A new project is not on screen until the projects query answers: focus it then.
            self._pending_focus = "new-task"
        self._draw_projects()

    def _render_tasks(self, rs: edgesql.ResultSet) -> None:
        if rs.rows:
            set_html(el("tasks"), views.task_items(rs.rows, self.task, _today()))
        else:
            set_html(
                el("tasks"),
                '<li class="empty"><strong>No tasks yet — add one above.</strong>'
                "<span>Press Enter to add it; tags and comments go in the task's panel.</span></li>",
            )

    def _render_tags(self, rs: edgesql.ResultSet) -> None:
        rows = list(rs.rows)
        set_html(el("tags"), views.tag_cloud(rows))
        el("tags-section").hidden = not any(r["total"] for r in rows)
        names = sorted({str(r["name"]) for r in rows}, key=str.lower)
        el("tag-names").innerHTML = "".join(f'<option value="{views.esc(n)}"></option>' for n in names)

    # -- the open task ------------------------------------------------------------------

    def open_task(self, task_id: str) -> None:
        """Open a task's panel: its fields, tags and comments, all live."""
        if task_id != self.task:
            el("detail-error").hidden = True
            self._disarm(el("delete-task"))
            el("comment-input").value = ""
            el("tag-input").value = ""
        self.task = task_id
        self.live_task.show(data.TASK_SQL, (task_id,))
        self.live_comments.show(data.COMMENTS_SQL, (task_id,))
        for node in document.querySelectorAll(".task.selected"):
            node.classList.remove("selected")
        row = document.querySelector(f'#tasks .task[data-id="{js.CSS.escape(task_id)}"]')
        if row:
            row.classList.add("selected")
        el("detail").hidden = False
        document.body.classList.add("detail-open")

    def close_task(self, refocus: bool = True) -> None:
        """Close the task panel; focus goes back to the task in the list."""
        task_id, self.task = self.task, None
        self.task_row = None
        self.live_task.stop()
        self.live_comments.stop()
        el("detail").hidden = True
        document.body.classList.remove("detail-open")
        for node in document.querySelectorAll(".task.selected"):
            node.classList.remove("selected")
        if refocus and task_id:
            again = document.querySelector(f'[data-key="open:{js.CSS.escape(task_id)}"]')
            if again:
                again.focus()

    def _render_task(self, rs: edgesql.ResultSet) -> None:
        if not rs.rows:
            if self.task is not None:
                self.close_task()
                self.toast("That task was deleted.")
            return
        r = rs.rows[0]
        self.task_row = r
        set_value(el("detail-title"), r["title"])
        set_value(el("detail-notes"), r["notes"])
        set_value(el("detail-priority"), str(r["priority"]))
        set_value(el("detail-due"), r["due"] or "")
        done = el("detail-done")
        done.setAttribute("aria-checked", "true" if r["done"] else "false")
        done.setAttribute("aria-label", "Reopen task" if r["done"] else "Complete task")
        el("detail").classList.toggle("done", bool(r["done"]))
        set_html(el("detail-tags"), views.detail_tag_items(r["tags"]))
        el("detail-project").textContent = r["project"] or "No project"
        meta = f"Created {views.ago(r['created_at'])}"
        if r["updated_at"] != r["created_at"]:
            meta += f" · edited {views.ago(r['updated_at'])}"
        el("detail-meta").textContent = meta

    def _render_comments(self, rs: edgesql.ResultSet) -> None:
        n = len(rs.rows)
        el("comment-count").textContent = str(n) if n else ""
        if rs.rows:
            set_html(el("comments"), views.comment_items(rs.rows))
        else:
            set_html(el("comments"), '<li class="empty-line">No comments yet.</li>')

    # -- search -----------------------------------------------------------------------

    def _on_search_input(self, _event: Any) -> None:
        self._search_gen += 1
        gen = self._search_gen

        async def later() -> None:
            await asyncio.sleep(SEARCH_DEBOUNCE_S)
            if gen == self._search_gen:
                self.apply_search(el("search").value)

        spawn(later())

    def apply_search(self, text: str) -> None:
        """Show the tasks matching ``text`` (``#tag`` for a tag); empty text goes back to the project."""
        self.query = text
        if not text.strip():
            self.live_results.stop()
            if self.view == "search":
                self.view = "project"
            self._show_view()
            return
        self.view = "search"
        q = self.search.query(text)
        if text.strip().startswith("#"):
            el("search-title").textContent = f"Tasks tagged {text.strip()}"
        else:
            el("search-title").textContent = f"Results for “{text.strip()}”"
        if q is None:
            self.live_results.stop()
            set_html(el("search-results"), '<li class="empty"><strong>Type a word to search.</strong></li>')
        else:
            self.live_results.show(*q)
        self._show_view()

    def _render_results(self, rs: edgesql.ResultSet) -> None:
        if rs.rows:
            set_html(el("search-results"), views.search_items(rs.rows))
            n = len(rs.rows)
            el("search-count").textContent = f"{n} task{'s' if n != 1 else ''}"
        else:
            el("search-count").textContent = ""
            set_html(
                el("search-results"),
                f'<li class="empty"><strong>No tasks match “{views.esc(self.query.strip())}”.</strong>'
                "<span>Search looks at titles and notes; #tag lists a tag's tasks.</span></li>",
            )

    def _clear_search(self) -> None:
        el("search").value = ""
        self.query = ""
        self.live_results.stop()

    def search_tag(self, name: str) -> None:
        """List the tasks carrying tag ``name``, across projects."""
        el("search").value = f"#{name}"
        self.apply_search(f"#{name}")

    # -- rejected writes ------------------------------------------------------------------

    def rejected_changed(self, n: int) -> None:
        """The sync status says ``n`` writes are in ``_edgesql_rejected`` now."""
        before, self.rejected = self.rejected, n
        badge = el("rejected-count")
        badge.textContent = str(n)
        badge.className = "count bad" if n else "count"
        if before is not None and n > before:
            self.toast("The server refused a change — see Rejected changes.", error=True)
        if self.view == "rejected":
            spawn(self._load_rejected())

    def show_rejected(self) -> None:
        """Show the writes the primary refused."""
        self.view = "rejected"
        self._show_view()
        js.window.scrollTo(0, 0)
        spawn(self._load_rejected())

    async def _load_rejected(self) -> None:
        rs = await self.db.execute(data.REJECTED_SQL)
        set_html(el("rejected-list"), views.rejected_items(rs.rows))
        el("rejected-empty").hidden = bool(rs.rows)

    # -- events -----------------------------------------------------------------------

    def _on_click(self, event: Any) -> None:
        target = event.target.closest("[data-action]")
        if not target:
            return
        action = attr(target, "action")
        item = attr(target, "id")
        if action == "project":
            self.select_project(item)
        elif action == "toggle":
            done = target.getAttribute("aria-checked") != "true"
            spawn(self._write("task-error", data.set_done(self.db, item, done)))
        elif action == "open":
            self.open_task(item)
            el("detail").focus()
        elif action == "open-result":
            project = attr(target, "project")
            if project and any(r["id"] == project for r in self.project_rows):
                self.select_project(project, focus=False)
            self.open_task(item)
            el("detail").focus()
        elif action == "tag":
            self.search_tag(attr(target, "name"))
        elif action == "untag" and self.task:
            spawn(self._write("detail-error", data.remove_tag(self.db, self.task, item)))
        elif action == "delete-comment":
            spawn(self._write("detail-error", data.delete_comment(self.db, item)))
        elif action == "close-task":
            self.close_task()
        elif action == "toggle-open-task" and self.task_row is not None:
            done = not self.task_row["done"]
            spawn(self._write("detail-error", data.set_done(self.db, self.task, done)))
        elif action == "delete-task" and self.task and self._confirmed(target):
            spawn(self._write("detail-error", data.delete_task(self.db, self.task)))
        elif action == "delete-project" and self.project and self._confirmed(target):
            spawn(self._write("task-error", data.delete_project(self.db, self.project)))
        elif action == "show-rejected":
            self.show_rejected()
        elif action == "clear-search":
            self._clear_search()
            self.apply_search("")
            el("search").focus()
        elif action == "sync-now":
            spawn(self.sync.sync_now())
        elif action == "seed":
            spawn(self._seed(target))
        elif action == "dismiss-conflict" and item:
            spawn(self.notices.dismiss(int(item)))
        elif action == "remove-member" and item:
            spawn(self._write("member-error", self.people.unshare(item)))
        elif action == "switch-user" and self._confirmed(target, "Click again: this removes your tasks here"):
            forget_user()  # the next start asks who is using the app
            js.location.reload()

    async def _seed(self, button: Any) -> None:
        button.disabled = True
        try:
            if await self._write("seed-error", add_sample_data(self.db, owner=self.user or "")):
                self.toast("Sample projects added.")
        finally:
            button.disabled = False

    def _confirmed(self, button: Any, question: str = "Click again to delete") -> bool:
        """Two-step action: the first click arms the button, the second (within seconds) confirms."""
        if attr(button, "armed") == "true":
            self._disarm(button)
            return True
        button.dataset.armed = "true"
        button.dataset.label = button.textContent
        button.textContent = question

        async def disarm_later() -> None:
            await asyncio.sleep(CONFIRM_S)
            self._disarm(button)

        spawn(disarm_later())
        return False

    def _disarm(self, button: Any) -> None:
        if attr(button, "armed") == "true":
            button.dataset.armed = "false"
            button.textContent = attr(button, "label")

    def _on_submit(self, event: Any) -> None:
        form = event.target
        event.preventDefault()
        form_id = form.id
        adders = {
            "new-project-form": ("new-project", self._add_project),
            "new-task-form": ("new-task", self._add_task),
            "tag-form": ("tag-input", self._add_tag),
            "comment-form": ("comment-input", self._add_comment),
            "member-form": ("member-input", self._share),
        }
        if form_id in adders:
            box_id, add = adders[form_id]
            spawn(add(*self._take(box_id)))  # taken now, before the next key press
        elif form_id == "sync-token-form":
            self._change_token()

    def _change_token(self) -> None:
        """Keep the token typed in the sidebar, and start again with it (the open database
        has the old one: a reload opens it anew, the quickest way to a clean start)."""
        save_token(str(self._take("sync-token")[1]))
        js.location.reload()

    def _take(self, box_id: str) -> tuple[Any, str]:
        """Empty an input box at once, returning what it held.

        A person may type the next title while this one is being saved; the
        box is cleared before the write, not after, so nothing they type is lost.
        """
        box = el(box_id)
        text = str(box.value)
        box.value = ""
        return box, text

    @staticmethod
    def _give_back(box: Any, text: str) -> None:
        # The write failed: put the text back for correcting, unless they typed on.
        if not box.value:
            box.value = text

    async def _add_project(self, box: Any, name: str) -> None:
        try:
            pid = await data.add_project(self.db, name, owner=self.user or "")
        except (InputError, edgesql.Error) as e:
            self._give_back(box, name)
            self._show_error("project-error", e)
            return
        el("project-error").hidden = True
        self.select_project(pid)

    async def _share(self, box: Any, name: str) -> None:
        if not await self._write("member-error", self.people.share(name)):
            self._give_back(box, name)

    async def _add_task(self, box: Any, title: str) -> None:
        if self.project and not await self._write("task-error", data.add_task(self.db, self.project, title)):
            self._give_back(box, title)

    async def _add_tag(self, box: Any, name: str) -> None:
        if self.task and not await self._write("detail-error", data.add_tag(self.db, self.task, name)):
            self._give_back(box, name)

    async def _add_comment(self, box: Any, body: str) -> None:
        if self.task and not await self._write(
            "detail-error", data.add_comment(self.db, self.task, self.author, body)
        ):
            self._give_back(box, body)

    def _on_change(self, event: Any) -> None:
        target = event.target
        field = attr(target, "field")
        if not field:
            return
        if field == "project-name":
            if self.project and target.value != attr(target, "saved"):
                spawn(self._write("task-error", data.rename_project(self.db, self.project, target.value)))
            return
        if not self.task or target.value == attr(target, "saved"):
            return
        value: Any = target.value
        if field == "priority":
            value = int(value)
        spawn(self._write("detail-error", data.update_task(self.db, self.task, **{field: value})))

    def _on_keydown(self, event: Any) -> None:
        key = event.key
        target = event.target
        typing = _is_typing(target)
        if key == "Escape":
            if typing and attr(target, "saved") is not None and target.value != attr(target, "saved"):
                target.value = attr(target, "saved")  # cancel the edit
                target.blur()
            elif typing and target.id == "search" and target.value:
                self._clear_search()
                self.apply_search("")
            elif self.task:
                self.close_task()
            elif typing:
                target.blur()
            return
        if key == "Enter" and typing:
            if target.id in ("detail-title", "project-name"):
                event.preventDefault()
                target.blur()  # saves through the change event
            elif target.id == "comment-input" and not event.shiftKey:
                event.preventDefault()
                spawn(self._add_comment(*self._take("comment-input")))
            elif target.id == "detail-notes" and (event.ctrlKey or event.metaKey):
                event.preventDefault()
                target.blur()
            return
        if typing or event.ctrlKey or event.metaKey or event.altKey:
            return
        if key == "/":
            event.preventDefault()
            el("search").focus()
        elif key == "n" and self.view == "project" and self.project:
            event.preventDefault()
            el("new-task").focus()
        elif key in ("ArrowDown", "ArrowUp") and target.closest(".task-list"):
            event.preventDefault()
            self._move_focus(target, 1 if key == "ArrowDown" else -1)

    def _move_focus(self, target: Any, step: int) -> None:
        items = list(target.closest(".task-list").querySelectorAll(".task-title"))
        row = target.closest(".task")
        current = row.querySelector(".task-title") if row else None
        for i, node in enumerate(items):
            if node == current and 0 <= i + step < len(items):
                items[i + step].focus()
                return
