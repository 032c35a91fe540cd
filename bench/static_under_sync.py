"""GET /index.html while 50 clients hammer /sync: are pages served, not starved? (issue 12, finding 6)

    python -m bench.static_under_sync [--clients 50] [--requests 200] [--repeat 3] [--only sqlite]

For each primary (serve.py ``--primary sqlite`` and ``--primary d1-local``),
with a log of 4,000 changes: ``clients`` threads each pull a full page
(2,000 changes) from the start of the log back to back, on their own
keep-alive connections, while this process fetches ``/index.html``
``requests`` times on fresh connections, 50 ms apart, and times each answer.
The same fetches with no load first give the floor. Prints, per primary, the
median and p99 of the page's latency idle and under load (each the median
over ``repeat`` runs), and the /sync answers the hammer got per second.

Before /sync had a thread pool of its own, the pages shared the pool with
sync work and queued behind it (24 s with 80 slow pulls, in issue 12).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "py"), str(ROOT)]

from tests.conftest import start_server  # noqa: E402
from tests.helpers.load import fill_log, hammer, page_latencies  # noqa: E402

__all__ = ["run"]

PRIMARIES = ("sqlite", "d1-local")
TOKEN = "bench-static-under-sync-token"
SCHEMA = "CREATE TABLE items (id TEXT PRIMARY KEY, c TEXT);\n"
LOG_CHANGES = 4_000
WARM_UP_S = 2.0  # every hammering client has a request in before the page is timed


def _p99(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=100, method="inclusive")[98]


def run(primary: str, clients: int, requests: int, repeat: int) -> dict[str, float]:
    """The figures for one primary, in milliseconds (and /sync answers per second)."""
    runs: list[dict[str, float]] = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp)
            (data / "schema.sql").write_text(SCHEMA)
            server = start_server(
                data / "data",
                *("--primary", primary, "--schema", str(data / "schema.sql"), "--auth-token", TOKEN),
                timeout=120,
            )
            try:
                fill_log(server.url, TOKEN, LOG_CHANGES)
                idle = page_latencies(server.url, "/index.html", requests)
                with hammer(server.url, TOKEN, clients) as stats:
                    time.sleep(WARM_UP_S)
                    t0 = time.monotonic()
                    answered0 = sum(stats.statuses.values())
                    loaded = page_latencies(server.url, "/index.html", requests)
                    rate = (sum(stats.statuses.values()) - answered0) / (time.monotonic() - t0)
            finally:
                server.stop()
            if stats.errors or set(stats.statuses) != {200}:
                raise SystemExit(f"the hammer got {stats.statuses}, {stats.errors} errors")
        runs.append(
            {
                "idle_p50_ms": 1000 * statistics.median(idle),
                "idle_p99_ms": 1000 * _p99(idle),
                "loaded_p50_ms": 1000 * statistics.median(loaded),
                "loaded_p99_ms": 1000 * _p99(loaded),
                "loaded_max_ms": 1000 * max(loaded),
                "sync_answers_per_s": rate,
            }
        )
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--only", choices=PRIMARIES)
    args = p.parse_args()
    print(f"GET /index.html, {args.requests} times, idle and beside {args.clients} clients pulling /sync")
    print(
        f"{'primary':<10} {'idle p50':>9} {'idle p99':>9} {'load p50':>9} {'load p99':>9} {'load max':>9} {'sync/s':>7}"
    )
    for primary in [args.only] if args.only else PRIMARIES:
        f = run(primary, args.clients, args.requests, args.repeat)
        print(
            f"{primary:<10} {f['idle_p50_ms']:>7.1f}ms {f['idle_p99_ms']:>7.1f}ms {f['loaded_p50_ms']:>7.1f}ms "
            f"{f['loaded_p99_ms']:>7.1f}ms {f['loaded_max_ms']:>7.1f}ms {f['sync_answers_per_s']:>7.0f}"
        )
        print(
            "FIGURES", json.dumps({"primary": primary, **{k: round(v, 2) for k, v in f.items()}}), flush=True
        )


if __name__ == "__main__":
    main()
