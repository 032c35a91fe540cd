"""The console's devtools tabs: outbox, clock, schema, rejected writes and conflicts, read from the database.

``console.py`` loads this module (with the app's ``cells.py``, which turns
keys, encoded cells and clock stamps into text) and calls
:meth:`Devtools.render` for the tab on screen. Everything shown is a plain
query on sync's own tables (``_edgesql_*``), so what you see is exactly what
the device holds::

    tools = Devtools(db)
    html = await tools.render("outbox")

Live queries do not see changes to ``_edgesql_*`` tables (the worker's
authorizer leaves them out of change notifications), so the console redraws
the open tab when the sync status moves (pending count, last sync, rejected
count, schema version) and after each statement it runs.
"""

from __future__ import annotations

import html
import json
from typing import Any

from cells import cells_text, hlc_text, key_text, value_text  # type: ignore[import-not-found]

import edgesql

__all__ = ["TABS", "Devtools"]

TABS = ("sql", "outbox", "clock", "schema", "rejected", "conflicts")
MAX_ROWS = 200  # newest first; the count above the table says how many there are


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _table(head: list[str], rows: list[str], klass: str = "data") -> str:
    th = "".join(f"<th>{esc(h)}</th>" for h in head)
    return f'<div class="table-wrap"><table class="{klass}"><thead><tr>{th}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def _cells(cells: str) -> str:
    return "<br>".join(f'<span class="col">{esc(col)}</span> = {esc(val)}' for col, val in cells_text(cells))


def _value(enc: str | None) -> str:
    """An encoded cell as stored (JSON text) as SQL-looking text; NULL when absent."""
    return value_text(json.loads(enc)) if enc else "NULL"


def _empty(text: str) -> str:
    return f'<p class="muted empty-note">{text}</p>'


