"""Crashing the browser in the middle of write bursts loses no acknowledged write.

One browser profile (its OPFS kept on disk) writes bursts of rows while it
syncs with serve.py. In the middle of each burst the browser dies: either its
renderer (CDP ``Page.crash``: the page and its DB worker are gone mid-write)
or the whole browser (SIGKILL to every process of the profile). Each write's
id is reported with ``console.log`` after its ``await`` returned, so the test
knows, outside the page, which writes were acknowledged.

After each restart (``launch_persistent_context`` on the same profile):

* the database opens and ``PRAGMA integrity_check`` is ``ok``;
* every acknowledged write is there (writes whose ``await`` never returned
  may or may not be: both are correct);
* the outbox matches the data: every row has its outbox entry or is in the
  primary's change log (acknowledged by it), every outbox entry has its row,
  none is there twice, and the replica id did not change.

At the end sync finishes and the primary holds exactly the browser's rows,
each once. The default run crashes 5 times; ``--slow`` 50 times.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import OutsideRequests, launch_options, open_console, run_py, start_server
from tests.sync.primaries import PrimaryServer

pytestmark = pytest.mark.browser

TOKEN = "crash-token-5d1e0b7a93"
SCHEMA = "CREATE TABLE items (id TEXT PRIMARY KEY, burst INTEGER NOT NULL, body TEXT, n INTEGER);\n"

CONNECT = f"""
import edgesql, json, js
db = await edgesql.connect("crash.db", sync_url="/sync", auth_token={TOKEN!r}, sync_interval=0.2)
"""

#: Inserts rows of burst ``b`` forever (until the browser dies); logs ``ACK <id>`` once each await returned.
BURST = """
import random
async def burst(b, seed):
    rnd = random.Random(seed)
    i = 0
    while True:
        kind = rnd.random()
        if kind < 0.6:
            ids = [f"r{b}-{i}"]
            await db.execute("INSERT INTO items VALUES (?, ?, ?, ?)", (ids[0], b, "x" * rnd.randint(0, 2000), i))
        elif kind < 0.8:
            ids = [f"r{b}-{i + k}" for k in range(5)]
            await db.executemany("INSERT INTO items VALUES (?, ?, ?, ?)", [(k, b, "batch", i) for k in ids])
        else:
            ids = [f"r{b}-{i + k}" for k in range(3)]
            async with db.transaction() as tx:
                for k in ids:
                    await tx.execute("INSERT INTO items VALUES (?, ?, ?, ?)", (k, b, "tx", i))
        for k in ids:
            js.console.log("ACK " + k)
        i += len(ids)
"""

#: One snapshot of the replica: rows, outbox keys, replica id, integrity (in one transaction).
SNAPSHOT = """
async with db.transaction():
    ids = [r[0] for r in (await db.execute("SELECT id FROM items")).rows]
    outbox = [list(r) for r in (await db.execute(
        "SELECT pk, count(*) FROM _edgesql_outbox WHERE tbl = 'items' GROUP BY pk")).rows]
    replica = (await db.execute("SELECT replica FROM _edgesql_state")).scalar()
integrity = (await db.execute("PRAGMA integrity_check")).scalar()
json.dumps({"ids": ids, "outbox": outbox, "replica": replica, "integrity": integrity})
"""


def key(row_id: str) -> str:
    """The canonical key edgesql gives a TEXT primary key (see sync/codec.py)."""
    return json.dumps(["t" + row_id.encode().hex().upper()])


@pytest.fixture
def crash_server(tmp_path: Path) -> Iterator[PrimaryServer]:
    schema = tmp_path / "schema.sql"
    schema.write_text(SCHEMA)
    server = start_server(tmp_path / "data", "--schema", str(schema), "--auth-token", TOKEN)
    yield PrimaryServer("sqlite", server, None)
    server.stop()


def profile_pids(profile: Path) -> list[int]:
    """Every process of the Chromium running on ``profile`` (browser, renderers, utilities)."""
    flag = f"--user-data-dir={profile}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if flag in args:
            pids.append(int(entry.name))
    return pids


def kill_browser(profile: Path) -> None:
    """SIGKILL every process of the profile's browser, and wait until they are gone."""
    pids = profile_pids(profile)
    assert pids, "no Chromium process found for the profile"
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while profile_pids(profile):
        assert time.monotonic() < deadline, "Chromium survived SIGKILL"
        time.sleep(0.05)


def crash_renderer(ctx: Any, page: Any) -> None:
    """CDP Page.crash: the page's renderer (and its DB worker) dies at once."""
    crashed: list[bool] = []
    page.on("crash", lambda _: crashed.append(True))
    cdp = ctx.new_cdp_session(page)
    try:
        cdp.send("Page.crash", timeout=1000)  # never answered: the target dies under the call
    except Exception:
        pass
    deadline = time.monotonic() + 10
    while not crashed:
        assert time.monotonic() < deadline, "the renderer did not crash"
        page.wait_for_timeout(20)


