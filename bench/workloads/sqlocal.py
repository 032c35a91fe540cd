"""Contender: SQLocal from page JavaScript, what a JavaScript developer picks for SQL (issue 7).

SQLocal (npm ``sqlocal``, a devDependency) runs SQLite-Wasm in its own
worker on the ``opfs`` VFS. Its worker is meant to be bundled by Vite; here
esbuild (also a devDependency) bundles SQLocal's client (bench/sqlocal/client.js)
and its worker into ``build/sqlocal/`` at bench time (skipped when up to date),
with the ``sqlite3.wasm`` and OPFS async proxy of the SQLite-Wasm SQLocal
itself depends on copied beside the worker. Playwright routing serves that
folder under ``/bench-sqlocal/`` on serve.py's origin with serve.py's headers
(COOP/COEP: the ``opfs`` VFS needs SharedArrayBuffer), so nothing is added
to web/. The fast-path benchmark page imports the client and runs the same
queries on the same rows as the other SQL contenders, timed with
``performance.now()``. SQLocal falls back to an in-memory database silently:
the run fails unless it reports ``storageType: 'opfs'`` and the tables
written on the setup page are still there. Ratios to the floor are in the
side-by-side section.
"""

from __future__ import annotations

import json
import mimetypes
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..browser import FAST_PATH, HERE, BenchError, BenchPage
from ..config import Config
from ..contenders import latency_rows, rate_row
from ..model import Section, Table
from ..shapes import (
    GROUP_ROWS,
    INSERT_SQL,
    WRITES_TABLE,
    point_keys,
    point_sql,
    points_statements,
    range_check,
    range_keys,
    range_sql,
    range_statements,
    range_warmup,
    write_params,
    writes_statements,
)
from ..stats import median, ratio

__all__ = ["SQLOCAL", "Sqlocal", "build"]

ROOT = HERE.parent
SOURCE = HERE / "sqlocal"
OUT = ROOT / "build" / "sqlocal"
PACKAGE = ROOT / "node_modules" / "sqlocal"
ESBUILD = ROOT / "node_modules" / ".bin" / "esbuild"
URL_DIR = "/bench-sqlocal/"
#: The SQLocal database file in the origin private file system (beside edgesql's sahpool).
DB_PATH = "edgesql-bench-sqlocal.sqlite3"
#: Set on a browser context once its /bench-sqlocal/ requests are routed.
ROUTED_FLAG = "_edgesql_bench_sqlocal_routed"

OPS = {
    "point": "point read: `await db.sql(sql, id)`",
    "range": f"range read: {GROUP_ROWS} rows via an index, joined",
    "write_normal": "single write: `await db.sql(insert, ...row)`, synchronous=NORMAL",
    "write_full": "single write, synchronous=FULL (SQLite's default)",
    "burst": "burst: single writes back to back, synchronous=NORMAL (per write)",
}


def _version() -> str:
    return str(json.loads((PACKAGE / "package.json").read_text())["version"])


def build() -> Path:
    """Bundle SQLocal's client and worker with esbuild into build/sqlocal/, unless up to date."""
    if not PACKAGE.is_dir() or not ESBUILD.exists():
        raise BenchError("sqlocal or esbuild is not installed: run `npm ci` (make install)")
    inputs = [*SOURCE.glob("*.js"), PACKAGE / "package.json", ROOT / "package-lock.json", Path(__file__)]
    outputs = [OUT / n for n in ("client.js", "worker.js", "sqlite3.wasm", "sqlite3-opfs-async-proxy.js")]
    if all(p.exists() for p in outputs) and min(p.stat().st_mtime for p in outputs) > max(
        p.stat().st_mtime for p in inputs
    ):
        return OUT
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    common = ["--bundle", "--format=esm", "--platform=browser", "--target=es2022", "--log-level=warning"]
    for entry, name in ((SOURCE / "client.js", "client"), (SOURCE / "worker.js", "worker")):
        cmd = [
            str(ESBUILD),
            str(entry),
            *common,
            f"--outfile={OUT / name}.js",
            f"--metafile={OUT / name}.meta.json",
        ]
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
        if done.returncode:
            raise BenchError(f"esbuild failed on {entry}: {done.stderr}")
    # The SQLite-Wasm the worker bundle holds (SQLocal's own, not edgesql's) finds its wasm and
    # its OPFS proxy relative to the bundle: copy them from the very package esbuild bundled.
    meta = json.loads((OUT / "worker.meta.json").read_text())
    found = [k for k in meta["inputs"] if k.endswith("@sqlite.org/sqlite-wasm/dist/index.mjs")]
    if len(found) != 1:
        raise BenchError(f"cannot tell which SQLite-Wasm the SQLocal worker bundles: {found}")
    dist = (ROOT / found[0]).parent
    for name in ("sqlite3.wasm", "sqlite3-opfs-async-proxy.js"):
        shutil.copy(dist / name, OUT / name)
    (OUT / "sqlite-wasm-version.txt").write_text(
        json.loads((dist.parent / "package.json").read_text())["version"] + "\n"
    )
    return OUT


