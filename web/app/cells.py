"""Sync bookkeeping made readable: row keys, encoded cells and clock stamps.

The outbox, the rejected table and the clock keep values in the sync format
(docs/protocol.md), so that nothing passes through a lossy number: a row key
is a JSON array with one ASCII part per key column (``["t6d696c6b"]``), a
cell is a JSON array of strings with its type tag first (``["t","Milk"]``),
and a stamp is a hybrid logical clock, milliseconds since the epoch shifted
left by 16 bits plus a counter. The demo app (rejected writes) and the
devtools (outbox, clock) show them to people::

    >>> key_text('["t6d696c6b", "i42"]')
    'milk, 42'
    >>> cells_text('{"title": ["t", "Milk"], "_edgesql_exists": ["i", "1"]}')
    [('title', "'Milk'"), ('row', 'inserted')]
    >>> hlc_text(115_612_464_324_476_931)
    '2025-11-25 21:30:06.123 UTC +3'

These are for display only; SQL (``codec.decode``) is the exact way back.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

__all__ = ["EXISTS", "cells_text", "hlc_ms", "hlc_text", "key_text", "value_text"]

#: The cell that says whether a row exists (1) or was deleted (0).
EXISTS = "_edgesql_exists"

_SHOW_CHARS = 80  # longer text and blobs are cut for display, with an ellipsis


def _cut(text: str) -> str:
    return text if len(text) <= _SHOW_CHARS else text[: _SHOW_CHARS - 1] + "…"


def _key_part(part: str) -> str:
    kind, body = part[:1], part[1:]
    if kind == "i":
        return body
    if kind == "t":
        try:
            return _cut(bytes.fromhex(body).decode("utf-8", errors="replace"))
        except ValueError:
            return part
    if kind == "b":
        return _cut(f"x'{body.lower()}'")
    return part


def key_text(pk: str) -> str:
    """A row key (``'["t6d696c6b"]'``) as the values of its key columns: ``milk``."""
    try:
        parts = json.loads(pk)
    except (TypeError, ValueError):
        return str(pk)
    if not isinstance(parts, list):
        return str(pk)
    return ", ".join(_key_part(str(p)) for p in parts)


def value_text(enc: object) -> str:
    """One encoded cell (``["i","42"]``) as SQL-looking text: ``42``, ``'Milk'``, ``NULL``."""
    if not isinstance(enc, list) or not enc:
        return str(enc)
    tag = enc[0]
    arg = str(enc[1]) if len(enc) > 1 else ""
    if tag == "n":
        return "NULL"
    if tag == "i":
        return arg
    if tag == "t":
        return _cut("'" + arg.replace("'", "''") + "'")
    if tag == "T":
        return _cut("'" + bytes.fromhex(arg).decode("utf-8", errors="replace").replace("\0", "\\0") + "'")
    if tag == "b":
        return _cut(f"x'{arg.lower()}'")
    if tag == "r":
        special = {"0": "0.0", "-0": "-0.0", "inf": "Inf", "-inf": "-Inf"}
        if arg in special:
            return special[arg]
        try:
            return repr(math.ldexp(int(arg), int(enc[2])))
        except (IndexError, ValueError, OverflowError):
            return str(enc)
    return str(enc)


def cells_text(cells: str) -> list[tuple[str, str]]:
    """The cells of one captured change as ``(column, value)`` pairs.

    The existence cell becomes ``("row", "inserted")`` or ``("row", "deleted")``
    and comes last, as it does in the sync format.
    """
    try:
        data = json.loads(cells)
    except (TypeError, ValueError):
        return [("cells", _cut(str(cells)))]
    if not isinstance(data, dict):
        return [("cells", _cut(str(cells)))]
    out = [(str(col), value_text(enc)) for col, enc in data.items() if col != EXISTS]
    if EXISTS in data:
        out.append(("row", "inserted" if value_text(data[EXISTS]) == "1" else "deleted"))
    return out


def hlc_ms(hlc: int) -> int:
    """The wall-clock part of a stamp: milliseconds since the epoch."""
    return int(hlc) >> 16


def hlc_text(hlc: int | None) -> str:
    """A stamp as ``2026-11-25 21:30:06.123 UTC +3`` (the counter after the time)."""
    if not hlc:
        return "—"
    hlc = int(hlc)
    when = datetime.fromtimestamp(hlc_ms(hlc) / 1000, UTC)
    counter = hlc & 0xFFFF
    return when.strftime("%Y-%m-%d %H:%M:%S.") + f"{when.microsecond // 1000:03d} UTC +{counter}"
