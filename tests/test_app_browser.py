"""The demo app at ``/`` in real Chromium: a person uses it, and every view stays live.

One serve.py with a fresh primary for the module, and one browser profile
("the laptop") that the tests keep using, as a person would; the tests that
need another tab, another device or a broken network open their own. Every
check waits on what is on screen (Playwright's ``expect``) or polls Python
in the page (``wait_py``); nothing sleeps. No request may leave 127.0.0.1.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import pytest
from playwright.sync_api import expect
from tests.conftest import ROOT, OutsideRequests, Server, open_console, run_py, start_server, wait_py

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-results"
README_SHOT = ROOT / "docs" / "screenshot.png"
READY_MS = 90_000


def _is_sync_url(url: str) -> bool:
    """The primary's endpoints (/sync, /sync/schema), not /app/syncbar.py."""
    return urlparse(url).path.split("/")[1] == "sync"


@pytest.fixture(scope="module")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A primary of this module's own: the app's first visit sees an empty database."""
    server = start_server(tmp_path_factory.mktemp("app-data"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def guard() -> OutsideRequests:
    return OutsideRequests()


@pytest.fixture(autouse=True)
def _nothing_left_127(guard: OutsideRequests) -> Iterator[None]:
    yield
    guard.check()


class Laptop:
    """The profile most tests share: its context, its app page, and what the page logged as errors."""

    def __init__(self, context: Any, page: Any, errors: list[str]) -> None:
        self.context = context
        self.page = page
        self.errors = errors


def collect_errors(page: Any) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def open_app(page: Any, base_url: str) -> Any:
    """Load the app and wait for its contract: <html data-ready="true"> (and window.pyodide)."""
    page.goto(f"{base_url}/")
    page.wait_for_function("document.documentElement.dataset.ready", timeout=READY_MS)
    state = page.evaluate("document.documentElement.dataset.ready")
    assert state == "true", f"the app did not start ({state}): {page.inner_text('body')}"
    return page


@pytest.fixture(scope="module")
def laptop(browser: Any, app_server: Server, guard: OutsideRequests) -> Iterator[Laptop]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    guard.watch(context)
    page = context.new_page()
    errors = collect_errors(page)
    open_app(page, app_server.url)
    yield Laptop(context, page, errors)
    context.close()


def current_project_counts(page: Any) -> Any:
    return page.locator('.project[aria-current="true"] .counts')


def task_row(page: Any, title: str) -> Any:
    return page.locator("#tasks .task", has=page.locator(".task-title", has_text=title))


# -- first visit ---------------------------------------------------------------------


def test_first_visit_renders_the_app(laptop: Laptop) -> None:
    page = laptop.page
    assert page.title() == "Tasks · edgesql"
    expect(page.locator("#loading")).to_be_hidden()
    expect(page.locator("#app")).to_be_visible()
    # The sections a person sees, and the empty state of a brand-new database.
    expect(page.locator("#projects-h")).to_have_text("Projects")
    expect(page.locator("#search")).to_be_visible()
    expect(page.get_by_role("heading", name="Welcome to your tasks")).to_be_visible()
    expect(page.get_by_role("button", name="Add sample projects")).to_be_visible()
    expect(page.locator("#rejected-link")).to_contain_text("Rejected changes")
    # The sync indicator reached the primary (a first visit pulls the schema and data).
    expect(page.locator("#sync")).to_have_attribute("data-state", "on", timeout=15_000)
    expect(page.locator("#sync-label")).to_contain_text("Synced")
    # Search uses SQLite's FTS5 in a local-only table the app made at start.
    assert run_py(page, "app.search.fts") is True
    assert run_py(page, '(await db.execute("SELECT count(*) FROM local_tasks_fts")).scalar()') == 0
    assert laptop.errors == []


# -- a person at work ------------------------------------------------------------------


def test_a_project_with_tasks_tags_and_a_comment_through_the_ui(laptop: Laptop) -> None:
    page = laptop.page
    kb = page.keyboard
    page.click("#new-project")
    kb.type("Errands")
    kb.press("Enter")
    expect(page.locator('.project[aria-current="true"] .project-name')).to_have_text("Errands")
    expect(page.locator("#new-task")).to_be_focused()  # the next thing to do: add tasks
    expect(page.locator("#tasks .empty")).to_contain_text("No tasks yet — add one")

    kb.press("Enter")  # an empty title is refused in words, next to the box
    expect(page.locator("#task-error")).to_have_text("A task title cannot be empty.")
    for title in ("Buy milk", "Call the plumber", "Return the library books"):
        kb.type(title)
        kb.press("Enter")
    expect(page.locator("#tasks .task-title")).to_have_text(
        ["Buy milk", "Call the plumber", "Return the library books"]
    )
    expect(page.locator("#task-error")).to_be_hidden()
    expect(current_project_counts(page)).to_have_text("3 open · 0 done")

    # The task's panel: a new tag made inline, then a comment, each with Enter.
    task_row(page, "Call the plumber").locator(".task-title").click()
    expect(page.locator("#detail")).to_be_visible()
    expect(page.locator("#detail-title")).to_have_value("Call the plumber")
    page.click("#tag-input")
    kb.type("urgent")
    kb.press("Enter")
    expect(page.locator("#detail-tags .tag")).to_contain_text(["urgent"])
    page.click("#comment-input")
    kb.type("Tuesday morning works for them")
    kb.press("Enter")
    expect(page.locator("#comments .comment-body")).to_have_text(["Tuesday morning works for them"])
    # The list shows the same task with its tag and comment count (joins, live).
    row = task_row(page, "Call the plumber")
    expect(row.locator(".tag")).to_have_text(["urgent"])
    expect(row.locator(".comment-meta")).to_have_text("1")
    expect(page.locator("#tags .tag")).to_have_text(["urgent1"])  # sidebar: the tag, 1 open task
    # The same tag again, typed differently, is the same tag: no duplicate.
    page.click("#tag-input")
    kb.type("Urgent")
    kb.press("Enter")
    expect(page.locator("#tag-input")).to_have_value("")
    expect(page.locator("#detail-tags .tag")).to_have_count(1)
    # Edit in place: Enter saves the title, Escape cancels an edit, a select saves on change.
    title = page.locator("#detail-title")
    title.click()
    kb.press("End")
    kb.type(" on Tuesday")
    kb.press("Enter")
    expect(task_row(page, "Call the plumber on Tuesday")).to_be_visible()
    title.click()
    kb.type(" (no, Friday)")
    kb.press("Escape")
    expect(title).to_have_value("Call the plumber on Tuesday")
    page.select_option("#detail-priority", "3")
    expect(task_row(page, "Call the plumber").locator(".prio")).to_have_text("High")
    kb.press("Escape")  # closes the panel
    expect(page.locator("#detail")).to_be_hidden()

    # Delete asks once more, on the same button.
    task_row(page, "Return the library books").locator(".task-title").click()
    delete = page.locator("#delete-task")
    delete.click()
    expect(delete).to_have_text("Click again to delete")
    delete.click()
    expect(page.locator("#detail")).to_be_hidden()
    expect(task_row(page, "Return the library books")).to_have_count(0)
    expect(current_project_counts(page)).to_have_text("2 open · 0 done")
    page.click("#new-task")
    kb.type("Return the library books")
    kb.press("Enter")

    # Complete one task with its checkbox; the counts follow.
    task_row(page, "Buy milk").locator(".check").click()
    expect(current_project_counts(page)).to_have_text("2 open · 1 done")
    expect(page.locator("#project-stats")).to_contain_text("33% complete")
    expect(task_row(page, "Buy milk")).to_have_class("task done")

    # Search: FTS5 with prefixes, matches marked; "#tag" lists a tag's tasks.
    page.click("#search")
    kb.type("plumb")
    expect(page.locator("#search-results .task-title")).to_have_text(["Call the plumber on Tuesday"])
    expect(page.locator("#search-results mark")).to_have_text(["plumber"])
    page.fill("#search", "#urgent")
    expect(page.locator("#search-title")).to_have_text("Tasks tagged #urgent")
    expect(page.locator("#search-results .task-title")).to_have_text(["Call the plumber on Tuesday"])
    page.fill("#search", "zebra")
    expect(page.locator("#search-results .empty")).to_contain_text("No tasks match “zebra”")
    page.focus("#search")
    kb.press("Escape")
    expect(page.locator("#view-project")).to_be_visible()

    # What the screen shows is what the database holds, relationally.
    got = run_py(
        page,
        """import json
