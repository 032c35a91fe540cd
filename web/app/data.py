"""The demo app's data: the SQL behind every view, and every write.

Projects hold tasks; a project's tags belong to many of its tasks through
``task_tags`` (a composite key); tasks have comments; projects have an owner
and members (who may see and change them, with the server's access rules). The
views are joins and aggregates — open/done counts per project, each task's tags
and comment count, tasks by tag across projects — the part a key-value store
would leave to app code.

The references are FOREIGN KEYs with ON DELETE CASCADE (schema/0002): deleting
a project or a task is one statement, here and on every other device.

Everything here takes an open :class:`edgesql.Connection`, so it runs the
same on CPython (``tests/test_app_data.py``) as in the browser::

    db = await edgesql.connect("app.db", sync_url="/sync")
    search = await setup_search(db)          # the local FTS5 index (or LIKE)
    pid = await add_project(db, "Launch")
    tid = await add_task(db, pid, "Write the announcement")
    await add_tag(db, tid, "writing")
    rs = await db.execute(TASKS_SQL, (pid,))

New keys are TEXT UUIDs made on the device, so any device can create rows
offline. Writes that belong together go in one ``batch`` (one round trip,
all or nothing). Tables named ``local_*`` stay on this device: the search
index is rebuilt from ``tasks`` by triggers, never synced.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

import edgesql

__all__ = [
    "COMMENTS_SQL",
    "MEMBERS_SQL",
    "PROJECTS_SQL",
    "REJECTED_SQL",
    "TAGS_SQL",
    "TASKS_SQL",
    "TASK_SQL",
    "InputError",
    "Search",
    "add_comment",
    "add_member",
    "add_project",
    "add_tag",
    "add_task",
    "delete_comment",
    "delete_project",
    "delete_task",
    "remove_member",
    "remove_tag",
    "rename_project",
    "set_done",
    "setup_search",
    "update_task",
]

PROJECT_COLORS = ("#2f6fde", "#1a7f37", "#bf3989", "#9a6700", "#8250df", "#0a7ea4", "#cf222e")
TAG_COLORS = ("#8250df", "#0a7ea4", "#bf3989", "#1a7f37", "#9a6700", "#cf222e", "#2f6fde")

MAX_NAME = 80  # project and tag names, task titles: a line, not a document
MAX_TAG = 32
MAX_TEXT = 10_000  # notes and comments
_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"


class InputError(ValueError):
    """What a person typed cannot be saved as it is; the message says why."""


# -- the views (each one a live query in the app) ---------------------------------

PROJECTS_SQL = """
SELECT p.id, p.name, p.color,
       count(t.id) FILTER (WHERE t.done = 0) AS open,
       count(t.id) FILTER (WHERE t.done = 1) AS done,
       p.owner, (SELECT count(*) FROM members m WHERE m.project_id = p.id) AS members
FROM projects p LEFT JOIN tasks t ON t.project_id = p.id
WHERE p.archived = 0
GROUP BY p.id
ORDER BY p.created_at, p.rowid  -- rowid: this device's insertion order, for rows made in the same millisecond
"""

# A task's tags as one JSON array, sorted by name: one row per task, however many tags.
_TAGS_OF_TASK = """
(SELECT json_group_array(json_array(x.id, x.name, x.color))
   FROM (SELECT g.id, g.name, g.color FROM task_tags tt JOIN tags g ON g.id = tt.tag_id
         WHERE tt.task_id = t.id ORDER BY g.name COLLATE NOCASE, g.id) x)
"""

TASKS_SQL = f"""
SELECT t.id, t.title, t.done, t.priority, t.due, t.notes != '' AS has_notes,
       {_TAGS_OF_TASK} AS tags,
       (SELECT count(*) FROM comments c WHERE c.task_id = t.id) AS comments
FROM tasks t
WHERE t.project_id = ?
ORDER BY t.done, CASE WHEN t.done THEN t.updated_at END DESC, t.priority DESC, t.created_at, t.rowid
"""

TASK_SQL = f"""
SELECT t.id, t.project_id, t.title, t.notes, t.done, t.priority, t.due, t.created_at, t.updated_at,
       p.name AS project, {_TAGS_OF_TASK} AS tags
