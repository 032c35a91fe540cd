"""Results of a statement: :class:`ResultSet` and :class:`Row`.

A :class:`Row` is a tuple, so it compares equal to the tuple of its values
and unpacks like one; it also answers ``row["column"]``. The per-result
subclass that knows the column names is cached by column tuple, because
creating a class per query would cost more than the query itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Any, ClassVar, SupportsIndex, overload

__all__ = ["ResultSet", "Row"]


class Row(tuple[Any, ...]):
    """One result row: index it by position or by column name."""

    __slots__ = ()
    _index: ClassVar[dict[str, int]] = {}
    columns: ClassVar[tuple[str, ...]] = ()

    @overload
    def __getitem__(self, key: SupportsIndex) -> Any: ...
    @overload
    def __getitem__(self, key: slice[Any, Any, Any]) -> tuple[Any, ...]: ...
    @overload
    def __getitem__(self, key: str) -> Any: ...
    def __getitem__(self, key: SupportsIndex | slice[Any, Any, Any] | str) -> Any:
        if isinstance(key, str):
            try:
                key = self._index[key]
            except KeyError:
                raise KeyError(f"no column named {key!r}; the columns are {list(self.columns)}") from None
        return tuple.__getitem__(self, key)

    def keys(self) -> tuple[str, ...]:
        """The column names, in order."""
        return self.columns

    def asdict(self) -> dict[str, Any]:
        """The row as ``{column: value}``."""
        return dict(zip(self.columns, self, strict=True))

    def __repr__(self) -> str:
        inner = ", ".join(f"{c}={v!r}" for c, v in zip(self.columns, self, strict=False))
        return f"Row({inner})"


@lru_cache(maxsize=256)
def _row_class(columns: tuple[str, ...]) -> type[Row]:
    index: dict[str, int] = {}
    for i, name in enumerate(columns):
        index.setdefault(name, i)  # like sqlite3.Row: the first of duplicate names wins
    return type("Row", (Row,), {"__slots__": (), "_index": index, "columns": columns})


class ResultSet:
    """What a statement returned: its columns, rows and effect.

    ``rows_affected`` counts the rows the statement itself inserted, updated
    or deleted (not those changed by triggers); ``last_insert_rowid`` is the
    connection's last inserted rowid when the statement changed rows, else
    ``None``.
    """

    __slots__ = ("_raw", "_rows", "columns", "last_insert_rowid", "rows_affected")

    def __init__(
        self,
        columns: Sequence[str],
        raw_rows: list[Sequence[Any]],
        rows_affected: int = 0,
        last_insert_rowid: int | None = None,
    ) -> None:
        self.columns: tuple[str, ...] = tuple(columns)
        self._raw = raw_rows
        self._rows: list[Row] | None = None
        self.rows_affected = rows_affected
        self.last_insert_rowid = last_insert_rowid

    @property
    def rows(self) -> list[Row]:
        """The rows, each a :class:`Row`."""
        if self._rows is None:
            cls = _row_class(self.columns)
            new = tuple.__new__
            self._rows = [new(cls, r) for r in self._raw]
        return self._rows

    def __len__(self) -> int:
        return len(self._raw)

    def __iter__(self) -> Iterator[Row]:
        return iter(self.rows)

    def __getitem__(self, i: int) -> Row:
        return self.rows[i]

    def first(self) -> Row | None:
        """The first row, or ``None`` when there is none."""
        return self.rows[0] if self._raw else None

    def scalar(self) -> Any:
        """The first column of the first row, or ``None`` when there is no row."""
        return self._raw[0][0] if self._raw else None

    def __repr__(self) -> str:
        return (
            f"ResultSet(columns={self.columns!r}, rows={len(self._raw)}, "
            f"rows_affected={self.rows_affected}, last_insert_rowid={self.last_insert_rowid})"
        )
