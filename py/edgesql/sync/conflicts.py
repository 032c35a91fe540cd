"""Edits of this device that lost, as the app reads them: ``await db.conflicts()``.

A device's own edit can lose three ways: overwritten by a later write on another
device, erased by a delete that wins, or rejected by the primary (a constraint, a
permission, a stamp from the future). The sync programs record each one in
``_edgesql_conflicts`` (constraints.py); this module reads them back with the
values decoded, for a notice such as "Your edit to 'Buy milk' was overwritten".
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from .codec import decode

__all__ = ["Conflict", "conflicts_sql", "dismiss_sql", "parse_key"]


@dataclass(frozen=True)
class Conflict:
    """One of this device's edits that lost.

    ``kind`` is ``overwritten``, ``deleted`` or ``rejected``; ``key`` the row's
    primary key values; ``col`` the column (None for a whole row); ``mine`` what
    this device had and ``theirs`` what won (None for a rejection); ``writer`` the
    replica whose change won; ``reason`` why the primary refused a rejected one;
    ``row`` the row's other columns as this device had them, for a row that was deleted or
    rejected (e.g. its title, to name it in a notice), else None.
    """

    id: int
    at: str
    kind: str
    tbl: str
    pk: str
    key: tuple[Any, ...]
    col: str | None
    mine: Any
    theirs: Any
    writer: str | None
    reason: str | None
    row: dict[str, Any] | None = None


def parse_key(pk: str) -> tuple[Any, ...]:
    """A canonical key (``["tHEX", "i42", "bHEX"]``) as Python values."""
    out: list[Any] = []
    for part in json.loads(pk):
        tag, body = part[:1], part[1:]
        out.append(
            int(body) if tag == "i" else bytes.fromhex(body).decode() if tag == "t" else bytes.fromhex(body)
        )
    return tuple(out)


def conflicts_sql(include_dismissed: bool) -> str:
    """The query :meth:`Connection.conflicts` runs (values decoded by the codec's SQL)."""
    where = "" if include_dismissed else "WHERE dismissed = 0"
    return (
        f"SELECT id, at, kind, tbl, pk, col, {decode('mine')} AS mine, {decode('theirs')} AS theirs, writer, reason, "
        "row "
        f"FROM _edgesql_conflicts {where} ORDER BY id"
    )


def dismiss_sql() -> str:
    """Mark conflicts seen (``?``: a JSON array of ids)."""
    return "UPDATE _edgesql_conflicts SET dismissed = 1 WHERE id IN (SELECT value FROM json_each(?))"


def decode_cell(cell: list[str]) -> Any:
    """One encoded value (codec.py's table) as Python: ``["t", "x"]`` → ``"x"``."""
    tag = cell[0]
    if tag == "n":
        return None
    if tag == "i":
        return int(cell[1])
    if tag == "t":
        return cell[1]
    if tag == "T":
        return bytes.fromhex(cell[1]).decode("utf-8", "replace")
    if tag == "b":
        return bytes.fromhex(cell[1])
    if len(cell) == 3:  # ["r", mantissa, exponent]: exact
        return math.ldexp(int(cell[1]), int(cell[2]))
    return float(cell[1])  # ["r", "-0"], ["r", "inf"], ...


def from_row(r: Any) -> Conflict:
    row = None
    if r[10]:
        row = {c: decode_cell(v) for c, v in json.loads(r[10]).items() if not c.startswith("_edgesql_")}
    return Conflict(r[0], r[1], r[2], r[3], r[4], parse_key(r[4]), r[5], r[6], r[7], r[8], r[9], row)
