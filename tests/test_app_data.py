"""The demo app's SQL and HTML on CPython: the same data.py and views.py the browser runs.

The app's queries are joins and aggregates over the demo schema; here they run
on the stdlib's sqlite3 through edgesql's native backend, in memory, with the
schema of web/app/schema/. The browser tests (test_app_browser.py) cover the
page; these pin the rules a person meets: names are trimmed and bounded, a tag
is found by name whatever its case, deletes take their comments and tag links
along, and nothing from the database reaches the page unescaped.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from tests.aio import run
from tests.conftest import ROOT
from web.app import cells, data, views
from web.app.seed import SAMPLE, add_sample_data

import edgesql

SCHEMA = [p.read_text() for p in sorted((ROOT / "web" / "app" / "schema").glob("[0-9]*.sql"))]


async def _db() -> edgesql.Connection:
    return await edgesql.connect(":memory:", schema=SCHEMA)


def with_db(fn):  # type: ignore[no-untyped-def]
    """Run an async test body with a fresh in-memory database of the demo schema."""

    def test() -> None:
        async def body() -> None:
            db = await _db()
            try:
                await fn(db)
            finally:
                await db.close()

        run(body())

    test.__name__ = fn.__name__
    test.__doc__ = fn.__doc__
    return test


async def rows(db: edgesql.Connection, sql: str, params: tuple[object, ...] = ()) -> list[list[object]]:
    return [list(r) for r in (await db.execute(sql, params)).rows]


@with_db
async def test_projects_count_open_and_done_tasks(db: edgesql.Connection) -> None:
    home = await data.add_project(db, "  Home  ")
    work = await data.add_project(db, "Work")
    a = await data.add_task(db, home, "Milk")
    await data.add_task(db, home, "Bread")
    await data.set_done(db, a, True)
    got = await rows(db, data.PROJECTS_SQL)
    assert [r[1:5] for r in got] == [
        ["Home", data.PROJECT_COLORS[0], 1, 1],
        ["Work", data.PROJECT_COLORS[1], 0, 0],
    ]
    assert got[1][0] == work


@with_db
async def test_a_tasks_tags_and_comments_come_in_one_row(db: edgesql.Connection) -> None:
    p = await data.add_project(db, "Launch")
    t = await data.add_task(db, p, "Announce")
    await data.add_tag(db, t, "writing")
    await data.add_tag(db, t, "#Bug")
    await data.add_comment(db, t, "Ada", "Draft is in.")
    (row,) = (await db.execute(data.TASKS_SQL, (p,))).rows
    assert [tag[1] for tag in json.loads(row["tags"])] == ["Bug", "writing"]  # sorted by name
    assert row["comments"] == 1
    (one,) = (await db.execute(data.TASK_SQL, (t,))).rows
    assert one["project"] == "Launch"


@with_db
async def test_a_tag_is_found_by_name_whatever_its_case(db: edgesql.Connection) -> None:
    p = await data.add_project(db, "P")
    t1, t2 = await data.add_task(db, p, "One"), await data.add_task(db, p, "Two")
    first = await data.add_tag(db, t1, "Urgent")
    assert await data.add_tag(db, t1, "urgent") == first  # again on the same task: nothing new
    assert await data.add_tag(db, t2, "  URGENT ") == first
    assert await rows(db, "SELECT name FROM tags") == [["Urgent"]]
    assert await rows(db, "SELECT count(*) FROM task_tags") == [[2]]
    tags = await rows(db, "SELECT name, open, total FROM (" + data.TAGS_SQL + ")")
    assert tags == [["Urgent", 2, 2]]
    await data.remove_tag(db, t1, first)
    assert await rows(db, "SELECT task_id FROM task_tags") == [[t2]]


@with_db
async def test_a_tags_key_comes_from_its_project_and_name(db: edgesql.Connection) -> None:
    """Two devices that create "urgent" in a project offline make the same row (the key is
    derived), so sync merges them instead of refusing one of them as a UNIQUE conflict."""
    p, q = await data.add_project(db, "P"), await data.add_project(db, "Q")
    tp, tq = await data.add_task(db, p, "One"), await data.add_task(db, q, "Two")
    assert await data.add_tag(db, tp, "Urgent") == f"tag {p} urgent"
    assert await data.add_tag(db, tq, "URGENT") == f"tag {q} urgent"  # each project its own
    with pytest.raises(edgesql.IntegrityError, match="UNIQUE"):
        await db.execute("INSERT INTO tags (id, project_id, name) VALUES ('other', ?, 'urgent')", (p,))
    tags = await rows(db, "SELECT lower(name), open, total FROM (" + data.TAGS_SQL + ")")
    assert tags == [["urgent", 2, 2]]  # one name in the cloud, counted across projects


@with_db
async def test_members_share_a_project(db: edgesql.Connection) -> None:
    p = await data.add_project(db, "Shared", owner="alice")
    await data.add_member(db, p, "bob", added_by="alice")
    await data.add_member(db, p, " bob ", added_by="alice")  # twice: one row
    await data.add_member(db, p, "carol")
    assert await rows(db, data.MEMBERS_SQL, (p,)) == [["alice", 1], ["bob", 0], ["carol", 0]]
    with pytest.raises(data.InputError, match="letters, digits"):
        await data.add_member(db, p, "no spaces please")
    await data.remove_member(db, p, "carol")
    await data.delete_project(db, p)
    assert await rows(db, "SELECT count(*) FROM members") == [[0]]


@with_db
async def test_what_a_person_types_is_checked_with_a_readable_reason(db: edgesql.Connection) -> None:
    p = await data.add_project(db, "P")
    with pytest.raises(data.InputError, match="A task title cannot be empty"):
        await data.add_task(db, p, "   ")
    with pytest.raises(data.InputError, match="81 characters long; 80 at most"):
        await data.add_task(db, p, "x" * 81)
    with pytest.raises(data.InputError, match="A tag cannot be empty"):
        await data.add_tag(db, "t", "#")
    with pytest.raises(data.InputError, match="A comment cannot be empty"):
        await data.add_comment(db, "t", "me", "\n ")
    t = await data.add_task(db, p, "Ok")
    with pytest.raises(data.InputError, match="looks like 2026-12-31"):
        await data.update_task(db, t, due="tomorrow")
    with pytest.raises(data.InputError, match="no field 'id'"):
        await data.update_task(db, t, id="x")
    await data.update_task(db, t, title="  Better   title ", priority=3, due="2026-12-31")
    assert await rows(db, "SELECT title, priority, due FROM tasks") == [["Better title", 3, "2026-12-31"]]


@with_db
async def test_deletes_take_comments_and_tag_links_along(db: edgesql.Connection) -> None:
    p, q = await data.add_project(db, "P"), await data.add_project(db, "Q")
    t = await data.add_task(db, p, "T")
    keep = await data.add_task(db, q, "Keep")
    for task in (t, keep):
        await data.add_tag(db, task, "x")
        await data.add_comment(db, task, "me", "hi")
    await data.delete_project(db, p)
    assert await rows(db, "SELECT id FROM tasks") == [[keep]]
    assert await rows(db, "SELECT task_id FROM task_tags") == [[keep]]
    assert await rows(db, "SELECT task_id FROM comments") == [[keep]]
    await data.delete_task(db, keep)
    assert await rows(db, "SELECT (SELECT count(*) FROM tasks) + (SELECT count(*) FROM comments)") == [[0]]


@with_db
async def test_search_uses_fts5_with_prefixes_and_keeps_up_with_writes(db: edgesql.Connection) -> None:
    search = await data.setup_search(db)
    assert search.fts
    p = await data.add_project(db, "Home")
    t = await data.add_task(db, p, "Call the plumber", notes="about the kitchen tap")
    await data.add_task(db, p, "Buy milk")

    async def find(text: str) -> list[str]:
        q = search.query(text)
        assert q is not None
        return [r["title_hl"] + "|" + r["notes_hl"] for r in (await db.execute(*q)).rows]

    assert await find("plumb") == ["Call the \x02plumber\x03|about the kitchen tap"]
    assert await find("kitch tap") == ["Call the plumber|about the \x02kitchen\x03 \x02tap\x03"]
    assert await find('"; DROP TABLE tasks; --') == []  # words are quoted: no FTS5 syntax errors
    await data.update_task(db, t, title="Call the electrician")
    assert await find("plumb") == []
    # INSERT OR REPLACE (sync uses it when it rebuilds a rejected row) fires no delete trigger.
    await db.execute(
        "INSERT OR REPLACE INTO tasks (id, project_id, title) VALUES (?, ?, 'Fix the sink')", (t, p)
    )
    assert await find("electrician") == []
    assert await find("sink") == ["Fix the \x02sink\x03|"]
    await data.delete_task(db, t)
    assert await find("sink") == []
    assert search.query("  ") is None


@with_db
async def test_the_search_index_is_rebuilt_when_it_drifted(db: edgesql.Connection) -> None:
    await data.setup_search(db)
    p = await data.add_project(db, "Home")
    await data.add_task(db, p, "Water the plants")
    await db.execute("DELETE FROM local_tasks_fts")  # as if a migration had rebuilt tasks
    search = await data.setup_search(db)
    q = search.query("water")
    assert q is not None
    assert len((await db.execute(*q)).rows) == 1


@with_db
async def test_tag_search_and_the_like_fallback(db: edgesql.Connection) -> None:
    p = await data.add_project(db, "Home")
    t = await data.add_task(db, p, "Fix 100% of the bugs")
    await data.add_task(db, p, "Other")
    await data.add_tag(db, t, "bug")
    q = data.Search(fts=True).query("#BUG")
    assert q is not None
    assert [r["title"] for r in (await db.execute(*q)).rows] == ["Fix 100% of the bugs"]
    like = data.Search(fts=False)
    for text, want in (("100%", ["Fix 100% of the bugs"]), ("0%_", []), ("other", ["Other"])):
        q = like.query(text)
        assert q is not None
        assert [r["title"] for r in (await db.execute(*q)).rows] == want, text


@with_db
async def test_the_sample_data_is_one_batch_of_related_rows(db: edgesql.Connection) -> None:
    n = await add_sample_data(db)
    assert n == sum(len(tasks) for _, tasks in SAMPLE)
    projects = await rows(db, "SELECT name, open, done FROM (" + data.PROJECTS_SQL + ")")
    assert projects[0] == ["Website relaunch", 3, 2]
    orphans = await rows(
        db, "SELECT count(*) FROM task_tags tt LEFT JOIN tags g ON g.id = tt.tag_id WHERE g.id IS NULL"
    )
    assert orphans == [[0]]


# -- HTML ------------------------------------------------------------------------------


def test_nothing_from_the_database_reaches_the_page_unescaped() -> None:
    evil = '<img src=x onerror="alert(1)">'

    class Row(dict):  # type: ignore[type-arg]
        pass

    task = Row(
        id='t"1',
        title=evil,
        done=0,
        priority=3,
        due="2000-01-01",
        has_notes=1,
        tags=json.dumps([["g1", evil, "red;background:url(//x)"]]),
        comments=2,
    )
    html = views.task_items([task], None, "2026-01-01")
    assert "<img" not in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
    assert "url(" not in html  # a color that is not #rgb never reaches a style
    assert 'data-id="t&quot;1"' in html
    assert "late" in html  # due in the past
    project = Row(id="p", name=evil, color="#123456", open=1, done=1)
    assert "<img" not in views.project_items([project], "p")
    marked = views.search_items(
        [
            Row(
                id="t",
                title="x",
                done=0,
                project_id="p",
                project=evil,
                color="#fff",
                title_hl="a \x02<b>\x03 c",
                notes_hl="",
                tags="[]",
            )
        ]
    )
    assert "a <mark>&lt;b&gt;</mark> c" in marked
    comment = Row(id="c", author=evil, body="line 1\n<script>", created_at="2026-01-01T00:00:00.000Z")
    assert "line 1<br>&lt;script&gt;" in views.comment_items([comment])


def test_times_read_like_a_person_would_say_them() -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert views.ago(None, now) == "never"
    assert views.ago("2026-11-25T11:59:55.000Z", now) == "just now"
    assert views.ago("2026-11-25T11:55:00Z", now) == "5 min ago"
    assert views.ago("2026-11-25T09:00:00Z", now) == "3 h ago"
    assert views.ago("2026-11-24T09:00:00Z", now) == "yesterday"
    assert views.ago("2026-03-02T09:00:00Z", now) == "Mar 2"
    assert views.ago("2025-03-02T09:00:00Z", now) == "Mar 2, 2025"


def test_sync_bookkeeping_reads_as_values() -> None:
    assert cells.key_text('["t6d696c6b", "i42", "b00ff"]') == "milk, 42, x'00ff'"
    assert cells.value_text(["r", "3", "-1"]) == "1.5"
    assert cells.value_text(["r", "-0"]) == "-0.0"
    assert cells.value_text(["T", "610062"]) == "'a\\0b'"
    assert cells.value_text(["t", "it's"]) == "'it''s'"
    assert cells.value_text(["n"]) == "NULL"
    assert cells.cells_text('{"done": ["i", "1"], "_edgesql_exists": ["i", "0"]}') == [
        ("done", "1"),
        ("row", "deleted"),
    ]
    ms = 1_764_072_000_000  # 2025-11-25 12:00:00 UTC
    assert cells.hlc_text((ms << 16) + 7) == "2025-11-25 12:00:00.000 UTC +7"
    assert cells.hlc_ms((ms << 16) + 7) == ms
