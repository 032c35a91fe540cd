"""The embedded primary's rate limit: a token bucket per caller (token and IP), 429 ``rate_limited``
with ``Retry-After``, and replicas that wait it out and lose nothing."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import OutsideRequests, start_server
from tests.sync.faults import FAULTS
from tests.sync.primaries import CONTRACT_SCHEMA, TOKEN, PrimaryServer, http, insert, key, replica_id
from tests.sync.wire import envelope
from tests.test_reliability_network import Replicas, settle_and_check, start_primary

from edgesql.server.cli import default_rate
from edgesql.server.ratelimit import DEFAULT_RATE, RateLimiter, parse_rate, retry_after_header


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_its_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2, burst=3, clock=clock)
    assert [limiter.take("a") for _ in range(3)] == [None, None, None]
    wait = limiter.take("a")
    assert wait == pytest.approx(0.5)  # one request every half second
    assert retry_after_header(wait) == "1"  # whole seconds, never shorter
    assert limiter.take("b") is None  # another caller, another bucket
    clock.now += 0.5
    assert limiter.take("a") is None
    assert limiter.take("a") is not None
    clock.now += 60
    assert [limiter.take("a") for _ in range(4)] == [
        None,
        None,
        None,
        pytest.approx(0.5),
    ]  # never beyond the burst


def test_rates_are_read_as_requests_per_second() -> None:
    assert parse_rate("50/s") == parse_rate("50") == 50.0
    assert parse_rate("off") == parse_rate("0") == 0.0
    assert parse_rate("2.5/s") == 2.5
    for bad in ("fast", "-1", "5/min", ""):
        with pytest.raises(ValueError, match="N/s"):
            parse_rate(bad)


def test_the_default_limits_only_what_other_machines_can_reach() -> None:
    assert default_rate("127.0.0.1") == 0 and default_rate("localhost") == 0
    assert default_rate("0.0.0.0") == DEFAULT_RATE == 50


@pytest.mark.parametrize("kind", ["sqlite", "d1-local"])
def test_over_the_limit_the_answer_is_429_with_retry_after(kind: str, tmp_path: Path) -> None:
    """On both primaries: d1-local's proxy in serve.py applies the same limiter (it used to
    ignore --rate-limit silently)."""
    schema = tmp_path / "schema.sql"
    schema.write_text(CONTRACT_SCHEMA)
    server = start_server(
        tmp_path / "data",
        *("--primary", kind, "--schema", str(schema), "--auth-token", TOKEN),
        *("--rate-limit", "2/s", "--rate-burst", "3"),
        timeout=90,
    )
    try:
        p = PrimaryServer(kind, server, None)
        url = server.url + "/sync"
        rid = replica_id("limited")

        def push(seq: int, token: str | None = TOKEN) -> Any:
            body = envelope(rid, changes=[insert(seq, "items", key(f"rl{seq}"))])
            return http("POST", url, json.dumps(body).encode(), token=token)

        answers = [push(i + 1) for i in range(3)]
        assert [a.status for a in answers] == [200, 200, 200]
        refused = push(4)
        assert refused.status == 429 and refused.json["error"] == "rate_limited"
        assert refused.headers["retry-after"] == "1" and "Retry-After" in refused.json["message"]
        assert http("GET", server.url + "/sync/schema").status == 429  # the same caller's bucket
        # Requests without a valid token have a bucket of their own (per IP): guessing is slowed down too.
        assert [push(9, token=t).status for t in ("a", "b", "c")] == [401, 401, 401]
        assert push(9, token="d").status == 429
        assert p.query("SELECT count(*) FROM _edgesql_changes") == [(3,)]  # the refused push stored nothing
        time.sleep(float(refused.headers["retry-after"]))  # the wait the answer asked for, no more
        assert push(4).status == 200
        assert p.query("SELECT count(*) FROM _edgesql_changes") == [(4,)]
    finally:
        server.stop()


@pytest.mark.parametrize("kind", ["sqlite", "d1-local"])
def test_x_forwarded_for_does_not_make_a_new_client(kind: str, tmp_path: Path) -> None:
    """uvicorn trusted X-Forwarded-For from 127.0.0.1 by default, so a local client (or anything
    behind a local proxy) chose its own IP per request and never ran out of its bucket.
    Forwarding headers count only from proxies named with --forwarded-allow-ips."""
    server = start_server(
        tmp_path / "data",
        *("--primary", kind, "--auth-token", TOKEN, "--rate-limit", "1/s", "--rate-burst", "2"),
        timeout=90,
    )
    try:
        statuses = [
            http("GET", server.url + "/sync/schema", headers={"x-forwarded-for": f"10.0.0.{i}"}).status
            for i in range(4)
        ]
        assert statuses[:2] == [200, 200] and 429 in statuses[2:], statuses
    finally:
        server.stop()
    server = start_server(
        tmp_path / "data",
        *("--primary", kind, "--auth-token", TOKEN, "--rate-limit", "1/s", "--rate-burst", "2"),
        *("--forwarded-allow-ips", "127.0.0.1"),
        timeout=90,
    )
    try:  # a proxy on 127.0.0.1 named as trusted: its X-Forwarded-For names the client
        statuses = [
            http("GET", server.url + "/sync/schema", headers={"x-forwarded-for": f"10.0.1.{i}"}).status
            for i in range(4)
        ]
        assert statuses == [200] * 4, statuses
    finally:
        server.stop()


@pytest.mark.browser
def test_replicas_wait_out_the_limit_and_lose_nothing(
    tmp_path: Path, browser: Any, outside: OutsideRequests
) -> None:
    """Two CPython replicas and a browser share one caller's bucket of 3 requests/s while each
    syncs after every burst of writes: the primary says 429 often; nobody retries before
    Retry-After, and everything arrives exactly once."""
    primary = start_primary(tmp_path, "sqlite", rate_limit="3/s", burst="3")
    replicas = Replicas(primary, browser, outside, tmp_path, faults=False, interval=0.3)
    try:
        replicas.add_cpython("c0", 1)
        replicas.add_cpython("c1", 2)
        replicas.add_browser("b0", 3)
        results = replicas.write(100, seed=7, pace=0.01)
        figures = settle_and_check(primary, replicas, results)
        assert not set(figures["faults"]) & set(FAULTS)  # nothing injected: the 429s were the primary's
        print("RELIABILITY", json.dumps({"rate_limit": "3/s burst 3", **figures}))
    finally:
        replicas.close()
        primary.server.stop()
