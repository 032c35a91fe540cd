"""Who sees what, with a browser among the replicas (issue 15), over real HTTP.

The property of ``test_sync_users.py`` — once everyone has synced, every replica holds
exactly the primary's rows of its user's buckets, and nobody wrote into a project they
never had — checked again where it can break differently: serve.py (real HTTP, HS256
JWTs, its access rules) is the primary, and one replica of every example is a page in
Chromium (SQLite-Wasm on OPFS, the DB worker's sync loop), beside CPython replicas.

One server and one page serve every example; each example has its own users, projects
and tasks (names suffixed with the example's number) and its own OPFS database, so
examples never see each other's rows. The in-process test runs the 200+ examples; this
one runs fewer (``EDGESQL_BROWSER_EXAMPLES``, default 25), each a few seconds long.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import jwt as pyjwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.aio import LoopThread
from tests.conftest import Server, open_console, run_py, start_server
from tests.sync.harness import table_state
from tests.sync.primaries import PrimaryServer
from tests.test_sync_users import ACCESS, PROJECTS, SCHEMA, TABLES, USERS, ops

import edgesql
from edgesql.server.primary import Primary
from edgesql.sync.buckets import parse_access
from edgesql.sync.schema import Migration

pytestmark = pytest.mark.browser

SECRET = "users-mixed-secret-0123456789abcdef"
EXAMPLES = itertools.count(1)

#: The page's side: one database per example, written and synced on the test's say.
PAGE = """
import edgesql, json
DBS = {}
async def b_open(name, tok):
    DBS[name] = await edgesql.connect(name, sync_url="/sync", auth=lambda: tok, sync_interval=0)
async def b_exec(name, sql, params):
    try:
        await DBS[name].execute(sql, params)
        return "ok"
    except edgesql.IntegrityError as e:
        return f"refused: {e}"
async def b_state(name):
    db = DBS[name]
    st = await db.sync_status()
    rows = {t: [list(r) for r in (await db.execute(f"SELECT * FROM {t} ORDER BY {k}")).rows]
            for t, k in json.loads(TABLES).items()}
    return json.dumps({"pending": st.pending, "error": st.last_error, "rows": rows})
async def b_close(name):
    await DBS.pop(name).close()
"""


def token(user: str) -> str:
    return pyjwt.encode({"sub": user, "exp": int(time.time() + 3600)}, SECRET, "HS256")


@pytest.fixture(scope="module")
def users_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("users-mixed")
    schema = base / "schema"
    schema.mkdir()
    (schema / "0001_init.sql").write_text(SCHEMA)
    (schema / "access.sql").write_text(ACCESS)
    s = start_server(base / "data", "--schema", str(schema), "--jwt-secret", SECRET)
    yield s
    s.stop()


@pytest.fixture
def page(browser: Any, users_server: Server, outside: Any) -> Iterator[Any]:
    ctx = browser.new_context()
    outside.watch(ctx)
    p = open_console(ctx.new_page(), users_server.url)
    run_py(p, f"TABLES = {json.dumps(json.dumps(TABLES))}\n" + PAGE)
    yield p
    ctx.close()


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.close()


def user_buckets_sql() -> str:
    """The statement the primary runs for a user's buckets (the same rules, compiled alike)."""
    scratch = Primary(":memory:", (Migration(1, "init", SCHEMA),), parse_access(ACCESS))
    try:
        return scratch._access["user_buckets"]  # type: ignore[index]
    finally:
        scratch.close()


