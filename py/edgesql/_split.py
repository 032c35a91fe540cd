"""Split an SQL script into statements, by SQLite's own idea of "complete".

``sqlite3.complete_statement`` knows about strings, comments and trigger
bodies, so a ``;`` inside any of them does not end a statement.
"""

from __future__ import annotations

import sqlite3

__all__ = ["has_statement", "split_statements"]


def split_statements(sql: str) -> list[str]:
    """The complete statements in ``sql``, each stripped; a trailing fragment is kept."""
    out: list[str] = []
    start = 0
    pos = sql.find(";")
    while pos != -1:
        chunk = sql[start : pos + 1]
        if sqlite3.complete_statement(chunk):
            if chunk.strip(" \t\r\n;"):
                out.append(chunk.strip())
            start = pos + 1
        pos = sql.find(";", pos + 1)
    if sql[start:].strip():
        out.append(sql[start:].strip())
    return out


def has_statement(sql: str) -> bool:
    """Does ``sql`` hold more than blanks, semicolons and comments (what SQLite would prepare)?"""
    i, n = 0, len(sql)
    while i < n:
        if sql[i] in " \t\r\n\f;":
            i += 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            if end == -1:
                return False
            i = end + 1
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            if end == -1:
                return False  # SQLite reads an unterminated comment to the end
            i = end + 2
        else:
            return True
    return False