class Devtools:
    """Renders one devtools tab from the database's sync tables."""

    def __init__(self, db: edgesql.Connection) -> None:
        self.db = db

    async def _has_sync_tables(self) -> bool:
        rs = await self.db.execute("SELECT count(*) FROM sqlite_schema WHERE name = '_edgesql_state'")
        return bool(rs.scalar())

    async def render(self, tab: str) -> str:
        """The HTML of ``tab`` (one of :data:`TABS` but ``sql``)."""
        if not await self._has_sync_tables():
            return _empty(
                "This database has not synced yet, so it has no sync tables: "
                "open it with <code>sync_url</code> (the app does) and let it reach the server once."
            )
        return await getattr(self, f"_{tab}")()

    async def _outbox(self) -> str:
        total = (await self.db.execute("SELECT count(*) FROM _edgesql_outbox")).scalar()
        rs = await self.db.execute(
            "SELECT seq, tbl, pk, hlc, cells, txend FROM _edgesql_outbox ORDER BY seq DESC LIMIT ?",
            (MAX_ROWS,),
        )
        intro = (
            f'<p class="summary"><strong id="outbox-total">{total}</strong> change(s) waiting for the primary'
            + (f", newest {MAX_ROWS} shown" if total > MAX_ROWS else "")
            + ". One row per written row; <em>tx end</em> marks the last change of a transaction "
            "(pages are cut there, so other devices never see half a transaction).</p>"
        )
        if not rs.rows:
            return intro + _empty("Nothing to send: every local change has reached the primary.")
        rows = [
            f'<tr><td class="num">{r["seq"]}</td><td>{esc(r["tbl"])}</td><td>{esc(key_text(r["pk"]))}</td>'
            f'<td class="stamp" title="{r["hlc"]}">{esc(hlc_text(r["hlc"]))}</td><td>{_cells(r["cells"])}</td>'
            f"<td>{'✓' if r['txend'] else ''}</td></tr>"
            for r in rs.rows
        ]
        return intro + _table(["seq", "table", "key", "stamp", "cells", "tx end"], rows)

    async def _clock(self) -> str:
        st = (
            await self.db.execute(
                "SELECT replica, hlc, rseq, cursor, schema_version, format, last_synced_at, applying "
                "FROM _edgesql_state WHERE id = 1"
            )
        ).rows[0]
        state = "".join(
            f"<dt>{esc(k)}</dt><dd>{v}</dd>"
            for k, v in [
                ("replica", f"<code>{esc(st['replica'])}</code>"),
                (
                    "hlc",
                    f'{esc(hlc_text(st["hlc"]))} <span class="muted">({st["hlc"]}: ms since epoch × 2¹⁶ + counter)</span>',
                ),
                ("cursor", f'{st["cursor"]} <span class="muted">(primary\'s change seq pulled up to)</span>'),
                (
                    "acked seq",
                    f'{st["rseq"]} <span class="muted">(highest outbox seq the primary acknowledged)</span>',
                ),
                ("schema", f"v{st['schema_version']} · format {st['format']}"),
                ("last sync", esc(st["last_synced_at"] or "never")),
            ]
        )
        per_table = await self.db.execute(
            "SELECT tbl, count(*) AS cells, count(DISTINCT pk) AS rows_, "
            "count(*) FILTER (WHERE col = '_edgesql_exists' AND val = '[\"i\",\"0\"]') AS deleted "
            "FROM _edgesql_clock GROUP BY tbl ORDER BY tbl"
        )
        total = sum(r["cells"] for r in per_table.rows)
        sizes = [
            f'<tr><td>{esc(r["tbl"])}</td><td class="num">{r["rows_"]}</td>'
            f'<td class="num">{r["deleted"]}</td><td class="num">{r["cells"]}</td></tr>'
            for r in per_table.rows
        ]
        recent = await self.db.execute(
            "SELECT tbl, pk, col, hlc, replica, val FROM _edgesql_clock ORDER BY hlc DESC LIMIT 25"
        )
        recent_rows = [
            f"<tr><td>{esc(r['tbl'])}</td><td>{esc(key_text(r['pk']))}</td><td>{esc(r['col'])}</td>"
            f"<td>{esc(value_text(json.loads(r['val'])))}</td>"
            f'<td class="stamp" title="{r["hlc"]}">{esc(hlc_text(r["hlc"]))}</td><td><code>{esc(r["replica"][:8])}</code></td></tr>'
            for r in recent.rows
        ]
        return (
            f'<dl class="facts">{state}</dl>'
            f'<h3>The clock: <span id="clock-size">{total:,}</span> cell(s)</h3>'
            '<p class="muted">The winning (stamp, replica) and value of every cell this device has seen; '
            "a deleted row keeps its cells (a tombstone), so a late update cannot bring it back.</p>"
            + (
                _table(["table", "rows", "deleted", "cells"], sizes)
                if sizes
                else _empty("The clock is empty.")
            )
            + "<h3>Latest cells</h3>"
            + (
                _table(["table", "key", "column", "value", "stamp", "replica"], recent_rows)
                if recent_rows
                else _empty("No cells yet.")
            )
        )

    async def _schema(self) -> str:
        rs = await self.db.execute("SELECT version, doc FROM _edgesql_schema ORDER BY version DESC LIMIT 1")
        local = await self.db.execute(
            "SELECT name, type FROM sqlite_schema WHERE name LIKE 'local\\_%' ESCAPE '\\' "
            "AND type IN ('table', 'trigger') ORDER BY type, name"
        )
        local_html = (
            "<h3>Local only (not synced)</h3><p>"
            + ", ".join(
                f'<code>{esc(r["name"])}</code> <span class="muted">{r["type"]}</span>' for r in local.rows
            )
            + "</p>"
            if local.rows
            else ""
        )
        if not rs.rows:
            return _empty("No schema document yet: the first sync fetches it from the primary.") + local_html
        version, doc = rs.rows[0]
        doc = json.loads(doc)
        tables = []
        for t in doc.get("tables", []):
            cols = ", ".join(
                f"<b>{esc(c['name'])}</b>" if c["name"] in t["pk"] else esc(c["name"]) for c in t["columns"]
            )
            tables.append(
                f"<tr><td><code>{esc(t['name'])}</code></td><td>{esc(', '.join(t['pk']))}</td><td>{cols}</td></tr>"
            )
        migrations = "".join(
            f"<details><summary>{m['version']:04d}_{esc(m['name'])}.sql</summary><pre>{esc(m['sql'])}</pre></details>"
            for m in doc.get("migrations", [])
        )
        return (
            f'<p class="summary">Schema <strong id="schema-version">v{version}</strong>, from the primary: '
            f"{len(tables)} synced table(s). Key columns in bold.</p>"
            + _table(["table", "key", "columns"], tables)
            + f"<h3>Migrations</h3>{migrations}"
            + local_html
        )

    async def _rejected(self) -> str:
        rs = await self.db.execute(
            "SELECT seq, tbl, pk, cells, code, reason, at FROM _edgesql_rejected ORDER BY seq DESC LIMIT ?",
            (MAX_ROWS,),
        )
        intro = (
            '<p class="summary">Writes the primary refused. Each row went back to the primary\'s version '
            "plus this device's other pending writes; the refused values are kept here.</p>"
        )
        if not rs.rows:
            return intro + _empty("Nothing was rejected.")
        rows = [
            f'<tr><td class="num">{r["seq"]}</td><td>{esc(r["tbl"])}</td><td>{esc(key_text(r["pk"]))}</td>'
            f'<td><span class="badge bad">{esc(r["code"])}</span></td><td>{esc(r["reason"])}</td>'
            f"<td>{_cells(r['cells'])}</td><td>{esc(r['at'])}</td></tr>"
            for r in rs.rows
        ]
        return intro + _table(["seq", "table", "key", "code", "reason", "cells", "at"], rows)

    async def _conflicts(self) -> str:
        has = await self.db.execute("SELECT count(*) FROM sqlite_schema WHERE name = '_edgesql_conflicts'")
        intro = (
            '<p class="summary">This device\'s edits that lost: <em>overwritten</em> by a later write '
            "on another device, <em>deleted</em> with the row by a delete that won, or <em>rejected</em> "
            "by the primary. Read them from Python with <code>await db.conflicts()</code>; "
            "<code>db.dismiss_conflicts(ids)</code> marks them seen (dismissed ones are greyed).</p>"
        )
        if not has.scalar():
            return intro + _empty("No edit of this device has lost.")
        rs = await self.db.execute(
            "SELECT id, at, kind, tbl, pk, col, mine, theirs, writer, hlc, reason, row, dismissed "
            "FROM _edgesql_conflicts ORDER BY id DESC LIMIT ?",
            (MAX_ROWS,),
        )
        if not rs.rows:
            return intro + _empty("No edit of this device has lost.")

        def lost(r: Any) -> str:
            if r["kind"] == "overwritten":
                return (
                    f'<span class="col">{esc(r["col"])}</span>: {esc(_value(r["mine"]))} '
                    f"&rarr; {esc(_value(r['theirs']))}"
                )
            row = json.loads(r["row"]) if r["row"] else {}
            had = "<br>".join(
                f'<span class="col">{esc(c)}</span> = {esc(value_text(v))}' for c, v in row.items()
            )
            return (esc(r["reason"]) + ("<br>" if had and r["reason"] else "") + had) or "&mdash;"

        rows = [
            f'<tr class="{"muted" if r["dismissed"] else ""}"><td class="num">{r["id"]}</td>'
            f'<td><span class="badge {"bad" if r["kind"] == "rejected" else "warn"}">{esc(r["kind"])}</span></td>'
            f"<td>{esc(r['tbl'])}</td><td>{esc(key_text(r['pk']))}</td><td>{lost(r)}</td>"
            f"<td>{esc(r['writer'] or '')}</td><td>{esc(hlc_text(r['hlc']) if r['hlc'] else '')}</td>"
            f"<td>{esc(r['at'])}</td></tr>"
            for r in rs.rows
        ]
        head = ["#", "kind", "table", "key", "this device had → what won", "winner", "won at", "recorded"]
        return intro + _table(head, rows)