def _route(page: BenchPage) -> str:
    """Serve build/sqlocal/ under /bench-sqlocal/ on the page's origin with serve.py's headers;
    returns the client's URL."""
    url = urlsplit(page.page.url)
    base = f"{url.scheme}://{url.netloc}"
    context = page.page.context
    if not getattr(context, ROUTED_FLAG, False):
        # serve.py's headers (COOP/COEP/CORP...) taken from a page it serves.
        got = context.request.get(f"{base}/console.html")
        headers = {k: v for k, v in got.headers.items() if k.lower() not in ("content-length", "etag")}
        headers["cache-control"] = "no-store"

        def serve(route: Any) -> None:
            name = urlsplit(route.request.url).path.removeprefix(URL_DIR)
            file = OUT / name
            if "/" in name or not file.is_file():
                route.fulfill(status=404, body="not found")
                return
            kind = "application/wasm" if name.endswith(".wasm") else mimetypes.guess_type(name)[0]
            route.fulfill(
                status=200,
                headers=headers | {"content-type": kind or "application/octet-stream"},
                body=file.read_bytes(),
            )

        context.route(f"**{URL_DIR}*", serve)
        setattr(context, ROUTED_FLAG, True)
    return f"{base}{URL_DIR}client.js"


def _open(page: BenchPage) -> dict[str, Any]:
    """Import the client into the page and open the database; refuse anything but OPFS."""
    client = _route(page)
    info: dict[str, Any] = page.js(
        "async ([url, path]) => { await import(url); return edgesqlSqlocal.open(path); }", [client, DB_PATH]
    )
    if info.get("storageType") != "opfs" or info.get("databasePath") != DB_PATH:
        raise BenchError(f"SQLocal did not open its database on OPFS (silent memory fallback?): {info}")
    return info


def _close(page: BenchPage) -> None:
    page.js("() => edgesqlSqlocal.close()")