FROM tasks t LEFT JOIN projects p ON p.id = t.project_id
WHERE t.id = ?
"""

COMMENTS_SQL = """
SELECT id, author, body, created_at FROM comments WHERE task_id = ? ORDER BY created_at, rowid
"""

# Tags are a project's own; the cloud shows each name once, counted across projects
# (names compare case-insensitively: the column is COLLATE NOCASE). Name and colour are
# those of the tag with the least key (SQLite takes bare columns from the min() row).
TAGS_SQL = """
SELECT min(g.id) AS id, g.name, g.color,
       count(t.id) FILTER (WHERE t.done = 0) AS open,
       count(t.id) AS total
FROM tags g
LEFT JOIN task_tags tt ON tt.tag_id = g.id
LEFT JOIN tasks t ON t.id = tt.task_id
GROUP BY g.name
ORDER BY g.name, min(g.id)
"""

# Who shares a project: its owner first, then its members by name.
MEMBERS_SQL = """
SELECT owner AS user_id, 1 AS is_owner FROM projects WHERE id = ?1 AND owner != ''
UNION ALL
SELECT user_id, 0 FROM members WHERE project_id = ?1 AND user_id != (SELECT owner FROM projects WHERE id = ?1)
ORDER BY is_owner DESC, user_id
"""

# _edgesql_* tables are sync's own: live queries do not see their changes
# (the worker's authorizer skips them), so the app re-reads this one when the
# sync status says the number of rejected writes changed.
REJECTED_SQL = """
SELECT seq, tbl, pk, cells, code, reason, at FROM _edgesql_rejected ORDER BY seq DESC LIMIT 200
"""

# Tasks carrying a tag, across projects: the many-to-many join in one query.
_BY_TAG_SQL = f"""
SELECT t.id, t.title, t.done, t.project_id, p.name AS project, p.color AS color,
       t.title AS title_hl, '' AS notes_hl, {_TAGS_OF_TASK} AS tags
FROM tags g
JOIN task_tags tt ON tt.tag_id = g.id
JOIN tasks t ON t.id = tt.task_id
LEFT JOIN projects p ON p.id = t.project_id
WHERE g.name = ? COLLATE NOCASE
GROUP BY t.id
ORDER BY t.done, p.name COLLATE NOCASE, t.created_at
LIMIT 100
"""

# -- search: FTS5 where SQLite has it, LIKE where it does not ------------------------------

SEARCH_INDEX_VERSION = 1  # bump when the index below changes: it is rebuilt at start

# The index is an ordinary FTS5 table keyed by the task's rowid. Rowids are
# this device's own, which is fine for a local_* table. The insert trigger
# first deletes its rowid, because INSERT OR REPLACE (used by sync when it
# rebuilds a rejected row) removes the old row without firing delete triggers;
# the stale entry it leaves never matches a task, and the count check at start
# rebuilds the index.
_SEARCH_SETUP = [
    "CREATE TABLE IF NOT EXISTS local_app_meta (key TEXT PRIMARY KEY, value TEXT)",
    "DROP TRIGGER IF EXISTS local_tasks_fts_ai",
    "DROP TRIGGER IF EXISTS local_tasks_fts_au",
    "DROP TRIGGER IF EXISTS local_tasks_fts_ad",
    "DROP TABLE IF EXISTS local_tasks_fts",
    "CREATE VIRTUAL TABLE local_tasks_fts USING fts5(title, notes, tokenize = 'unicode61 remove_diacritics 2')",
    """CREATE TRIGGER local_tasks_fts_ai AFTER INSERT ON tasks BEGIN
         DELETE FROM local_tasks_fts WHERE rowid = new.rowid;
         INSERT INTO local_tasks_fts (rowid, title, notes) VALUES (new.rowid, new.title, new.notes);
       END""",
    """CREATE TRIGGER local_tasks_fts_au AFTER UPDATE OF title, notes ON tasks BEGIN
         DELETE FROM local_tasks_fts WHERE rowid = old.rowid;
         INSERT INTO local_tasks_fts (rowid, title, notes) VALUES (new.rowid, new.title, new.notes);
       END""",
    """CREATE TRIGGER local_tasks_fts_ad AFTER DELETE ON tasks BEGIN
         DELETE FROM local_tasks_fts WHERE rowid = old.rowid;
       END""",
    "INSERT INTO local_tasks_fts (rowid, title, notes) SELECT rowid, title, notes FROM tasks",
    f"INSERT OR REPLACE INTO local_app_meta (key, value) VALUES ('search_index', '{SEARCH_INDEX_VERSION}')",
]

_SEARCH_REBUILD = [
    "DELETE FROM local_tasks_fts",
    "INSERT INTO local_tasks_fts (rowid, title, notes) SELECT rowid, title, notes FROM tasks",
]

# \x02 and \x03 mark the matches; views.py escapes the text, then turns them into <mark>.
_FTS_SQL = f"""
SELECT t.id, t.title, t.done, t.project_id, p.name AS project, p.color AS color,
       highlight(local_tasks_fts, 0, char(2), char(3)) AS title_hl,
       snippet(local_tasks_fts, 1, char(2), char(3), '…', 10) AS notes_hl,
       {_TAGS_OF_TASK} AS tags
