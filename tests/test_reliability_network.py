"""A faulty network between replicas and the primary loses nothing and applies nothing twice.

Three replicas — CPython ones behind :class:`FaultyTransport`, browsers
behind :class:`FaultProxy` — make random writes (tests/cases/workload.py)
while about one sync request in three is dropped, answered 500 or 429, loses
its answer after the primary committed, is duplicated, delayed, or delivered
after a newer one. Then the faults stop and the test waits for every replica
to settle (nothing pending, cursor at the end of the primary's log), and
checks, exactly:

* the primary's change log holds, per replica, exactly as many changes as
  the replica made counted writes, with seqs 1..n (none lost, none twice);
* the primary's rows of each writer's own keys are the writer's model of
  them, value for value and type for type;
* every replica's tables equal the primary's, cell for cell;
* no change was rejected, no replica took a new id;
* after every 429, its replica waited at least ``Retry-After`` before its
  next request.

Figures (printed as ``RELIABILITY {...}``) are recorded in docs/reliability.md.
The default run is short; ``--slow`` runs 10,000 writes (2 CPython + 1
browser) and 6,000 (1 CPython + 2 browsers) on the embedded primary, and
3,000 (1 CPython + 2 browsers) on local D1.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.aio import LoopThread
from tests.cases.workload import enc, enc_rows, random_writes
from tests.conftest import OutsideRequests, install_test_modules, open_console, run_py, start_server
from tests.sync.faultproxy import FaultProxy
from tests.sync.faults import FaultPlan, FaultyTransport, RecordingTransport
from tests.sync.primaries import PrimaryServer, worker_url
from tests.test_tabs_browser import start_py, wait_py_job

import edgesql
from edgesql.sync.status import SyncError
from edgesql.sync.transport import HttpTransport

TOKEN = "reliability-token-7f3a9c2e51"
SCHEMA = Path(__file__).parent / "sync" / "reliability_schema.sql"
#: Background sync period of every replica during the run (seconds).
INTERVAL = 1.0
#: Seconds between a replica's writes: spreads them over many sync rounds (more requests, more faults).
PACE = 0.004


@dataclass(frozen=True)
class Scenario:
    """What one run does."""

    primary: str  # "sqlite" (serve.py's embedded primary) or "d1-local"
    cpython: int
    browsers: int
    writes: int  # in total, shared evenly by the replicas
    seed: int


def start_primary(tmp_path: Path, kind: str, rate_limit: str = "off", burst: str = "1") -> PrimaryServer:
    server = start_server(
        tmp_path / "data",
        *("--primary", kind, "--schema", str(SCHEMA), "--auth-token", TOKEN),
        *("--rate-limit", rate_limit, "--rate-burst", burst),
        timeout=90,
    )
    return PrimaryServer(kind, server, worker_url(server))


def wait_until(what: str, check: Any, timeout: float, interval: float = 0.25) -> Any:
    """Call ``check()`` until it returns something true; fail saying ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout} s")
        time.sleep(interval)


async def connect_patiently(path: str, **options: Any) -> edgesql.Connection:
    """Connect; a first start refused with 429 (no cached schema yet) waits Retry-After and tries again."""
    for _ in range(10):
        try:
            return await edgesql.connect(path, **options)
        except SyncError as e:
            if e.code != "rate_limited" or e.retry_after is None:
                raise
            await asyncio.sleep(e.retry_after)
    raise AssertionError("still rate-limited after 10 tries")