class MixedWorld:
    """One example: replica 0 is the page's, the others CPython's, all over HTTP."""

    def __init__(self, server: Server, page: Any, loop: LoopThread, owners: list[str]) -> None:
        self.n = next(EXAMPLES)
        self.server, self.page, self.loop = server, page, loop
        self.primary = PrimaryServer("sqlite", server, None)
        self.owners = [self.u(o) for o in owners]
        self.dbs: list[edgesql.Connection | None] = [None]  # None: the page's
        self.dbname = f"mixed-{os.getpid()}-{self.n}.db"
        self.ever: set[tuple[str, str]] = {(self.u(u), self.p(p)) for p, u in PROJECTS.items()}

    def u(self, user: str) -> str:
        return f"{user}-{self.n}"

    def p(self, project: str) -> str:
        return f"{project}-{self.n}"

    def start(self) -> None:
        run_py(self.page, f"await b_open({self.dbname!r}, {token(self.owners[0])!r})")
        for user in self.owners[1:]:
            self.dbs.append(
                self.loop.call(
                    edgesql.connect(
                        ":memory:",
                        sync_url=self.server.url + "/sync",
                        auth=lambda user=user: token(user),
                        sync_interval=None,
                    )
                )
            )
        for p, owner in PROJECTS.items():
            if self.u(owner) in self.owners:
                i = self.owners.index(self.u(owner))
                self.execute(
                    i, "INSERT INTO projects VALUES (?, ?, ?)", [self.p(p), f"{p} of {owner}", self.u(owner)]
                )
                self.execute(
                    i,
                    "INSERT INTO members VALUES (?, ?, ?)",
                    [f"{self.p(p)}:{self.u(owner)}", self.p(p), self.u(owner)],
                )
                self.sync(i)

    def execute(self, i: int, sql: str, params: list[Any]) -> None:
        db = self.dbs[i]
        if db is None:
            run_py(self.page, f"await b_exec({self.dbname!r}, {sql!r}, {json.dumps(params)})")
            return
        try:
            self.loop.call(db.execute(sql, params))
        except edgesql.IntegrityError:
            pass

    def sync(self, i: int, push: int | None = None, pull: int | None = None) -> None:
        db = self.dbs[i]
        if db is None:  # the worker's rounds are whole: a partial sync is a sync there
            run_py(self.page, f"await DBS[{self.dbname!r}].sync(); 'ok'")
        elif push is None and pull is None:
            self.loop.call(db.sync())
        else:
            replica = db._backend.replica  # type: ignore[attr-defined]
            self.loop.call(replica.round(push_limit=push or 0, pull_limit=pull or 0))

    def op(self, who: int, op: tuple[Any, ...]) -> None:
        i = who % len(self.dbs)
        user = self.owners[i]
        kind = op[0]
        if kind == "task":
            self.execute(
                i,
                "INSERT INTO tasks VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET title = excluded.title",
                [self.p(op[1]), self.p(op[2]), op[3]],
            )
        elif kind == "move":
            self.execute(i, "UPDATE tasks SET project_id = ? WHERE id = ?", [self.p(op[2]), self.p(op[1])])
        elif kind == "untask":
            self.execute(i, "DELETE FROM tasks WHERE id = ?", [self.p(op[1])])
        elif kind == "join":
            project, member = self.p(op[1]), self.u(op[2])
            self.execute(
                i, "INSERT OR REPLACE INTO members VALUES (?, ?, ?)", [f"{project}:{member}", project, member]
            )
            if (user, project) in self.ever:
                self.ever.add((member, project))
        elif kind == "leave":
            self.execute(i, "DELETE FROM members WHERE id = ?", [f"{self.p(op[1])}:{self.u(op[2])}"])
        elif kind == "note":
            owner = self.u(op[1])
            self.execute(
                i,
                "INSERT INTO notes VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET body = excluded.body",
                [f"n-{owner}", owner, op[2]],
            )
        elif kind == "sync":
            self.sync(i)
        elif kind == "push":
            self.sync(i, push=op[1])
        elif kind == "pull":
            self.sync(i, pull=op[1])

    def visible(self, user: str, buckets_sql: str) -> dict[str, Any]:
        """The primary's rows in the buckets ``user`` may read now."""
        [(read, _write)] = self.primary.query(buckets_sql, (user,))
        out = {}
        for table, key in TABLES.items():
            rows = self.primary.query(
                f"SELECT t.* FROM {table} t WHERE EXISTS (SELECT 1 FROM _edgesql_rowbuckets b WHERE b.tbl = ? "
                f"AND b.bucket IN (SELECT value FROM json_each(?)) AND b.pk = '[\"t' || hex(t.{key}) || '\"]') "
                f"ORDER BY {key}",
                (table, read),
            )
            out[table] = table_state(rows)
        return out

    def check(self, buckets_sql: str) -> None:
        for _ in range(4):
            for i in range(len(self.dbs)):
                self.sync(i)
        for i, (db, user) in enumerate(zip(self.dbs, self.owners, strict=True)):
            if db is None:
                got = run_py(self.page, f"await b_state({self.dbname!r})")
                assert got["pending"] == 0 and got["error"] is None, got
                mine = {t: table_state([tuple(r) for r in rows]) for t, rows in got["rows"].items()}
            else:
                status = self.loop.call(db.sync_status())
                assert status.pending == 0, status
                mine = {
                    t: table_state(self.loop.call(db.execute(f"SELECT * FROM {t} ORDER BY {k}")).rows)
                    for t, k in TABLES.items()
                }
            assert mine == self.visible(user, buckets_sql), (
                f"replica {i} ({user}) differs from what {user} may read"
            )
        written = self.primary.query(
            "SELECT u.user, lb.bucket_from, lb.bucket_to FROM _edgesql_changes c JOIN _edgesql_log_buckets lb "
            "ON lb.seq = c.seq JOIN _edgesql_replica_users u ON u.replica = c.replica WHERE u.user LIKE ?",
            (f"%-{self.n}",),
        )
        for user, before, after in written:
            for bucket in (before, after):
                project = (bucket or "").removeprefix("project:")
                base = project.rsplit("-", 1)[0]
                if bucket and bucket.startswith("project:") and self.u(PROJECTS.get(base, "")) in self.owners:
                    assert (user, project) in self.ever, (user, bucket)
                if bucket and bucket.startswith("user:"):
                    assert bucket == f"user:{user}", (user, bucket)

    def close(self) -> None:
        run_py(self.page, f"await b_close({self.dbname!r}); 'ok'")
        for db in self.dbs[1:]:
            if db is not None:
                self.loop.call(db.close())


def test_a_page_among_cpython_replicas_holds_exactly_what_its_user_may_read(
    users_server: Server, page: Any, loop: LoopThread
) -> None:
    buckets_sql = user_buckets_sql()

    @settings(
        max_examples=int(os.environ.get("EDGESQL_BROWSER_EXAMPLES", "25")),
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
        ],
        database=None,  # examples name their rows by a counter: a replayed one is another example
    )
    @given(
        st.lists(st.sampled_from(USERS), min_size=5, max_size=6),
        st.lists(st.tuples(st.integers(0, 5), ops), max_size=30),
    )
    def example(owners: list[str], steps: list[Any]) -> None:
        world = MixedWorld(users_server, page, loop, owners)
        try:
            world.start()
            for who, op in steps:
                world.op(who, op)
            world.check(buckets_sql)
        finally:
            world.close()

    example()
