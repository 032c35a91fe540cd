"""The devtools: a SQL console on the app's database, and what sync keeps beside it.

Runs in Pyodide on console.html. Statements run one by one through edgesql,
exactly as app code would run them, on a connection of their own (``sql_db``)
so that Cancel (``interrupt()``) stops only them. A result is read a page at
a time (``db.iterate``): its first page shows at once, "Show more" fetches
the next, so a result of millions of rows neither waits to be read whole
nor sits whole in the page. An error shows its class, SQLite's code name
and message. The other tabs show
sync's own tables — the outbox, the clock and replica state, the schema the
primary sent, the writes it rejected — rendered by ``devtools.py`` (fetched
from this server with the app's ``cells.py``); the open tab is redrawn when
the sync status moves or a statement ran.
"""

import html
import time

import js  # type: ignore[import-not-found]
from pyodide.ffi import create_proxy  # type: ignore[import-not-found]

import edgesql
from edgesql._split import split_statements

DB_NAME = "app.db"
SYNC_URL = "/sync"
PAGE_ROWS = 1000  # rows fetched and shown at once; "Show more" fetches as many again
STATUS_EVERY_S = 0.5
DEVTOOLS_LIB = "/home/pyodide/devtools"
TABS = ("sql", "outbox", "clock", "schema", "rejected", "conflicts")

document = js.document
sync_problem: str | None = None
try:
    db = await edgesql.connect(DB_NAME, sync_url=SYNC_URL)
except edgesql.SyncError as e:
    # No primary reachable and never synced: still a useful console, on local data.
    sync_problem = str(e)
    db = await edgesql.connect(DB_NAME)
# Typed SQL runs here, so that Cancel stops it and nothing of the console's own polling.
sql_db = await edgesql.connect(DB_NAME)


def _cell(value: object) -> str:
    if value is None:
        return '<td class="null">NULL</td>'
    if isinstance(value, bytes):
        shown = value[:32].hex(" ") + (" …" if len(value) > 32 else "")
        return f"<td title=\"BLOB, {len(value)} bytes\">x'{html.escape(shown)}'</td>"
    if isinstance(value, int | float):
        return f'<td class="num">{html.escape(repr(value))}</td>'
    return f"<td>{html.escape(str(value))}</td>"


def _rows_html(rows: list[edgesql.Row]) -> str:
    return "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)


def _more_note(shown: int, more: bool) -> str:
    if more:
        return (
            f'{shown:,} row(s) shown, more to come. <button type="button" class="small" data-action="more">'
            f"Show {PAGE_ROWS:,} more</button>"
        )
    return f"{shown:,} row(s)."


def _table(cur: edgesql.Cursor, rows: list[edgesql.Row]) -> str:
    if not cur.columns:
        rowid = f", last rowid {cur.last_insert_rowid}" if cur.last_insert_rowid is not None else ""
        return f'<p class="muted">{cur.rows_affected} row(s) affected{rowid}.</p>'
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cur.columns)
    table = f'<table class="result"><thead><tr>{head}</tr></thead><tbody>{_rows_html(rows)}</tbody></table>'
    note = f'<p class="muted" data-role="more">{_more_note(len(rows), not cur.closed)}</p>'
    return f'<div class="table-wrap">{table}</div>{note}'


def _error(stmt: str, e: edgesql.Error) -> str:
    name = f" ({e.sqlite_errorname})" if e.sqlite_errorname else ""
    return (
        f'<div class="error" role="alert"><strong>{type(e).__name__}{name}</strong>: {html.escape(str(e))}'
        f'\n<span class="muted">in: {html.escape(stmt[:200])}</span></div>'
    )


# The result whose further pages "Show more" fetches: its cursor, and how many rows are on screen.
paging: dict[str, object] = {"cursor": None, "shown": 0}
busy = False


def _set_busy(text: str | None) -> None:
    """Running (text says what) or idle (None): Run and Show more wait, Cancel is offered."""
    global busy
    busy = text is not None
    document.getElementById("run").disabled = busy
    cancel = document.getElementById("cancel")
    cancel.hidden = not busy
    cancel.disabled = not busy
    for button in document.querySelectorAll('#output [data-action="more"]'):
        button.disabled = busy
    if text is not None:
        document.getElementById("status").textContent = text


async def _close_paging() -> None:
    cur = paging["cursor"]
    paging["cursor"] = None
    if cur is not None:
        await cur.close()  # type: ignore[attr-defined]


