"""The replica contract: the same cases on the CPython replica and on the browser's worker.

Both replicas run the sync loop from the same sources (the schema document's SQL
programs, ``rules.py``); these cases check that the two loops act alike where
they could drift: a copy of the database taking a new id, starting on the cached
schema when the primary cannot be reached or answers 503, waiting out a
Retry-After, an answer that is not a sync response, a schema that cannot be
fetched, and a migration of the primary between two syncs. The primary is
serve.py's, behind :class:`ScriptedProxy`, which answers some requests itself.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
from tests.aio import LoopThread
from tests.conftest import Server, open_console, run_py, start_server
from tests.sync.scripted import ScriptedProxy

import edgesql

KINDS = ["cpython", pytest.param("browser", marks=pytest.mark.browser)]
SCHEMA_V1 = "CREATE TABLE notes (id TEXT PRIMARY KEY, body TEXT);"
SCHEMA_V2 = "ALTER TABLE notes ADD COLUMN tag TEXT DEFAULT 'none';"
_names = itertools.count()


class Replica(Protocol):
    """What a case does with a replica, whichever kind."""

    def open(self, interval: float = 0) -> None: ...
    def execute(self, sql: str) -> None: ...
    def query(self, sql: str) -> Any: ...
    def sync(self) -> str | None: ...  # None, or the SyncError's code
    def status(self) -> dict[str, Any]: ...
    def close(self) -> None: ...


class CPythonReplica:
    def __init__(self, url: str, path: Path) -> None:
        self.url, self.path = url, path
        self.loop = LoopThread()
        self.db: edgesql.Connection | None = None

    def open(self, interval: float = 0) -> None:
        self.db = self.loop.call(
            edgesql.connect(str(self.path), sync_url=self.url + "/sync", sync_interval=interval or None)
        )

    def execute(self, sql: str) -> None:
        assert self.db is not None
        self.loop.call(self.db.execute(sql))

    def query(self, sql: str) -> Any:
        assert self.db is not None
        return [list(r) for r in self.loop.call(self.db.execute(sql)).rows]

    def sync(self) -> str | None:
        assert self.db is not None
        try:
            self.loop.call(self.db.sync())
        except edgesql.SyncError as e:
            return e.code
        return None

    def status(self) -> dict[str, Any]:
        assert self.db is not None
        s = self.loop.call(self.db.sync_status())
        return {"pending": s.pending, "last_error": s.last_error, "replica": s.replica}

    def close(self) -> None:
        if self.db is not None:
            self.loop.call(self.db.close())
            self.db = None

    def stop(self) -> None:
        self.close()
        self.loop.close()


class BrowserReplica:
    """A database in the page's worker; several share one page (each its own global name)."""

    def __init__(self, page: Any, name: str) -> None:
        self.page = page
        self.name = name
        self.var = "db_" + name.replace("-", "_").removesuffix(".db")
        run_py(self.page, f"import edgesql, json\n{self.var} = None")

    def _py(self, code: str) -> Any:
        # (Not the global `db`: console.py polls its own.)
        return run_py(self.page, f"rdb = {self.var}\n{code}")

    def open(self, interval: float = 0) -> None:
        run_py(
            self.page,
            f'{self.var} = await edgesql.connect("{self.name}", sync_url="/sync", sync_interval={interval})\nNone',
        )

    def execute(self, sql: str) -> None:
        self._py(f"await rdb.execute({sql!r})\nNone")

    def query(self, sql: str) -> Any:
        return self._py(f"json.dumps([list(r) for r in (await rdb.execute({sql!r})).rows])")

    def sync(self) -> str | None:
        return self._py(
            "code = None\ntry:\n    await rdb.sync()\nexcept edgesql.SyncError as e:\n    code = e.code\njson.dumps(code)"
        )

    def status(self) -> dict[str, Any]:
        return self._py(
            "s = await rdb.sync_status()\n"
            "json.dumps({'pending': s.pending, 'last_error': s.last_error, 'replica': s.replica})"
        )

    def close(self) -> None:
        self._py("await rdb.close()\nNone")

    def stop(self) -> None:
        try:
            self.close()
        except Exception:
            pass  # closed already


@pytest.fixture(scope="module")
def primary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, ScriptedProxy, Path]]:
    """One primary for the module, behind the proxy; the migration case runs last."""
    base = tmp_path_factory.mktemp("replica-contract")
    schema = base / "schema"
    schema.mkdir()
    (schema / "0001_init.sql").write_text(SCHEMA_V1)
    holder = {"server": start_server(base / "data", "--schema", str(schema))}
    proxy = ScriptedProxy(holder["server"].url).start()
    yield holder["server"], proxy, schema
    proxy.stop()
    holder["server"].stop()