class Replicas:
    """The replicas of one run, CPython and browser, behind their fault seams."""

    def __init__(
        self,
        primary: PrimaryServer,
        browser: Any,
        outside: OutsideRequests,
        tmp: Path,
        faults: bool = True,
        interval: float = INTERVAL,
    ) -> None:
        """``faults=False``: the seams only log (the primary's own 429s), nothing is injected."""
        self.primary = primary
        self.faults = faults
        self.interval = interval
        self.browser = browser
        self.outside = outside
        self.tmp = tmp
        self.loop = LoopThread()
        self.cpython: list[tuple[str, edgesql.Connection, Any]] = []
        self.pages: list[tuple[str, Any, FaultProxy]] = []
        self.contexts: list[Any] = []

    def add_cpython(self, who: str, seed: int) -> None:
        transport: FaultyTransport | RecordingTransport
        if self.faults:
            transport = FaultyTransport(HttpTransport(timeout=60), FaultPlan(seed), client=who)
        else:
            transport = RecordingTransport(
                HttpTransport(timeout=60), FaultPlan(seed, enabled=False), client=who
            )
        db = self.loop.call(
            connect_patiently(
                str(self.tmp / f"{who}.db"),
                sync_url=self.primary.sync_url,
                auth_token=TOKEN,
                transport=transport,
                sync_interval=self.interval,
            )
        )
        self.cpython.append((who, db, transport))

    def add_browser(self, who: str, seed: int) -> None:
        proxy = FaultProxy(self.primary.url, FaultPlan(seed, enabled=self.faults)).start()
        ctx = self.browser.new_context()  # a profile of its own: its own OPFS
        self.contexts.append(ctx)
        self.outside.watch(ctx)
        page = open_console(ctx.new_page(), proxy.url)
        install_test_modules(page)
        run_py(
            page,
            "import edgesql, json, asyncio\nfrom tests.cases.workload import random_writes, enc_rows\n"
            "for attempt in range(10):\n"
            "    try:\n"
            f'        db = await edgesql.connect("{who}.db", sync_url="/sync", auth_token={TOKEN!r}, '
            f"sync_interval={self.interval})\n"
            "        break\n"
            "    except edgesql.SyncError as e:\n"
            "        if e.code != 'rate_limited':\n"
            "            raise\n"
            "        await asyncio.sleep(e.retry_after)\n",
        )
        self.pages.append((who, page, proxy))

    @property
    def plans(self) -> list[FaultPlan]:
        return [t.plan for _, _, t in self.cpython] + [p.plan for _, _, p in self.pages]

    def write(self, each: int, seed: int, pace: float = PACE) -> dict[str, dict[str, Any]]:
        """Every replica makes ``each`` counted writes at once; returns their workload results."""
        for i, (who, page, _) in enumerate(self.pages):
            start_py(
                page, f"json.dumps(await random_writes(db, {who!r}, {each}, {seed + 1000 + i}, pace={pace}))"
            )
        futures = [
            (who, self.loop.submit(random_writes(db, who, each, seed + i, pace=pace)))
            for i, (who, db, _) in enumerate(self.cpython)
        ]
        results = {who: f.result(1800) for who, f in futures}
        for who, page, _ in self.pages:
            results[who] = wait_py_job(page)
        return results

    def heal(self) -> None:
        """No more faults; requests still held back are delivered (old, so they change nothing)."""
        for plan in self.plans:
            plan.enabled = False
        for _, _, proxy in self.pages:
            proxy.flush()
        for _, _, transport in self.cpython:
            if isinstance(transport, FaultyTransport):
                self.loop.call(transport.flush())

    def state(self, who: str, sql: str) -> Any:
        """One query's rows on replica ``who``, as JSON-safe values."""
        for name, db, _ in self.cpython:
            if name == who:
                return json.loads(json.dumps([list(r) for r in self.loop.call(db.execute(sql)).rows]))
        for name, page, _ in self.pages:
            if name == who:
                return run_py(page, f"json.dumps([list(r) for r in (await db.execute({sql!r})).rows])")
        raise KeyError(who)

    def tables(self, who: str) -> dict[str, Any]:
        """Replica ``who``'s synced tables, exactly (see workload.enc)."""
        out = {}
        for table, sql in TABLES.items():
            for name, db, _ in self.cpython:
                if name == who:
                    out[table] = enc_rows(self.loop.call(db.execute(sql)).rows)
            for name, page, _ in self.pages:
                if name == who:
                    out[table] = run_py(page, f"json.dumps(enc_rows((await db.execute({sql!r})).rows))")
        return out

    @property
    def names(self) -> list[str]:
        return [w for w, _, _ in self.cpython] + [w for w, _, _ in self.pages]

    def close(self) -> None:
        for _, db, _ in self.cpython:
            try:
                self.loop.call(db.close(), 30)
            except Exception:
                pass
        self.loop.close()
        for ctx in self.contexts:
            ctx.close()
        for _, _, proxy in self.pages:
            proxy.stop()


TABLES = {
    "notes": "SELECT id, owner, body, n, x, b FROM notes",
    "shared": "SELECT id, v, who FROM shared",
}


def primary_tables(primary: PrimaryServer) -> dict[str, Any]:
    return {table: enc_rows(primary.query(sql)) for table, sql in TABLES.items()}