async def run(*_args: object) -> None:
    if busy:
        return
    sql = document.getElementById("sql").value
    out = document.getElementById("output")
    status = document.getElementById("status")
    statements = split_statements(sql)
    if not statements:
        status.textContent = "Nothing to run."
        return
    await _close_paging()
    _set_busy("Running… Cancel stops it.")
    parts = []
    start = time.perf_counter()
    last: tuple[edgesql.Cursor, int] | None = None
    try:
        for stmt in statements:
            cur = sql_db.iterate(stmt, page_size=PAGE_ROWS)
            try:
                rows = await cur.fetchmany(PAGE_ROWS)
            except edgesql.Error as e:
                await cur.close()
                parts.append(_error(stmt, e))
                break
            if last is not None:
                await last[0].close()  # only the last result pages on
            last = (cur, len(rows))
            parts.append(f'<section class="panel">{_table(cur, rows)}</section>')
    finally:
        _set_busy(None)
    elapsed = (time.perf_counter() - start) * 1000
    if last is not None and not last[0].closed:
        paging["cursor"], paging["shown"] = last
    out.innerHTML = "".join(parts)
    status.textContent = f"{len(statements)} statement(s) in {elapsed:.2f} ms"
    global last_signature
    last_signature = None  # the statements may have written: the next status redraws the open tab


async def show_more() -> None:
    """Fetch the next page of the last result and add it to its table."""
    cur = paging["cursor"]
    if busy or cur is None:
        return
    _set_busy("Fetching more rows… Cancel stops it.")
    start = time.perf_counter()
    try:
        rows = await cur.fetchmany(PAGE_ROWS)  # type: ignore[attr-defined]
    except edgesql.Error as e:
        paging["cursor"] = None
        document.querySelector('#output [data-role="more"]').outerHTML = _error("(the next rows)", e)
        return
    finally:
        _set_busy(None)
    shown = int(paging["shown"]) + len(rows)  # type: ignore[call-overload]
    paging["shown"] = shown
    tables = document.querySelectorAll("#output table.result tbody")
    tables[tables.length - 1].insertAdjacentHTML("beforeend", _rows_html(rows))
    more = not cur.closed  # type: ignore[attr-defined]
    if not more:
        paging["cursor"] = None
    document.querySelector('#output [data-role="more"]').innerHTML = _more_note(shown, more)
    document.getElementById(
        "status"
    ).textContent = f"{len(rows):,} more row(s) in {(time.perf_counter() - start) * 1000:.2f} ms"


def cancel(*_args: object) -> None:
    """Stop the statement running now (its call fails with SQLITE_INTERRUPT)."""
    sql_db.interrupt()
    document.getElementById("status").textContent = "Cancelling…"


def _on_output_click(event: object) -> None:
    target = event.target.closest('[data-action="more"]')  # type: ignore[attr-defined]
    if target:
        _spawn(show_more())


def _on_key(event: object) -> None:
    if event.key == "Enter" and (event.ctrlKey or event.metaKey):  # type: ignore[attr-defined]
        event.preventDefault()  # type: ignore[attr-defined]
        run_proxy()


def _show_backend() -> None:
    info = db.info
    badge = document.getElementById("storage")
    if info.persistent:
        badge.className = "badge ok"
        badge.textContent = f"● {DB_NAME} · OPFS (persistent)"
    else:
        badge.className = "badge warn"
        badge.textContent = f"● {DB_NAME} · in memory: lost on reload"
        badge.title = info.warning or ""
    engine = document.getElementById("engine")
    path = "sync fast path" if info.extra.get("fast_path") else "postMessage"
    engine.textContent = f"SQLite {info.sqlite_version} · {path}"
    engine.hidden = False


def _ago(iso: str | None) -> str:
    if not iso:
        return "never synced"
    return "synced " + iso.replace("T", " ")[:19] + " UTC"


async def show_sync_status() -> None:
    state = document.getElementById("sync-state")
    detail = document.getElementById("sync-detail")
    error = document.getElementById("sync-error")
    if sync_problem is not None:
        state.className = "badge warn"
        state.textContent = "not syncing"
        error.textContent = sync_problem
        error.hidden = False
        document.getElementById("sync-now").disabled = True
        return
    st = await db.sync_status()
    _show_counts(st)
    state.className = "badge ok" if st.online else "badge warn"
    state.textContent = "● online" if st.online else "○ offline"
    parts = [f"{st.pending} pending", _ago(st.last_synced_at), f"schema v{st.schema_version}"]
    if st.rejected:
        parts.append(f"{st.rejected} rejected (see _edgesql_rejected)")
    if st.retry_in is not None:
        parts.append(f"retrying in {st.retry_in:.0f} s")
    detail.textContent = " · ".join(parts)
    error.hidden = st.last_error is None
    error.textContent = st.last_error or ""
    bar = document.getElementById("sync-progress")
    if st.progress is not None:
        bar.hidden = False
        total = st.progress.total or st.progress.applied
        document.getElementById("sync-bar").max = max(total, 1)
        document.getElementById("sync-bar").value = st.progress.applied
        document.getElementById(
            "sync-count"
        ).textContent = f"pulled {st.progress.applied:,} of {total:,} changes"
    else:
        bar.hidden = True


async def status_loop() -> None:
    import asyncio

    while not db.closed:
        try:
            await show_sync_status()
        except edgesql.Error as e:
            document.getElementById("sync-detail").textContent = f"status unavailable: {e}"
        await asyncio.sleep(STATUS_EVERY_S)


