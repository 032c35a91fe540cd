"""Requests of the sync protocol built by hand, for tests that speak it without edgesql's client.

A request carries the replica's key (protocol v2); a test's replica gets one derived
from its id, so a test can build requests for the same replica anywhere. ``high``
defaults to the largest seq: a hand-built request claims to know every seq it ever
used, which turns the restored-copy check off unless a test sets ``high`` itself.
"""

from __future__ import annotations

from typing import Any

PROTOCOL = 2
MAX_SEQ = 2**53 - 1


def replica_key(replica: str) -> str:
    """The key a test's replica proves its id with (16-128 characters of [A-Za-z0-9_-])."""
    return ("key-" + replica + "-" * 16)[:128]


def envelope(replica: str, **fields: Any) -> dict[str, Any]:
    """A request body for ``replica``: a pull-only request unless ``fields`` say more."""
    return {
        "v": PROTOCOL,
        "replica": replica,
        "key": replica_key(replica),
        "schema": 1,
        "cursor": 0,
        "high": MAX_SEQ,
        "limit": 0,
        **fields,
    }