def check_replica(page: Any, primary: PrimaryServer, acked: set[str], replica: str | None) -> dict[str, Any]:
    """The invariants after a restart; returns the snapshot."""
    snap = run_py(page, SNAPSHOT)
    assert snap["integrity"] == "ok", snap["integrity"]
    ids = set(snap["ids"])
    assert len(ids) == len(snap["ids"])
    lost = acked - ids
    assert not lost, f"{len(lost)} acknowledged writes are gone, e.g. {sorted(lost)[:5]}"
    if replica is not None:
        assert snap["replica"] == replica, "the replica took a new id"
    outbox = {pk: n for pk, n in snap["outbox"]}
    assert all(n == 1 for n in outbox.values()), "a write is in the outbox twice"
    # Read after the snapshot: the primary's log only grows, the outbox only shrinks after it.
    on_primary: dict[str, int] = dict(
        primary.query(  # type: ignore[arg-type]
            "SELECT pk, count(*) FROM _edgesql_changes WHERE replica = ? AND tbl = 'items' GROUP BY pk",
            (snap["replica"],),
        )
    )
    assert all(n == 1 for n in on_primary.values()), "the primary applied a write twice"
    keys = {key(i): i for i in ids}
    missing = [i for k, i in keys.items() if k not in outbox and k not in on_primary]
    assert not missing, f"{len(missing)} rows have no outbox entry and never reached the primary"
    orphans = [k for k in outbox if k not in keys]
    assert not orphans, f"{len(orphans)} outbox entries have no row"
    return snap


def run_crashes(
    playwright: Any, outside: OutsideRequests, primary: PrimaryServer, profile: Path, crashes: int, seed: int
) -> dict[str, Any]:
    rnd = random.Random(seed)
    acked: set[str] = set()
    replica: str | None = None
    figures: dict[str, Any] = {"crashes": 0, "renderer": 0, "browser": 0, "acked": 0, "unacked_present": 0}
    for b in range(crashes + 1):
        ctx = playwright.chromium.launch_persistent_context(str(profile), **launch_options())
        outside.watch(ctx)
        page = open_console(ctx.new_page(), primary.url)
        seen: list[str] = []
        page.on(
            "console", lambda m, seen=seen: seen.append(m.text[4:]) if m.text.startswith("ACK ") else None
        )
        run_py(page, CONNECT)
        snap = check_replica(page, primary, acked, replica)
        replica = snap["replica"]
        figures["unacked_present"] += len(set(snap["ids"]) - acked)
        acked |= set(snap["ids"])  # present now: from here on they must stay
        if b == crashes:
            break
        run_py(page, BURST)
        page.evaluate(f"() => {{ pyodide.runPythonAsync('await burst({b}, {seed * 1000 + b})'); }}")
        target = rnd.randint(20, 400)
        deadline = time.monotonic() + 60
        while len(seen) < target:
            assert time.monotonic() < deadline, f"only {len(seen)} writes acknowledged in 60 s"
            page.wait_for_timeout(10)
        if b % 2 == 0:
            crash_renderer(ctx, page)
            figures["renderer"] += 1
        else:
            kill_browser(profile)
            figures["browser"] += 1
        figures["crashes"] += 1
        figures["acked"] += len(seen)
        acked |= set(seen)
        try:
            ctx.close()
        except Exception:
            pass  # the browser is gone already
    # Everything reaches the primary, each write once.
    deadline = time.monotonic() + 60
    while run_py(page, "(await db.sync_status()).pending") != 0:
        assert time.monotonic() < deadline, "the outbox did not drain"
        page.wait_for_timeout(100)
    ids = set(run_py(page, "json.dumps([r[0] for r in (await db.execute('SELECT id FROM items')).rows])"))
    on_primary = primary.query("SELECT id FROM items")
    assert sorted(r[0] for r in on_primary) == sorted(ids)
    changes = primary.query(
        "SELECT count(*), count(DISTINCT pk) FROM _edgesql_changes WHERE replica = ?", (replica,)
    )
    assert changes == [(len(ids), len(ids))]
    assert acked <= ids
    ctx.close()
    figures["rows"] = len(ids)
    print("RELIABILITY", json.dumps({"crash": figures}))
    return figures


def test_crashes_mid_write_lose_no_acknowledged_write(
    playwright: Any, outside: OutsideRequests, crash_server: PrimaryServer, tmp_path: Path
) -> None:
    run_crashes(playwright, outside, crash_server, tmp_path / "profile", crashes=5, seed=1)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_crashes_mid_write_lose_no_acknowledged_write_long(
    playwright: Any, outside: OutsideRequests, crash_server: PrimaryServer, tmp_path: Path
) -> None:
    run_crashes(playwright, outside, crash_server, tmp_path / "profile", crashes=50, seed=2)