import os
rs = await db.execute('''
    SELECT t.title, t.done, group_concat(g.name), (SELECT count(*) FROM comments c WHERE c.task_id = t.id)
    FROM tasks t JOIN projects p ON p.id = t.project_id
    LEFT JOIN task_tags tt ON tt.task_id = t.id LEFT JOIN tags g ON g.id = tt.tag_id
    WHERE p.name = 'Errands' GROUP BY t.id ORDER BY t.title''')
json.dumps([list(r) for r in rs.rows])""",
    )
    assert got == [
        ["Buy milk", 1, None, 0],
        ["Call the plumber on Tuesday", 0, "urgent", 1],
        ["Return the library books", 0, None, 0],
    ]
    assert laptop.errors == []


def test_a_write_from_the_console_updates_the_app_without_reload(laptop: Laptop, app_server: Server) -> None:
    page = laptop.page
    if not page.locator(".project", has_text="Errands").count():
        run_py(page, "from app import data\nawait data.add_project(db, 'Errands')")
    page.locator(".project", has_text="Errands").click()
    project_id = run_py(page, "import json\njson.dumps(app.project)")
    open_before = run_py(
        page,
        f"(await db.execute('SELECT count(*) FROM tasks WHERE project_id = ? AND done = 0', ({project_id!r},))).scalar()",
    )
    page.evaluate("window.notReloaded = true")

    console = open_console(laptop.context.new_page(), app_server.url)  # another tab, same profile
    try:
        run_py(
            console,
            f"""await db.execute(
    "INSERT INTO tasks (id, project_id, title, priority) VALUES ('console-task', ?, 'Added from the console', 3)",
    ({project_id!r},))""",
        )
        row = task_row(page, "Added from the console")
        expect(row).to_be_visible()
        expect(row.locator(".prio")).to_have_text("High")
        expect(current_project_counts(page)).to_contain_text(f"{open_before + 1} open")
        run_py(
            console,
            "await db.execute(\"UPDATE tasks SET title = 'Renamed in the console' WHERE id = 'console-task'\")",
        )
        expect(task_row(page, "Renamed in the console")).to_be_visible()
        expect(task_row(page, "Added from the console")).to_have_count(0)
    finally:
        console.close()
    assert page.evaluate("window.notReloaded") is True


def test_a_change_from_another_device_appears_after_sync(
    browser: Any, laptop: Laptop, app_server: Server, guard: OutsideRequests
) -> None:
    page = laptop.page
    if not page.locator(".project", has_text="Errands").count():
        run_py(page, "from app import data\nawait data.add_project(db, 'Errands')\nawait db.sync()")
    wait_py(page, "(await db.sync_status()).pending", 0, timeout=15)

    phone = browser.new_context(viewport={"width": 390, "height": 844})  # its own OPFS: another device
    guard.watch(phone)
    try:
        other = open_app(phone.new_page(), app_server.url)
        # The first start pulled everything the laptop had synced.
        other.locator(".project", has_text="Errands").click()
        expect(other.locator('.project[aria-current="true"] .project-name')).to_have_text("Errands")
        other.click("#new-task")
        other.keyboard.type("Pick up the parcel")
        other.keyboard.press("Enter")
        expect(task_row(other, "Pick up the parcel")).to_be_visible()
        wait_py(other, "(await db.sync_status()).pending", 0, timeout=15)  # sent by itself after the write
    finally:
        phone.close()

    page.locator(".project", has_text="Errands").click()
    page.click("#sync-button")  # or wait for the next pull; a person clicks
    expect(task_row(page, "Pick up the parcel")).to_be_visible()
    expect(page.locator("#toast")).to_contain_text("Synced")


# -- the picture in the README ------------------------------------------------------------


def _png_stats(page: Any, png: bytes) -> dict[str, int]:
    """Size and number of distinct colours of a PNG, decoded by the browser."""
    return page.evaluate(
        """async (b64) => {
            const blob = await (await fetch('data:image/png;base64,' + b64)).blob();
            const img = await createImageBitmap(blob);
            const canvas = new OffscreenCanvas(img.width, img.height);
            const ctx = canvas.getContext('2d');
            ctx.drawImage(img, 0, 0);
            const px = ctx.getImageData(0, 0, img.width, img.height).data;
            const colors = new Set();
            for (let i = 0; i < px.length; i += 4 * 7) colors.add((px[i] << 16) | (px[i + 1] << 8) | px[i + 2]);
            return {width: img.width, height: img.height, colors: colors.size};
        }""",
        base64.b64encode(png).decode(),
    )


def test_screenshot_of_the_demo_with_data(laptop: Laptop) -> None:
    page = laptop.page
    titles = run_py(
        page,
        """import json