def settle_and_check(primary: PrimaryServer, replicas: Replicas, results: dict[str, Any]) -> dict[str, Any]:
    """Wait until every replica settled, then check the module docstring's list; returns figures."""

    def settled() -> bool:
        target = int(primary.query("SELECT coalesce(max(seq), 0) FROM _edgesql_changes")[0][0])
        return all(
            replicas.state(w, "SELECT (SELECT count(*) FROM _edgesql_outbox), cursor FROM _edgesql_state")
            == [[0, target]]
            for w in replicas.names
        )

    t1 = time.monotonic()
    wait_until("every replica pushed everything and pulled to the end", settled, timeout=300)
    settle_s = time.monotonic() - t1

    # Per replica: exactly its writes in the primary's log, seqs 1..n.
    ids = {w: replicas.state(w, "SELECT replica FROM _edgesql_state")[0][0] for w in replicas.names}
    log = {
        r: (n, lo, hi)
        for r, n, lo, hi in primary.query(
            "SELECT replica, count(*), min(rseq), max(rseq) FROM _edgesql_changes GROUP BY replica"
        )
    }
    for w in replicas.names:
        writes = results[w]["writes"]
        assert log.get(ids[w]) == (writes, 1, writes), (w, writes, log.get(ids[w]))
    assert set(log) <= set(ids.values()), f"changes from unknown replicas: {set(log) - set(ids.values())}"
    total = sum(r["writes"] for r in results.values())
    assert sum(n for n, _, _ in log.values()) == total

    # Each writer's own rows on the primary are its model of them, exactly.
    notes = primary.query("SELECT id, owner, body, n, x, b FROM notes")
    for w in replicas.names:
        want = {k: v for k, v in results[w]["model"].items() if v is not None}
        got = {r[0]: [enc(x) for x in r[1:]] for r in notes if r[1] == w}
        assert got == want, f"{w}: {len(set(want) ^ set(got))} rows differ"

    # Everyone converged with the primary; nothing rejected anywhere.
    on_primary = primary_tables(primary)
    for w in replicas.names:
        assert replicas.tables(w) == on_primary, f"{w} differs from the primary"
        assert replicas.state(w, "SELECT count(*) FROM _edgesql_rejected") == [[0]]

    # Retry-After was honoured, every time.
    waits = [x for plan in replicas.plans for x in plan.retry_after_waits()]
    violations = [v for plan in replicas.plans for v in plan.retry_after_violations()]
    assert not violations, violations
    assert waits, "no 429 was followed by a retry: the Retry-After check checked nothing"

    faults: dict[str, int] = {}
    for plan in replicas.plans:
        for k, v in plan.counts.items():
            faults[k] = faults.get(k, 0) + v
    return {
        "writes": total,
        "changes_on_primary": sum(n for n, _, _ in log.values()),
        "rows_on_primary": {t: len(v) for t, v in on_primary.items()},
        "requests": sum(faults.values()),
        "faults": faults,
        "retry_after_waits_s": [round(min(waits), 3), round(max(waits), 3), len(waits)],
        "settle_s": round(settle_s, 1),
    }


def run_scenario(sc: Scenario, tmp_path: Path, browser: Any, outside: OutsideRequests) -> dict[str, Any]:
    started = time.monotonic()
    primary = start_primary(tmp_path, sc.primary)
    replicas = Replicas(primary, browser, outside, tmp_path)
    try:
        for i in range(sc.cpython):
            replicas.add_cpython(f"c{i}", sc.seed * 100 + i)
        for i in range(sc.browsers):
            replicas.add_browser(f"b{i}", sc.seed * 100 + 50 + i)
        each = -(-sc.writes // (sc.cpython + sc.browsers))  # rounded up: at least sc.writes in all
        t0 = time.monotonic()
        results = replicas.write(each, sc.seed)
        write_s = time.monotonic() - t0
        replicas.heal()
        figures = {
            "scenario": sc.__dict__,
            **settle_and_check(primary, replicas, results),
            "write_s": round(write_s, 1),
            "total_s": round(time.monotonic() - started, 1),
        }
        print("RELIABILITY", json.dumps(figures))
        return figures
    finally:
        replicas.close()
        primary.server.stop()


SHORT = [
    Scenario("sqlite", cpython=2, browsers=1, writes=900, seed=1),
    Scenario("d1-local", cpython=2, browsers=1, writes=450, seed=2),
]
LONG = [
    Scenario("sqlite", cpython=2, browsers=1, writes=10_000, seed=11),
    Scenario("sqlite", cpython=1, browsers=2, writes=6_000, seed=13),
    Scenario("d1-local", cpython=1, browsers=2, writes=3_000, seed=12),
]


@pytest.mark.browser
@pytest.mark.parametrize("sc", SHORT, ids=[f"{s.primary}-{s.writes}" for s in SHORT])
def test_faulty_network_loses_nothing(sc: Scenario, tmp_path: Path, browser: Any, outside: Any) -> None:
    run_scenario(sc, tmp_path, browser, outside)


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("sc", LONG, ids=[f"{s.primary}-{s.writes}-{s.browsers}browsers" for s in LONG])
def test_faulty_network_loses_nothing_long(sc: Scenario, tmp_path: Path, browser: Any, outside: Any) -> None:
    run_scenario(sc, tmp_path, browser, outside)