class Sqlocal:
    """Workload: SQLocal reads and writes from JavaScript on the fast-path page."""

    key = "sqlocal"
    title = "Contender: SQLocal from JavaScript"
    paths: tuple[str, ...] = (FAST_PATH,)

    def prepare(self, page: BenchPage, cfg: Config) -> None:
        build()
        _open(page)
        try:
            if not self._tables_ok(page, cfg):
                page.js("(s) => edgesqlSqlocal.run(s)", points_statements(cfg) + range_statements(cfg))
                if not self._tables_ok(page, cfg):
                    raise BenchError("SQLocal: the point and range tables are not as written")
        finally:
            _close(page)

    def _tables_ok(self, page: BenchPage, cfg: Config) -> bool:
        sql, want = range_check(cfg)
        t = point_sql(cfg).split(" FROM ")[1].split()[0]
        try:
            got = page.js("(s) => edgesqlSqlocal.row(s)", sql)
            points = page.js("(s) => edgesqlSqlocal.row(s)", f"SELECT count(*), max(id) FROM {t}")
        except Exception:
            return False  # no such table yet
        return got == want and points == [cfg.table_rows, cfg.table_rows]

    def measure(self, page: BenchPage, cfg: Config, load: int) -> dict[str, Any]:
        info = _open(page)
        try:
            # Written on the setup page: still there only if the database really persisted.
            if not self._tables_ok(page, cfg):
                raise BenchError(f"SQLocal's tables did not persist between page loads: {info}")
            out: dict[str, Any] = {"info": info}
            keys = [[k] for k in point_keys(cfg, load, cfg.iterations)]
            out["point"] = page.js(
                "([s, p, w]) => edgesqlSqlocal.reads(s, p, w, 1)", [point_sql(cfg), keys, cfg.warmup]
            )
            groups = range_keys(cfg, load, cfg.range_iterations)
            out["range"] = page.js(
                "([s, p, w, e]) => edgesqlSqlocal.reads(s, p, w, e)",
                [range_sql(cfg), groups, range_warmup(cfg), GROUP_ROWS],
            )
            for op in ("point", "range"):
                if out[op]["wrong"]:
                    raise BenchError(f"SQLocal: {out[op]['wrong']} {op} reads returned the wrong rows")
            for op, sync, n in (
                ("write_normal", "NORMAL", cfg.write_iterations),
                ("write_full", "FULL", cfg.write_iterations),
                ("burst", "NORMAL", cfg.burst_writes),
            ):
                r = page.js(
                    "([t, s, y, i, r]) => edgesqlSqlocal.writes(t, s, y, i, r)",
                    [WRITES_TABLE, writes_statements(), sync, INSERT_SQL, write_params(n)],
                )
                if r["count"] != n:
                    raise BenchError(f"SQLocal holds {r['count']} rows after {n} writes")
                out[op] = r
            bulk = page.js(
                "([t, s, i, n]) => edgesqlSqlocal.bulk(t, s, i, n)",
                [WRITES_TABLE, writes_statements(), INSERT_SQL, cfg.bulk_rows],
            )
            if bulk["count"] != cfg.bulk_rows:
                raise BenchError(f"SQLocal bulk left {bulk['count']} rows, expected {cfg.bulk_rows}")
            out["bulk"] = bulk
            page.js("(s) => edgesqlSqlocal.run(s)", writes_statements())  # leave the file small
            out["info_after"] = page.js("() => edgesqlSqlocal.db.getDatabaseInfo()")
            if out["info_after"].get("storageType") != "opfs":
                raise BenchError(f"SQLocal left OPFS during the run: {out['info_after']}")
        finally:
            _close(page)
        return out

    def summarize(self, loads: dict[str, list[dict[str, Any]]], cfg: Config) -> Section:
        data = loads.get(FAST_PATH, [])
        if not data:
            return Section(self.key, self.title, _method(cfg, {}), [], notes=["not run"])
        figures, samples, rows = latency_rows(data, OPS, "sqlocal", "SQLocal (JS)")
        burst_s = median([d["burst"]["total_us"] for d in data]) / 1e6
        bulk_s = median([d["bulk"]["ms"] for d in data]) / 1000
        figures["sqlocal.burst.writes_per_s"] = ratio(cfg.burst_writes, burst_s)
        figures["sqlocal.bulk.rows_per_s"] = ratio(cfg.bulk_rows, bulk_s)
        figures["sqlocal.open_ms"] = median([d["info"]["open_ms"] for d in data])
        chunk = data[0]["bulk"]["chunk"]
        rows += [
            rate_row(f"burst of {cfg.burst_writes:,} writes, whole", burst_s, cfg.burst_writes, "writes"),
            rate_row(
                f"bulk: {cfg.bulk_rows:,} INSERTs in one transaction (`batch()` of {chunk:,})",
                bulk_s,
                cfg.bulk_rows,
            ),
            [
                "open: new worker, SQLite-Wasm start, OPFS file open, first query",
                f"{figures['sqlocal.open_ms']:.0f} ms",
                "",
                "",
            ],
        ]
        table = Table(
            columns=["operation", "p50", "p99", "mean / rate"],
            rows=rows,
            caption=f"Fast-path page, page JavaScript. Medians over {len(data)} page load(s).",
        )
        return Section(
            self.key, self.title, _method(cfg, data[0]["info"]), [table], [], figures, samples=samples
        )


def _method(cfg: Config, info: dict[str, Any]) -> list[str]:
    try:
        wasm = (OUT / "sqlite-wasm-version.txt").read_text().strip()
    except OSError:
        wasm = "?"
    pragmas = info.get("pragmas", {})
    return [
        f"SQLocal {_version()} (npm), its client and worker bundled by esbuild (bench/sqlocal/), on "
        f"SQLite-Wasm {wasm} (SQLocal's own dependency; SQLite {info.get('version', '?')}), `opfs` VFS "
        f"in SQLocal's worker, database `{DB_PATH}` in the page's origin private file system "
        f"(checked on every load: `getDatabaseInfo().storageType` is `opfs` and the tables written on the "
        f"setup page are there). SQLocal's defaults: journal_mode={pragmas.get('journal_mode', '?')}, "
        f"synchronous={pragmas.get('synchronous', '?')} (2 = FULL), page_size={pragmas.get('page_size', '?')}; "
        "the `opfs` VFS has no WAL here.",
        f"Same tables, rows, keys and SQL as the other SQL contenders (bench/shapes.py): {cfg.iterations:,} "
        f"point reads after {cfg.warmup:,} untimed, {cfg.range_iterations:,} range reads after "
        f"{range_warmup(cfg):,}, each one `await db.sql(...)` (a message to SQLocal's worker and a Web "
        "Lock per query), timed with `performance.now()` in page JavaScript.",
        f"**single write**: {cfg.write_iterations:,} autocommit INSERTs into an emptied table, one "
        "`db.sql()` each, with `PRAGMA synchronous=NORMAL` and then FULL (rollback journal: both sync the "
        f"journal and the database at each commit; FULL syncs the journal once more). **burst**: "
        f"{cfg.burst_writes:,} such writes back to back (NORMAL). **bulk**: {cfg.bulk_rows:,} INSERTs in "
        "one `db.transaction()`, sent as `batch()` calls of a few thousand statements (one `batch()` of "
        "100k throws a RangeError in SQLocal 0.18).",
    ]


SQLOCAL = Sqlocal()
