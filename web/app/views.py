"""HTML for the demo app's views, built from query results.

Pure functions from rows to HTML text, so they run (and are tested) on
CPython too; ``ui.py`` puts the text into the page. Every value from the
database goes through :func:`esc`. Interactive elements carry
``data-action`` (what a click does) and ``data-key`` (a stable name, so
keyboard focus survives a re-render)::

    html = project_items(rows, current="p1")
    document.getElementById("projects").innerHTML = html
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from .cells import cells_text, key_text

__all__ = [
    "ago",
    "comment_items",
    "detail_tag_items",
    "esc",
    "project_items",
    "rejected_items",
    "search_items",
    "tag_cloud",
    "task_items",
]

PRIORITY = {0: "", 1: "Low", 2: "Medium", 3: "High"}

ICON_CHECK = (
    '<svg viewBox="0 0 16 16" aria-hidden="true"><path d="M3.5 8.5l3 3 6-7" fill="none" '
    'stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"/></svg>'
)
ICON_COMMENT = (
    '<svg viewBox="0 0 16 16" aria-hidden="true"><path d="M2.5 3.5h11v7h-6l-3 2.5v-2.5h-2z" '
    'fill="none" stroke="currentColor" stroke-width="1.4" stroke-linejoin="round"/></svg>'
)
ICON_NOTES = (
    '<svg viewBox="0 0 16 16" aria-hidden="true"><path d="M3 4h10M3 8h10M3 12h6" fill="none" '
    'stroke="currentColor" stroke-width="1.4" stroke-linecap="round"/></svg>'
)
ICON_CAL = (
    '<svg viewBox="0 0 16 16" aria-hidden="true"><rect x="2.5" y="3.5" width="11" height="10" rx="1.5" '
    'fill="none" stroke="currentColor" stroke-width="1.4"/><path d="M2.5 6.5h11M5.5 2v3M10.5 2v3" '
    'stroke="currentColor" stroke-width="1.4"/></svg>'
)

_COLOR = re.compile(r"#[0-9a-fA-F]{3,8}")


def esc(value: Any) -> str:
    """Text for HTML (element content or a quoted attribute)."""
    return html.escape("" if value is None else str(value), quote=True)


def _color(value: Any, default: str = "#8a8f98") -> str:
    # Colors come from the database, which any device may write: only #rgb[a] reaches a style.
    return value if isinstance(value, str) and _COLOR.fullmatch(value) else default


def _marked(text: Any) -> str:
    """Escape text that holds \\x02…\\x03 match marks (from FTS5), marks becoming <mark>."""
    return esc(text).replace("\x02", "<mark>").replace("\x03", "</mark>")


def _parse_time(iso: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def ago(iso: str | None, now: datetime | None = None) -> str:
    """``just now``, ``5 min ago``, ``3 h ago``, ``yesterday``, ``Nov 25`` (``never`` for None)."""
    if not iso:
        return "never"
    when = _parse_time(iso)
    if when is None:
        return str(iso)
    now = now or datetime.now(UTC)
    s = (now - when).total_seconds()
    if s < 10:
        return "just now"
    if s < 60:
        return f"{int(s)} s ago"
    if s < 3600:
        return f"{int(s // 60)} min ago"
    if s < 86400:
        return f"{int(s // 3600)} h ago"
    if s < 2 * 86400:
        return "yesterday"
    # (no "%-d": musl's strftime, which Pyodide uses, does not know it)
    day = f"{when:%b} {when.day}"
    return day if when.year == now.year else f"{day}, {when.year}"


def _due(due: str | None, today: str) -> str:
    if not due:
        return ""
    when = _parse_time(due)
    label = f"{when:%b} {when.day}" if when else due
    late = " late" if due < today else ""
    return f'<span class="meta due{late}" title="Due {esc(due)}">{ICON_CAL}{esc(label)}</span>'


def _tags(tags_json: Any) -> list[tuple[str, str, str]]:
    try:
        tags = json.loads(tags_json or "[]")
    except (TypeError, ValueError):
        return []
    return [(str(t[0]), str(t[1]), _color(t[2])) for t in tags if isinstance(t, list) and len(t) == 3]


def _tag_chip(tag_id: str, name: str, color: str, key: str) -> str:
    return (
        f'<button type="button" class="tag" style="--tag:{color}" data-action="tag" data-name="{esc(name)}" '
        f'data-key="{esc(key)}" title="Tasks tagged {esc(name)}">{esc(name)}</button>'
    )


def project_items(rows: Sequence[Any], current: str | None) -> str:
    """The sidebar's project list: name, open/done counts, a progress bar."""
    out = []
    for r in rows:
        total = r["open"] + r["done"]
        pct = round(100 * r["done"] / total) if total else 0
        here = ' aria-current="true"' if r["id"] == current else ""
        counts = f"{r['open']} open · {r['done']} done" if total else "no tasks"
        out.append(
            f'<li><button type="button" class="project" data-action="project" data-id="{esc(r["id"])}" '
            f'data-key="project:{esc(r["id"])}"{here}>'
            f'<span class="swatch" style="--c:{_color(r["color"])}"></span>'
            f'<span class="project-text"><span class="project-name">{esc(r["name"]) or "Untitled"}</span>'
            f'<span class="counts">{counts}</span></span>'
            f'<span class="open-badge" aria-hidden="true">{r["open"] or ""}</span>'
            f'<span class="bar" aria-hidden="true"><span style="width:{pct}%"></span></span>'
            f"</button></li>"
        )
    return "".join(out)