async def sync_now() -> None:
    button = document.getElementById("sync-now")
    button.disabled = True
    try:
        r = await db.sync()
        document.getElementById("status").textContent = f"Synced: {r.pushed} pushed, {r.pulled} pulled."
    except edgesql.SyncError as e:
        document.getElementById("status").textContent = f"Sync failed: {e}"
    finally:
        button.disabled = False
    await show_sync_status()


_running: set[object] = set()


def _spawn(coro: object) -> None:
    import asyncio

    task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
    _running.add(task)  # keep a reference until it is done
    task.add_done_callback(_running.discard)


# -- devtools tabs ---------------------------------------------------------------

tools = None
tools_problem: str | None = None
current_tab = "sql"
last_signature: tuple[object, ...] | None = None
_render_gen = 0


async def _load_devtools() -> None:
    """Fetch devtools.py and the app's cells.py into the file system, and import them."""
    global tools, tools_problem
    import os
    import sys

    try:
        os.makedirs(DEVTOOLS_LIB, exist_ok=True)
        for url, name in (("/devtools.py", "devtools.py"), ("/app/cells.py", "cells.py")):
            resp = await js.fetch(url)
            if not resp.ok:
                raise RuntimeError(f"GET {url} answered {resp.status}")
            with open(f"{DEVTOOLS_LIB}/{name}", "w") as f:
                f.write(await resp.text())
        sys.path.insert(0, DEVTOOLS_LIB)
        import devtools  # type: ignore[import-not-found]

        tools = devtools.Devtools(db)
    except Exception as e:  # the SQL console still works without the other tabs
        tools_problem = f"The devtools tabs could not load: {e}"


def _show_counts(st: object) -> None:
    """Tab badges from the status; redraw the open tab when the status moved."""
    global last_signature
    document.getElementById("outbox-count").textContent = str(st.pending) if st.pending else ""  # type: ignore[attr-defined]
    rejected = document.getElementById("rejected-count")
    rejected.textContent = str(st.rejected) if st.rejected else ""  # type: ignore[attr-defined]
    rejected.className = "count bad" if st.rejected else "count"  # type: ignore[attr-defined]
    document.getElementById("schema-count").textContent = f"v{st.schema_version}"  # type: ignore[attr-defined]
    signature = (st.pending, st.last_synced_at, st.rejected, st.schema_version)  # type: ignore[attr-defined]
    if signature != last_signature:
        last_signature = signature
        _spawn(render_tab())


async def render_tab() -> None:
    """Draw the open devtools tab from the database."""
    global _render_gen
    tab = current_tab
    if tab == "sql":
        return
    _render_gen += 1
    gen = _render_gen
    if tools is None:
        markup = f'<p class="error">{html.escape(tools_problem or "loading…")}</p>'
    else:
        try:
            markup = await tools.render(tab)
        except edgesql.Error as e:
            markup = _error(f"the {tab} tab's queries", e)
    if gen == _render_gen and tab == current_tab:  # a newer redraw or another tab won meanwhile
        document.getElementById(f"panel-{tab}").innerHTML = markup


def select_tab(name: str, focus: bool = False) -> None:
    """Show tab ``name`` (one of TABS)."""
    global current_tab
    current_tab = name
    for t in TABS:
        tab = document.getElementById(f"tab-{t}")
        tab.setAttribute("aria-selected", "true" if t == name else "false")
        tab.tabIndex = 0 if t == name else -1
        document.getElementById(f"panel-{t}").hidden = t != name
    if focus:
        document.getElementById(f"tab-{name}").focus()
    _spawn(render_tab())


def _on_tab_click(event: object) -> None:
    tab = event.target.closest('[role="tab"]')  # type: ignore[attr-defined]
    if tab:
        select_tab(str(tab.id).removeprefix("tab-"))


def _on_tab_key(event: object) -> None:
    # The tablist pattern: arrows move between tabs, Home/End to the first/last.
    moves = {"ArrowRight": 1, "ArrowLeft": -1}
    key = event.key  # type: ignore[attr-defined]
    i = TABS.index(current_tab)
    if key in moves:
        select_tab(TABS[(i + moves[key]) % len(TABS)], focus=True)
    elif key in ("Home", "End"):
        select_tab(TABS[0] if key == "Home" else TABS[-1], focus=True)
    else:
        return
    event.preventDefault()  # type: ignore[attr-defined]


def _start_run(*_args: object) -> None:
    _spawn(run())


run_proxy = create_proxy(_start_run)
document.getElementById("run").addEventListener("click", run_proxy)
document.getElementById("cancel").addEventListener("click", create_proxy(cancel))
document.getElementById("output").addEventListener("click", create_proxy(_on_output_click))
document.getElementById("sql").addEventListener("keydown", create_proxy(_on_key))
document.getElementById("sync-now").addEventListener("click", create_proxy(lambda *_: _spawn(sync_now())))
tablist = document.querySelector('[role="tablist"]')
tablist.addEventListener("click", create_proxy(_on_tab_click))
tablist.addEventListener("keydown", create_proxy(_on_tab_key))
await _load_devtools()
_show_backend()
_spawn(status_loop())
document.getElementById("loading").hidden = True
document.getElementById("console").hidden = False
