"""The SQL console: type SQL, run it against the app's database, see the result.

Runs in Pyodide on console.html. Statements run one by one through edgesql,
exactly as app code would run them; each result is shown as a table, and an
error shows its class, SQLite's code name and message.
"""

import html
import time

import js  # type: ignore[import-not-found]
from pyodide.ffi import create_proxy  # type: ignore[import-not-found]

import edgesql
from edgesql._split import split_statements

DB_NAME = "app.db"
MAX_ROWS_SHOWN = 1000

document = js.document
db = await edgesql.connect(DB_NAME)


def _cell(value: object) -> str:
    if value is None:
        return '<td class="null">NULL</td>'
    if isinstance(value, bytes):
        shown = value[:32].hex(" ") + (" …" if len(value) > 32 else "")
        return f"<td title=\"BLOB, {len(value)} bytes\">x'{html.escape(shown)}'</td>"
    if isinstance(value, int | float):
        return f'<td class="num">{html.escape(repr(value))}</td>'
    return f"<td>{html.escape(str(value))}</td>"


def _table(rs: edgesql.ResultSet) -> str:
    if not rs.columns:
        rowid = f", last rowid {rs.last_insert_rowid}" if rs.last_insert_rowid is not None else ""
        return f'<p class="muted">{rs.rows_affected} row(s) affected{rowid}.</p>'
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rs.columns)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rs.rows[:MAX_ROWS_SHOWN])
    more = len(rs.rows) - MAX_ROWS_SHOWN
    note = (
        f'<p class="muted">{len(rs.rows)} row(s)'
        + (f", first {MAX_ROWS_SHOWN} shown" if more > 0 else "")
        + ".</p>"
    )
    table = f'<table class="result"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    return f'<div class="table-wrap">{table}</div>{note}'


def _error(stmt: str, e: edgesql.Error) -> str:
    name = f" ({e.sqlite_errorname})" if e.sqlite_errorname else ""
    return (
        f'<div class="error" role="alert"><strong>{type(e).__name__}{name}</strong>: {html.escape(str(e))}'
        f'\n<span class="muted">in: {html.escape(stmt[:200])}</span></div>'
    )


async def run(*_args: object) -> None:
    sql = document.getElementById("sql").value
    out = document.getElementById("output")
    status = document.getElementById("status")
    button = document.getElementById("run")
    statements = split_statements(sql)
    if not statements:
        status.textContent = "Nothing to run."
        return
    button.disabled = True
    parts = []
    start = time.perf_counter()
    try:
        for stmt in statements:
            try:
                rs = await db.execute(stmt)
            except edgesql.Error as e:
                parts.append(_error(stmt, e))
                break
            parts.append(f'<section class="panel">{_table(rs)}</section>')
    finally:
        button.disabled = False
    elapsed = (time.perf_counter() - start) * 1000
    out.innerHTML = "".join(parts)
    status.textContent = f"{len(statements)} statement(s) in {elapsed:.2f} ms"


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


_running: set[object] = set()


def _start_run(*_args: object) -> None:
    import asyncio

    task = asyncio.ensure_future(run())
    _running.add(task)  # keep a reference until it is done
    task.add_done_callback(_running.discard)


run_proxy = create_proxy(_start_run)
document.getElementById("run").addEventListener("click", run_proxy)
document.getElementById("sql").addEventListener("keydown", create_proxy(_on_key))
_show_backend()
document.getElementById("loading").hidden = True
document.getElementById("console").hidden = False