def task_items(rows: Sequence[Any], selected: str | None, today: str) -> str:
    """One project's tasks: open ones first, then a "Done" divider and the completed ones."""
    out = []
    shown_done_header = False
    for r in rows:
        if r["done"] and not shown_done_header:
            n = sum(1 for x in rows if x["done"])
            out.append(f'<li class="divider" role="presentation">Done · {n}</li>')
            shown_done_header = True
        out.append(_task_row(r, selected, today))
    return "".join(out)


def _task_row(r: Any, selected: str | None, today: str) -> str:
    tid = esc(r["id"])
    done = bool(r["done"])
    classes = "task" + (" done" if done else "") + (" selected" if r["id"] == selected else "")
    meta = []
    prio = PRIORITY.get(r["priority"], "")
    if prio and not done:
        meta.append(f'<span class="meta prio p{r["priority"]}">{prio}</span>')
    meta.append(_due(r["due"], today) if not done else "")
    for tag_id, name, color in _tags(r["tags"]):
        meta.append(_tag_chip(tag_id, name, color, f"tag:{r['id']}:{tag_id}"))
    if r["has_notes"]:
        meta.append(f'<span class="meta" title="Has notes">{ICON_NOTES}</span>')
    if r["comments"]:
        n = r["comments"]
        meta.append(
            f'<span class="meta comment-meta" title="{n} comment{"s" if n != 1 else ""}">{ICON_COMMENT}{n}</span>'
        )
    label = ("Reopen" if done else "Complete") + f" “{esc(r['title'])}”"
    return (
        f'<li class="{classes}" data-id="{tid}">'
        f'<button type="button" class="check" role="checkbox" aria-checked="{"true" if done else "false"}" '
        f'aria-label="{label}" data-action="toggle" data-id="{tid}" data-key="toggle:{tid}">{ICON_CHECK}</button>'
        f'<div class="task-body"><button type="button" class="task-title" data-action="open" data-id="{tid}" '
        f'data-key="open:{tid}">{esc(r["title"])}</button>'
        f'<div class="task-meta">{"".join(m for m in meta if m)}</div></div></li>'
    )


def search_items(rows: Sequence[Any]) -> str:
    """Search results across projects, matches marked."""
    out = []
    for r in rows:
        tid = esc(r["id"])
        tags = "".join(_tag_chip(g, n, c, f"stag:{r['id']}:{g}") for g, n, c in _tags(r["tags"]))
        notes = f'<p class="snippet">{_marked(r["notes_hl"])}</p>' if r["notes_hl"] else ""
        done = " done" if r["done"] else ""
        out.append(
            f'<li class="task result{done}" data-id="{tid}">'
            f'<span class="swatch" style="--c:{_color(r["color"])}"></span>'
            f'<div class="task-body"><button type="button" class="task-title" data-action="open-result" '
            f'data-id="{tid}" data-project="{esc(r["project_id"])}" data-key="result:{tid}">'
            f"{_marked(r['title_hl'])}</button>{notes}"
            f'<div class="task-meta"><span class="meta project-ref">{esc(r["project"] or "No project")}</span>'
            f"{tags}</div></div></li>"
        )
    return "".join(out)


def tag_cloud(rows: Sequence[Any]) -> str:
    """The sidebar's tags, each with how many open tasks carry it."""
    return "".join(
        f'<li><button type="button" class="tag" style="--tag:{_color(r["color"])}" data-action="tag" '
        f'data-name="{esc(r["name"])}" data-key="cloud:{esc(r["id"])}" '
        f'title="{r["open"]} open of {r["total"]} tasks">{esc(r["name"])}'
        f'<span class="tag-count">{r["open"]}</span></button></li>'
        for r in rows
        if r["total"]
    )


def detail_tag_items(tags_json: Any) -> str:
    """The tags of the open task, each removable."""
    return "".join(
        f'<li class="tag removable" style="--tag:{color}">{esc(name)}'
        f'<button type="button" class="remove" data-action="untag" data-id="{esc(tag_id)}" '
        f'data-key="untag:{esc(tag_id)}" aria-label="Remove tag {esc(name)}">×</button></li>'
        for tag_id, name, color in _tags(tags_json)
    )


def _initials(name: str) -> str:
    words = [w for w in re.split(r"[\s_-]+", name) if w]
    return "".join(w[0] for w in words[:2]).upper() or "?"


