"""SIGKILL the primary in the middle of a push: no page is half applied, and the client resumes.

A CPython replica pushes pages of 5,000 changes to serve.py. While a page is
in flight (a seeded random moment after it was sent), serve.py gets SIGKILL —
and, under ``--primary d1-local``, so do Miniflare and workerd, which would
otherwise shut down cleanly when serve.py's pipe closes. serve.py is then
restarted on the same port and data, and before the client resumes the test
reads the primary's own database file:

* ``PRAGMA integrity_check`` is ``ok``;
* every page that was sent is in the change log whole or not at all (the
  embedded primary applies a request in one transaction, D1 a page in one
  ``db.batch``);
* the app's table and the clock agree with the change log (each stored insert
  has its row and its four cells, and nothing else is there).

Then the client syncs again, and the primary ends with every change exactly
once. Twice per primary in the default run, ten times with ``--slow``.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from tests.aio import run
from tests.conftest import start_server
from tests.sync.primaries import PrimaryServer, worker_url

import edgesql
from edgesql.sync.status import SyncError
from edgesql.sync.transport import HttpTransport, Response

TOKEN = "kill-token-2b8e61f0c4"
SCHEMA = "CREATE TABLE items (id TEXT PRIMARY KEY, grp INTEGER NOT NULL, body TEXT, n INTEGER);\n"
#: Changes a replica makes per round: two pages of 5,000, each of two transactions.
ROUND = 10_000
TX = 2_500
#: Cells per stored insert: grp, body, n and _edgesql_exists.
CELLS = 4


class Primary:
    """serve.py that can be killed (with its Miniflare) and restarted on the same port and data."""

    def __init__(self, kind: str, data: Path, schema: Path) -> None:
        self.kind = kind
        self.args = ("--primary", kind, "--schema", str(schema), "--auth-token", TOKEN)
        self.server = start_server(data, *self.args, timeout=90)
        self.port = int(self.server.url.rsplit(":", 1)[1])

    @property
    def view(self) -> PrimaryServer:
        return PrimaryServer(self.kind, self.server, worker_url(self.server))

    def miniflare_pid(self) -> int | None:
        for line in self.server.log:
            m = re.search(r"\(Miniflare, pid (\d+)\)", line)
            if m:
                return int(m.group(1))
        return None

    def kill(self) -> None:
        """SIGKILL serve.py and, under d1-local, the process group of node and workerd."""
        node = self.miniflare_pid()
        if node is not None:
            os.killpg(node, signal.SIGKILL)  # at once, not after serve.py's pipe closes
        self.server.proc.kill()
        if node is not None:
            deadline = time.monotonic() + 10
            while _group_alive(node):
                assert time.monotonic() < deadline, "workerd survived SIGKILL"
                time.sleep(0.05)

    def restart(self) -> None:
        self.server.kill()  # reaps it (already dead) and closes its pipe
        self.server = start_server(self.server.data, *self.args, port=self.port, timeout=90)

    def stop(self) -> None:
        self.server.stop()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


class KillDuringPush:
    """A real transport that remembers the pages it sent and, once armed, has the primary
    killed at a random moment after the next page is sent (before its answer comes)."""

    def __init__(self, primary: Primary, rnd: random.Random) -> None:
        self.inner = HttpTransport(timeout=120)
        self.primary = primary
        self.rnd = rnd
        self.pages: list[tuple[int, int]] = []
        self.armed = False
        self.killed_after: float | None = None
        self.killed_page = (0, 0)

    async def request(self, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> Response:
        if method == "POST" and body:
            seqs = [c[0] for c in json.loads(body)["changes"]]
            if seqs:
                self.pages.append((seqs[0], seqs[-1]))
                if self.armed:
                    self.armed = False
                    self.killed_page = self.pages[-1]
                    delay = self.killed_after = self.rnd.uniform(0.0, 0.6)
                    asyncio.get_running_loop().call_later(delay, self.primary.kill)
        return await self.inner.request(method, url, body, headers)


def check_primary(view: PrimaryServer, replica: str, pages: list[tuple[int, int]]) -> None:
    """The primary's file after a kill and restart, before the client resumes."""
    assert view.query("PRAGMA integrity_check") == [("ok",)]
    stored = {r[0] for r in view.query("SELECT rseq FROM _edgesql_changes WHERE replica = ?", (replica,))}
    half = []
    for lo, hi in pages:
        got = len([s for s in stored if lo <= s <= hi])
        if got not in (0, hi - lo + 1):
            half.append((lo, hi, got))
    assert not half, f"pages applied in part (first seq, last seq, stored): {half}"
    keys = {r[0] for r in view.query("SELECT pk FROM _edgesql_changes WHERE tbl = 'items'")}
    rows = {json.dumps(["t" + r[0].encode().hex().upper()]) for r in view.query("SELECT id FROM items")}
    assert rows == keys, f"{len(rows ^ keys)} rows disagree with the change log"
    cells = view.query("SELECT count(*) FROM _edgesql_clock WHERE tbl = 'items'")[0][0]
    assert cells == CELLS * len(keys)