from app.seed import SAMPLE, add_sample_data
if not (await db.execute("SELECT count(*) FROM projects WHERE name = 'Website relaunch'")).scalar():
    await add_sample_data(db)
json.dumps([t[0] for t in SAMPLE[0][1]])""",
    )
    page.locator(".project", has_text="Website relaunch").click()
    expect(task_row(page, titles[0])).to_be_visible()  # the list switched to this project
    expect(page.locator("#tasks .task-title")).to_have_count(len(titles))
    assert sorted(page.locator("#tasks .task-title").all_inner_texts()) == sorted(titles)
    task_row(page, titles[0]).locator(".task-title").click()
    expect(page.locator("#comments .comment")).to_have_count(2)
    expect(page.locator("#sync")).to_have_attribute("data-state", "on", timeout=15_000)
    expect(page.locator("#toast")).to_be_hidden(timeout=15_000)

    ARTIFACTS.mkdir(exist_ok=True)
    png = page.screenshot(path=str(ARTIFACTS / "app.png"))
    text = page.inner_text("body")
    for title in titles:
        assert title in text
    for visible in ("Website relaunch", "3 open · 2 done", "First draft is in the shared folder.", "launch"):
        assert visible in text
    stats = _png_stats(page, png)
    assert (stats["width"], stats["height"]) == (1280, 800)
    assert stats["colors"] > 50, f"the screenshot is nearly uniform: {stats}"
    assert len(png) < 400_000
    if os.environ.get("EDGESQL_UPDATE_SCREENSHOT"):  # refresh the README's picture on purpose only
        README_SHOT.write_bytes(png)

    # The same page on a phone: one column, nothing wider than the screen.
    page.set_viewport_size({"width": 390, "height": 844})
    try:
        page.keyboard.press("Escape")
        expect(page.locator("#detail")).to_be_hidden()
        expect(task_row(page, titles[0])).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.screenshot(path=str(ARTIFACTS / "app-390.png"))
    finally:
        page.set_viewport_size({"width": 1280, "height": 800})
    assert laptop.errors == []


# -- what sync does, shown: rejected writes, the devtools ----------------------------------


def test_a_write_the_primary_refuses_is_listed_with_its_reason(laptop: Laptop) -> None:
    page = laptop.page
    # A comment written by a device whose clock ran a day ahead: the primary refuses its stamp.
    # (A test sets a device's clock by editing the stamp in its outbox, which is not captured.)
    run_py(
        page,
        """from app import data