FROM local_tasks_fts f
JOIN tasks t ON t.rowid = f.rowid
LEFT JOIN projects p ON p.id = t.project_id
WHERE local_tasks_fts MATCH ?
ORDER BY t.done, bm25(local_tasks_fts), t.created_at
LIMIT 100
"""

_LIKE_SQL = f"""
SELECT t.id, t.title, t.done, t.project_id, p.name AS project, p.color AS color,
       t.title AS title_hl, '' AS notes_hl, {_TAGS_OF_TASK} AS tags
FROM tasks t LEFT JOIN projects p ON p.id = t.project_id
WHERE t.title LIKE ?1 ESCAPE '\\' OR t.notes LIKE ?1 ESCAPE '\\'
ORDER BY t.done, t.created_at
LIMIT 100
"""

_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Search:
    """How this database searches tasks: FTS5 (ranked, prefix matches) or LIKE."""

    fts: bool

    def query(self, text: str) -> tuple[str, tuple[Any, ...]] | None:
        """The SQL and parameters of a search for ``text``; ``None`` when there is nothing to search.

        ``#name`` lists the tasks tagged ``name``. Otherwise every word must
        match the start of a word in a task's title or notes (each is quoted,
        so FTS5's query syntax never reaches a person as an error).
        """
        text = text.strip()
        if text.startswith("#"):
            name = _tag_name(text[1:], strict=False)
            return (_BY_TAG_SQL, (name,)) if name else None
        words = _WORD.findall(text)
        if not words:
            return None
        if self.fts:
            return _FTS_SQL, (" ".join(f'"{w}"*' for w in words),)
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return _LIKE_SQL, (f"%{escaped}%",)


async def setup_search(db: edgesql.Connection) -> Search:
    """Create (or check) the local search index; fall back to LIKE where FTS5 is missing."""
    try:
        rs = await db.execute("SELECT value FROM local_app_meta WHERE key = 'search_index'")
        version = rs.scalar()
    except edgesql.OperationalError:  # no such table: first start
        version = None
    if version != str(SEARCH_INDEX_VERSION):
        try:
            await db.batch(_SEARCH_SETUP)
        except edgesql.OperationalError as e:
            if "fts5" not in str(e):
                raise
            return Search(fts=False)  # this SQLite was built without FTS5
        return Search(fts=True)
    counts = await db.execute(
        "SELECT (SELECT count(*) FROM local_tasks_fts), (SELECT count(*) FROM tasks), "
        "(SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND name LIKE 'local\\_tasks\\_fts\\_%' "
        "ESCAPE '\\')"
    )
    indexed, tasks, triggers = counts.rows[0]
    if triggers != 3:  # a migration rebuilt `tasks`, and its triggers went with the old table
        await db.batch(_SEARCH_SETUP)
    elif indexed != tasks:  # a stale entry: start over
        await db.batch(_SEARCH_REBUILD)
    return Search(fts=True)


# -- writes -------------------------------------------------------------------------


def new_id() -> str:
    """A key no other device will make: a random UUID, as text."""
    return str(uuid.uuid4())


def _line(text: str, what: str, limit: int = MAX_NAME) -> str:
    text = " ".join(str(text).split())
    if not text:
        raise InputError(f"{what} cannot be empty.")
    if len(text) > limit:
        raise InputError(f"{what} is {len(text)} characters long; {limit} at most, please.")
    return text


def _text(text: str, what: str) -> str:
    text = str(text).strip()
    if len(text) > MAX_TEXT:
        raise InputError(f"{what} is {len(text):,} characters long; {MAX_TEXT:,} at most, please.")
    return text


def _tag_name(text: str, strict: bool = True) -> str:
    name = " ".join(text.strip().lstrip("#").split())
    if strict:
        return _line(name, "A tag", MAX_TAG)
    return name[:MAX_TAG]


async def add_project(db: edgesql.Connection, name: str, owner: str = "") -> str:
    """Create a project owned by ``owner`` (the signed-in user; '' without users); returns its id."""
    name = _line(name, "A project name")
    n = (await db.execute("SELECT count(*) FROM projects")).scalar() or 0
    pid = new_id()
    await db.execute(
        "INSERT INTO projects (id, name, color, owner) VALUES (?, ?, ?, ?)",
        (pid, name, PROJECT_COLORS[n % len(PROJECT_COLORS)], owner),
    )
    return pid


async def rename_project(db: edgesql.Connection, project_id: str, name: str) -> None:
    """Give a project a new name."""
    await db.execute("UPDATE projects SET name = ? WHERE id = ?", (_line(name, "A project name"), project_id))


async def delete_project(db: edgesql.Connection, project_id: str) -> None:
    """Delete a project: ON DELETE CASCADE takes its tasks, their tag links and comments,
    its tags and members with it — here, on the primary, and on every device, including
    tasks another device adds to it offline before it hears of the delete."""
    await db.execute("DELETE FROM projects WHERE id = ?", (project_id,))


_USER = re.compile(r"[A-Za-z0-9_.@+-]{1,64}")


async def add_member(db: edgesql.Connection, project_id: str, user: str, added_by: str = "") -> None:
    """Share a project with ``user`` (a sign-in name). The key is the pair, so adding the same
    person twice, on two devices offline, makes one row."""
    user = user.strip()
    if not _USER.fullmatch(user):
        raise InputError("A name is 1-64 letters, digits or . _ @ + -, as people sign in with it.")
    await db.execute(
        "INSERT INTO members (id, project_id, user_id, added_by) VALUES (?1 || ' ' || ?2, ?1, ?2, ?3) "
        "ON CONFLICT DO NOTHING",
        (project_id, user, added_by),
    )


async def remove_member(db: edgesql.Connection, project_id: str, user: str) -> None:
    """Stop sharing a project with ``user``: their devices drop it at their next sync."""
    await db.execute("DELETE FROM members WHERE project_id = ? AND user_id = ?", (project_id, user))


async def add_task(db: edgesql.Connection, project_id: str, title: str, notes: str = "") -> str:
    """Create an open task in a project; returns its id."""
    tid = new_id()
    await db.execute(
        "INSERT INTO tasks (id, project_id, title, notes) VALUES (?, ?, ?, ?)",
        (tid, project_id, _line(title, "A task title"), _text(notes, "The notes")),
    )
    return tid


_TASK_FIELDS = {"title", "notes", "priority", "due", "done"}


async def update_task(db: edgesql.Connection, task_id: str, **fields: Any) -> None:
    """Change some fields of a task (``title``, ``notes``, ``priority``, ``due``, ``done``).

    Only the given columns are written, so a concurrent change of another
    field on another device is kept: sync merges column by column.
    """
    unknown = set(fields) - _TASK_FIELDS
    if unknown:
        raise InputError(f"tasks have no field {sorted(unknown)[0]!r}")
    values: dict[str, Any] = {}
    for name, value in fields.items():
        if name == "title":
            values[name] = _line(value, "A task title")
        elif name == "notes":
            values[name] = _text(value, "The notes")
        elif name == "priority":
            if value not in (0, 1, 2, 3):
                raise InputError("Priority is 0 (none) to 3 (high).")
            values[name] = int(value)
        elif name == "done":
            values[name] = 1 if value else 0
        elif name == "due":
            values[name] = _due(value)
    if not values:
        return
    sets = ", ".join(f"{name} = :{name}" for name in values)
    await db.execute(
        f"UPDATE tasks SET {sets}, updated_at = {_NOW} WHERE id = :id", {**values, "id": task_id}
    )


def _due(value: Any) -> str | None:
    if value in (None, ""):
        return None
    text = str(value)
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise InputError(f"A due date looks like 2026-12-31, not {text!r}.")
    return text


async def set_done(db: edgesql.Connection, task_id: str, done: bool) -> None:
    """Complete (or reopen) a task."""
    await update_task(db, task_id, done=done)


async def delete_task(db: edgesql.Connection, task_id: str) -> None:
    """Delete a task; ON DELETE CASCADE takes its tag links and comments with it."""
    await db.execute("DELETE FROM tasks WHERE id = ?", (task_id,))


async def add_tag(db: edgesql.Connection, task_id: str, name: str) -> str:
    """Tag a task with ``name``, creating the project's tag of that name if it has none;
    returns the tag's id.

    A project has one tag per name (UNIQUE (project_id, name), case-insensitive). Two
    devices may each create "urgent" offline: if each made a random key, the primary would
    keep the first and reject the second (a UNIQUE conflict), and the second device would
    lose its tag links. So the key is derived from what makes the tag unique — the project
    and the lower-cased name (SQLite's lower(), as in schema/0002) — and both devices
    create the *same* row: sync merges it (the later colour wins) instead of refusing one.
    """
    name = _tag_name(name)
    n = (await db.execute("SELECT count(*) FROM tags")).scalar() or 0
    tag_key = "'tag ' || t.project_id || ' ' || lower(?1)"
    await db.batch(
        [
            (
                f"INSERT INTO tags (id, project_id, name, color) SELECT {tag_key}, t.project_id, ?1, ?3 "
                "FROM tasks t WHERE t.id = ?2 ON CONFLICT DO NOTHING",
                (name, task_id, TAG_COLORS[n % len(TAG_COLORS)]),
            ),
            (
                "INSERT INTO task_tags (task_id, tag_id, project_id) "
                "SELECT t.id, g.id, t.project_id FROM tasks t JOIN tags g ON g.project_id = t.project_id "
                "WHERE t.id = ?2 AND g.name = ?1 ON CONFLICT DO NOTHING",
                (name, task_id),
            ),
        ]
    )
    rs = await db.execute(
        "SELECT g.id FROM tags g JOIN tasks t ON t.project_id = g.project_id WHERE t.id = ? AND g.name = ?",
        (task_id, name),
    )
    return rs.scalar()


async def remove_tag(db: edgesql.Connection, task_id: str, tag_id: str) -> None:
    """Take a tag off a task (the tag stays, for other tasks)."""
    await db.execute("DELETE FROM task_tags WHERE task_id = ? AND tag_id = ?", (task_id, tag_id))


async def add_comment(db: edgesql.Connection, task_id: str, author: str, body: str) -> str:
    """Comment on a task; returns the comment's id."""
    body = _text(body, "A comment")
    if not body:
        raise InputError("A comment cannot be empty.")
    cid = new_id()
    await db.execute(
        "INSERT INTO comments (id, task_id, project_id, author, body) "
        "SELECT ?, id, project_id, ?, ? FROM tasks WHERE id = ?",
        (cid, author[:MAX_NAME], body, task_id),
    )
    return cid


async def delete_comment(db: edgesql.Connection, comment_id: str) -> None:
    """Delete one comment."""
    await db.execute("DELETE FROM comments WHERE id = ?", (comment_id,))