async def kill_rounds(primary: Primary, path: Path, rounds: int, seed: int) -> dict[str, Any]:
    rnd = random.Random(seed)
    transport = KillDuringPush(primary, rnd)
    db = await edgesql.connect(
        str(path),
        sync_url=primary.server.url + "/sync",
        auth_token=TOKEN,
        transport=transport,
        sync_interval=None,
    )
    replica = (await db.execute("SELECT replica FROM _edgesql_state")).scalar()
    figures: dict[str, Any] = {"kills": 0, "refused_mid_push": 0, "delays_s": []}
    try:
        for r in range(rounds):
            for t in range(ROUND // TX):
                await db.executemany(
                    "INSERT INTO items VALUES (?, ?, ?, ?)",
                    [(f"k{r}-{t}-{i}", r, "body " * rnd.randint(0, 20), i) for i in range(TX)],
                )
            transport.armed = True
            try:
                await db.sync()
            except SyncError as e:
                assert e.code == "offline", e
                figures["refused_mid_push"] += 1
            assert transport.killed_after is not None
            figures["kills"] += 1
            figures["delays_s"].append(round(transport.killed_after, 3))
            transport.killed_after = None
            while primary.server.proc.poll() is None:  # a kill after the last answer: let it land
                await asyncio.sleep(0.01)
            await asyncio.to_thread(primary.restart)
            check_primary(primary.view, replica, transport.pages)
            lo, hi = transport.killed_page
            n = primary.view.query(
                "SELECT count(*) FROM _edgesql_changes WHERE replica = ? AND rseq BETWEEN ? AND ?",
                (replica, lo, hi),
            )[0][0]
            figures["page_in_flight_applied" if n else "page_in_flight_not_applied"] = (
                figures.get("page_in_flight_applied" if n else "page_in_flight_not_applied", 0) + 1
            )
            # The client resumes: everything arrives, once.
            for _ in range(10):
                try:
                    await db.sync()
                    break
                except SyncError:
                    await asyncio.sleep(0.5)
            assert (await db.sync_status()).pending == 0
            total = ROUND * (r + 1)
            log = primary.view.query(
                "SELECT count(*), count(DISTINCT rseq), max(rseq) FROM _edgesql_changes WHERE replica = ?",
                (replica,),
            )
            assert log == [(total, total, total)], log
            assert primary.view.query("SELECT count(*) FROM items") == [(total,)]
            check_primary(primary.view, replica, transport.pages)
    finally:
        await db.close()
    return figures


@pytest.mark.parametrize("kind", ["sqlite", "d1-local"])
def test_killing_the_primary_mid_push_leaves_no_half_page(kind: str, tmp_path: Path) -> None:
    run_kills(kind, tmp_path, rounds=2, seed=1)


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("kind", ["sqlite", "d1-local"])
def test_killing_the_primary_mid_push_leaves_no_half_page_long(kind: str, tmp_path: Path) -> None:
    run_kills(kind, tmp_path, rounds=10, seed=2)


def run_kills(kind: str, tmp_path: Path, rounds: int, seed: int) -> None:
    schema = tmp_path / "schema.sql"
    schema.write_text(SCHEMA)
    primary = Primary(kind, tmp_path / "data", schema)
    try:
        figures = run(kill_rounds(primary, tmp_path / "replica.db", rounds, seed))
    finally:
        primary.stop()
    print("RELIABILITY", json.dumps({"kill": kind, **figures}))
