"""Small helpers for shared cases: they run under pytest and inside Pyodide, without pytest."""

from __future__ import annotations

import re
from types import TracebackType
from typing import Any


class raises:  # noqa: N801 - reads like pytest.raises, which Pyodide does not have
    """``with raises(IntegrityError, code=1555, match="UNIQUE"):`` for shared cases."""

    def __init__(
        self,
        cls: type[BaseException],
        *,
        code: int | None = None,
        name: str | None = None,
        match: str | None = None,
    ) -> None:
        self.cls = cls
        self.code = code
        self.name = name
        self.match = match
        self.value: Any = None

    def __enter__(self) -> raises:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> bool:
        if et is None:
            raise AssertionError(f"expected {self.cls.__name__}, nothing was raised")
        if not issubclass(et, self.cls):
            return False  # a different error: let it propagate, it tells more
        self.value = ev
        if self.code is not None:
            assert ev.sqlite_errorcode == self.code, f"code {ev.sqlite_errorcode} != {self.code}: {ev}"  # type: ignore[union-attr]
        if self.name is not None:
            assert ev.sqlite_errorname == self.name, f"name {ev.sqlite_errorname} != {self.name}: {ev}"  # type: ignore[union-attr]
        if self.match is not None:
            assert re.search(self.match, str(ev)), f"{self.match!r} not in {ev}"
        return True
