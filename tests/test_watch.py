"""Live queries on CPython (the same cases run in the browser in test_watch_browser.py)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from tests.aio import run
from tests.cases.watch_cases import CASES

import edgesql


@pytest.mark.parametrize("name", sorted(CASES))
def test_watch_case(name: str, tmp_path: Path) -> None:
    counter = itertools.count()

    def connect(**options: Any) -> Any:
        return edgesql.connect(str(tmp_path / f"w{next(counter)}.db"), **options)

    run(CASES[name](connect))