@pytest.fixture(scope="module")
def page(primary: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """One console page for every browser case (loading Pyodide is the slow part)."""
    _server, proxy, _schema = primary
    browser = request.getfixturevalue("browser")
    context = browser.new_context()
    yield open_console(context.new_page(), proxy.url)
    context.close()


@pytest.fixture(params=KINDS)
def make(request: pytest.FixtureRequest, primary: Any, tmp_path: Path) -> Iterator[Any]:
    """Make replicas of the kind under test, all reaching the primary through the proxy."""
    made: list[Any] = []
    _server, proxy, _schema = primary
    proxy.clear()

    def new() -> Replica:
        name = f"contract-{next(_names)}.db"
        if request.param == "cpython":
            r: Any = CPythonReplica(proxy.url, tmp_path / name)
        else:
            r = BrowserReplica(request.getfixturevalue("page"), name)
        made.append(r)
        return r

    yield new
    for r in made:
        r.stop()


def primary_notes(server: Server, *ids: str) -> list[list[Any]]:
    """The primary's notes with these ids (the primary is shared by every case)."""
    import sqlite3

    db = sqlite3.connect(f"file:{server.data / 'primary.db'}?mode=ro", uri=True)
    marks = ", ".join("?" * len(ids))
    try:
        return [
            list(r) for r in db.execute(f"SELECT id, body FROM notes WHERE id IN ({marks}) ORDER BY id", ids)
        ]
    finally:
        db.close()


@pytest.fixture
def u() -> str:
    """A prefix for this case's rows: every case shares the primary."""
    return f"c{next(_names)}"


def test_a_copy_told_replica_conflict_takes_a_new_id_and_syncs(make: Any, primary: Any, u: str) -> None:
    server, proxy, _ = primary
    a = make()
    a.open()
    a.execute(f"INSERT INTO notes (id, body) VALUES ('{u}-1', 'one')")
    before = a.status()["replica"]
    proxy.answer(
        "POST", "/sync", 409, {"error": "replica_conflict", "message": "another copy"}, replica=before
    )
    assert a.sync() is None
    after = a.status()
    assert after["replica"] != before and after["pending"] == 0
    assert primary_notes(server, f"{u}-1") == [[f"{u}-1", "one"]]


def test_an_id_another_device_owns_is_left_for_a_new_one(make: Any, primary: Any, u: str) -> None:
    server, proxy, _ = primary
    a = make()
    a.open()
    a.execute(f"INSERT INTO notes (id, body) VALUES ('{u}-2', 'two')")
    before = a.status()["replica"]
    proxy.answer("POST", "/sync", 403, {"error": "replica_forbidden", "message": "not yours"}, replica=before)
    assert a.sync() is None
    assert a.status()["replica"] != before and primary_notes(server, f"{u}-2") == [[f"{u}-2", "two"]]


@pytest.mark.parametrize("trouble", ["unreachable", "503"])
def test_a_replica_starts_on_its_cached_schema_when_the_primary_cannot_serve_it(
    make: Any, primary: Any, u: str, trouble: str
) -> None:
    server, proxy, _ = primary
    a = make()
    a.open()
    a.execute(f"INSERT INTO notes (id, body) VALUES ('{u}-3', 'before')")
    assert a.sync() is None
    a.close()
    if trouble == "unreachable":
        # Twice: Chromium silently sends a request again once when its reused connection was reset.
        proxy.reset("GET", "/sync/schema", times=2)
    else:
        proxy.answer(
            "GET", "/sync/schema", 503, {"error": "primary_unavailable", "message": "x"}, retry_after="1"
        )
    a.open()  # on the cached schema: the app has its data
    assert a.query(f"SELECT id, body FROM notes WHERE id = '{u}-3'") == [[f"{u}-3", "before"]]
    a.execute(f"INSERT INTO notes (id, body) VALUES ('{u}-4', 'while it was down')")
    assert a.sync() is None
    assert primary_notes(server, f"{u}-3", f"{u}-4") == [
        [f"{u}-3", "before"],
        [f"{u}-4", "while it was down"],
    ]


def test_a_retry_after_is_waited_out(make: Any, primary: Any, u: str) -> None:
    server, proxy, _ = primary
    a = make()
    a.open(interval=30)  # the background loop
    me = a.status()["replica"]
    proxy.answer(
        "POST", "/sync", 429, {"error": "rate_limited", "message": "slow"}, replica=me, retry_after="1"
    )
    a.execute(f"INSERT INTO notes (id, body) VALUES ('{u}-5', 'after the wait')")
    deadline = time.monotonic() + 15
    while primary_notes(server, f"{u}-5") != [[f"{u}-5", "after the wait"]]:
        assert time.monotonic() < deadline, proxy.requests("POST", "/sync", me)
        time.sleep(0.05)
    while len(posts := proxy.requests("POST", "/sync", me)) < 2 or posts[-1][1] != 200:
        assert time.monotonic() < deadline, posts  # (the proxy logs an answer once it has it)
        time.sleep(0.05)
    refused = next(i for i, (_, s) in enumerate(posts) if s == 429)
    assert posts[refused + 1][0] - posts[refused][0] >= 1.0, posts
    a.close()


@pytest.mark.parametrize("body", [b"<html>a proxy's error page</html>", b'{"v": 2}', b"[1, 2]"])
def test_an_answer_that_is_not_a_sync_response_loses_nothing(
    make: Any, primary: Any, u: str, body: bytes
) -> None:
    server, proxy, _ = primary
    a = make()
    a.open()
    a.execute(f"INSERT INTO notes (id, body) VALUES ('{u}-6', 'kept')")
    proxy.answer("POST", "/sync", 200, body, replica=a.status()["replica"])
    assert a.sync() == "bad_response"
    status = a.status()
    assert status["pending"] == 1 and "not a sync response" in status["last_error"]
    assert a.sync() is None and a.status()["pending"] == 0
    assert primary_notes(server, f"{u}-6") == [[f"{u}-6", "kept"]]


def test_a_schema_that_cannot_be_fetched_sends_nothing_and_says_so(make: Any, primary: Any, u: str) -> None:
    server, proxy, _ = primary
    a = make()
    a.open()
    a.execute(f"INSERT INTO notes (id, body) VALUES ('{u}-7', 'waits')")
    me = a.status()["replica"]
    proxy.answer("POST", "/sync", 409, {"error": "schema_behind", "message": "migrate first"}, replica=me)
    proxy.reset("GET", "/sync/schema", times=10)  # (every try: see above)
    assert a.sync() in ("schema_unavailable", "offline")
    proxy.clear()
    assert a.status()["pending"] == 1 and primary_notes(server, f"{u}-7") == []
    assert a.sync() is None and primary_notes(server, f"{u}-7") == [[f"{u}-7", "waits"]]


def test_a_migration_of_the_primary_between_two_syncs(make: Any, primary: Any, u: str) -> None:
    """(Last: it moves the shared primary to the next schema version, once.)"""
    server, _proxy, schema = primary
    a, b = make(), make()
    a.open()
    b.open()
    a.execute(f"INSERT INTO notes (id, body) VALUES ('{u}-8', 'v1')")
    assert a.sync() is None and b.sync() is None
    a.execute(f"UPDATE notes SET body = 'offline edit' WHERE id = '{u}-8'")
    migrated = (schema / "0002_tag.sql").exists()
    if not migrated:
        server.stop()
        (schema / "0002_tag.sql").write_text(SCHEMA_V2)
        port = int(server.url.rsplit(":", 1)[1])
        server.proc = start_server(server.data, *server.args, port=port).proc  # same URL, so the proxy's too
    assert a.sync() is None and b.sync() is None and a.sync() is None
    for r in (a, b):
        assert r.query(f"SELECT id, body, tag FROM notes WHERE id = '{u}-8'") == [
            [f"{u}-8", "offline edit", "none"]
        ]
        assert r.status()["pending"] == 0
    b.execute(f"UPDATE notes SET tag = 'new column' WHERE id = '{u}-8'")
    assert b.sync() is None and a.sync() is None
    assert a.query(f"SELECT tag FROM notes WHERE id = '{u}-8'") == [["new column"]]


def test_the_rules_both_loops_run_are_one_table() -> None:
    """Both loops read the same rules (the browser's are generated from rules.py)."""
    from tests.conftest import ROOT

    from edgesql.sync import rules

    js = (ROOT / "worker" / "replica-rules.js").read_text()
    start = js.index("Object.freeze(") + len("Object.freeze(")
    assert json.loads(js[start : js.index(");", start)]) == rules.RULES