def comment_items(rows: Sequence[Any], now: datetime | None = None) -> str:
    """A task's comments, oldest first."""
    out = []
    for r in rows:
        body = "<br>".join(esc(line) for line in str(r["body"]).split("\n"))
        out.append(
            f'<li class="comment" data-id="{esc(r["id"])}"><span class="avatar" aria-hidden="true">'
            f'{esc(_initials(r["author"]))}</span><div class="comment-main">'
            f'<div class="comment-head"><strong>{esc(r["author"])}</strong>'
            f'<time datetime="{esc(r["created_at"])}" title="{esc(r["created_at"])}">{ago(r["created_at"], now)}</time>'
            f'<button type="button" class="ghost remove" data-action="delete-comment" data-id="{esc(r["id"])}" '
            f'data-key="dc:{esc(r["id"])}" aria-label="Delete comment">×</button></div>'
            f'<p class="comment-body">{body}</p></div></li>'
        )
    return "".join(out)


_CODES = {
    "constraint": "Breaks a rule on the server",
    "unknown_table": "Table unknown to the server",
    "unknown_column": "Column unknown to the server",
    "too_large": "Too large",
    "future_stamp": "Clock too far ahead",
    "malformed": "Malformed change",
    "forbidden": "Not yours to change",
    "signed_out": "Written by someone who signed out",
}

#: What a table's row is called in a notice.
_THING = {
    "projects": "project",
    "tasks": "task",
    "comments": "comment",
    "tags": "tag",
    "task_tags": "tag on a task",
    "members": "member",
}
#: The column that names a row, per table.
_LABEL_COLUMN = {
    "projects": "name",
    "tasks": "title",
    "tags": "name",
    "comments": "body",
    "members": "user_id",
}


def conflict_text(c: Any, label: str | None) -> str:
    """One of this device's edits that lost (edgesql.sync.conflicts.Conflict), in words:
    what it was, what won, and who. ``label`` names the row as it is now (None: gone)."""
    thing = _THING.get(c.tbl, f"row of {c.tbl}")
    label_col = _LABEL_COLUMN.get(c.tbl, "")
    had = (c.row or {}).get(label_col)
    if c.kind == "overwritten" and c.col == label_col:
        label = str(c.mine)  # the name it lost is how the person knows it
    name = label or (str(had) if had else None)
    what = f"{thing} “{_short(name)}”" if name else f"a {thing}"
    if c.kind == "overwritten":
        col = str(c.col).replace("_", " ")
        return (
            f"Your edit to {what} was overwritten by a later change on another device: "
            f"its {col} is now “{_short(c.theirs)}” (you had “{_short(c.mine)}”)."
        )
    if c.kind == "deleted":
        return f"Your edit to {what} was lost: the {thing} was deleted on another device."
    reason = str(c.reason or "the server refused it")
    return f"Your change to {what} was not saved: {reason}."


def _short(value: Any, limit: int = 60) -> str:
    text = " ".join(str(value).split()) if value is not None else "nothing"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def notice_items(items: Sequence[tuple[int, str]]) -> str:
    """Conflict notices, each dismissible: (conflict id, text)."""
    out = [
        f'<div class="notice" data-id="{cid}"><span class="notice-text">{esc(text)}</span>'
        f'<button type="button" class="ghost small" data-action="dismiss-conflict" data-id="{cid}" '
        f'data-key="dismiss:{cid}" aria-label="Dismiss this notice">Dismiss</button></div>'
        for cid, text in items
    ]
    return "".join(out)


def member_items(rows: Sequence[Any], me: str | None) -> str:
    """Who shares the open project: the owner, then members (removable by anyone who may)."""
    out = []
    for r in rows:
        user = str(r["user_id"])
        you = " (you)" if user == me else ""
        if r["is_owner"]:
            out.append(f'<li class="member owner" title="Owner">{esc(user)}{you} · owner</li>')
        else:
            out.append(
                f'<li class="member">{esc(user)}{you}<button type="button" class="remove" '
                f'data-action="remove-member" data-id="{esc(user)}" data-key="rm:{esc(user)}" '
                f'aria-label="Stop sharing with {esc(user)}">×</button></li>'
            )
    return "".join(out)


def rejected_items(rows: Sequence[Any], now: datetime | None = None) -> str:
    """Writes the primary refused: what, why, and the values that were not saved."""
    out = []
    for r in rows:
        cells = "".join(f"<dt>{esc(col)}</dt><dd>{esc(val)}</dd>" for col, val in cells_text(r["cells"]))
        label = _CODES.get(r["code"], r["code"])
        out.append(
            f'<li class="rejected-item"><div class="rejected-head">'
            f'<span class="badge bad" title="{esc(r["code"])}">{esc(label)}</span>'
            f"<strong>{esc(r['tbl'])}</strong> <code>{esc(key_text(r['pk']))}</code>"
            f'<span class="spacer"></span><time datetime="{esc(r["at"])}" title="{esc(r["at"])}">'
            f"{ago(r['at'], now)}</time></div>"
            f'<p class="reason">{esc(r["reason"])}</p>'
            f'<dl class="cells">{cells}</dl></li>'
        )
    return "".join(out)