pid = await data.add_project(db, 'Scrapbook')
tid = await data.add_task(db, pid, 'Paste the whole book here')
await db.sync()
await db.execute("INSERT INTO comments (id, task_id, project_id, author, body) "
                 "VALUES ('huge', ?, ?, 'script', 'from the future')", (tid, pid))
await db.execute("UPDATE _edgesql_outbox SET hlc = hlc + (86400000 << 16) WHERE tbl = 'comments'")""",
    )
    page.click("#sync-button")
    expect(page.locator("#rejected-count")).to_have_text("1", timeout=15_000)
    page.click("#rejected-link")
    item = page.locator("#rejected-list .rejected-item")
    expect(item).to_have_count(1)
    expect(item.locator(".badge")).to_have_text("Clock too far ahead")
    expect(item).to_contain_text("comments")
    expect(item.locator(".reason")).not_to_be_empty()
    expect(page.locator("#rejected-empty")).to_be_hidden()
    # The refused row went back to the primary's version: it never existed there.
    wait_py(page, "(await db.execute(\"SELECT count(*) FROM comments WHERE id = 'huge'\")).scalar()", 0)


def test_the_devtools_show_the_outbox_clock_and_schema(laptop: Laptop, app_server: Server) -> None:
    console = open_console(laptop.context.new_page(), app_server.url)
    try:
        laptop.context.set_offline(True)  # so the write waits in the outbox
        run_py(
            console,
            "await db.execute(\"INSERT INTO projects (id, name) VALUES ('devtools-p', 'Devtools')\"); "
            "await db.execute(\"INSERT INTO tags (id, project_id, name) VALUES ('devtools-tag', 'devtools-p', "
            "'seen in devtools')\")",
        )
        console.focus("#tab-sql")
        console.keyboard.press("ArrowRight")  # the tablist answers to the arrow keys
        expect(console.locator("#tab-outbox")).to_have_attribute("aria-selected", "true")
        outbox = console.locator("#panel-outbox")
        expect(outbox).to_contain_text("name = 'seen in devtools'")
        expect(outbox.locator("tbody tr").first).to_contain_text("tags")
        expect(console.locator("#outbox-count")).not_to_be_empty()

        console.click("#tab-clock")
        clock = console.locator("#panel-clock")
        expect(clock).to_contain_text("replica")
        expect(clock).to_contain_text(" UTC +")  # the stamp, decoded
        assert int(clock.locator("#clock-size").inner_text().replace(",", "")) > 0

        console.click("#tab-schema")
        schema = console.locator("#panel-schema")
        expect(schema.locator("#schema-version")).to_have_text("v2")
        expect(schema).to_contain_text("task_tags")
        expect(schema).to_contain_text("local_tasks_fts")  # the app's local-only search index

        laptop.context.set_offline(False)  # back online: the outbox empties by itself
        console.click("#tab-outbox")
        expect(outbox).to_contain_text("Nothing to send", timeout=15_000)
    finally:
        laptop.context.set_offline(False)
        console.close()


# -- never synced, and no server -----------------------------------------------------------


def test_first_start_without_the_server_says_what_to_do(
    browser: Any, app_server: Server, guard: OutsideRequests
) -> None:
    # No service worker: the route below must see the DB worker's requests to /sync.
    context = browser.new_context(service_workers="block")
    guard.watch(context)
    try:
        context.route(_is_sync_url, lambda route: route.abort("internetdisconnected"))
        page = context.new_page()
        page.goto(f"{app_server.url}/")
        page.wait_for_function("document.documentElement.dataset.ready", timeout=READY_MS)
        assert page.evaluate(
            "[document.documentElement.dataset.ready, document.documentElement.dataset.error]"
        ) == [
            "error",
            "offline",
        ]
        fatal = page.locator("#fatal")
        expect(fatal).to_be_visible()
        expect(fatal.get_by_role("heading")).to_have_text("You're offline, and this device has no copy yet")
        expect(fatal).to_contain_text("try again")
        expect(page.locator("#app")).to_be_hidden()

        context.unroute(_is_sync_url)  # the network is back
        page.get_by_role("button", name="Try again").click()
        page.wait_for_function("document.documentElement.dataset.ready === 'true'", timeout=READY_MS)
        expect(page.locator("#app")).to_be_visible()
        expect(page.locator("#fatal")).to_be_hidden()
    finally:
        context.close()


def test_the_readme_shows_the_screenshot() -> None:
    assert "(docs/screenshot.png)" in (ROOT / "README.md").read_text()
    assert README_SHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
