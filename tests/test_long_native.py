"""Long statements and big results (tests/cases/long_cases.py) on CPython's sqlite3."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from tests.aio import run
from tests.cases.long_cases import CASES

import edgesql


@pytest.mark.parametrize("name", sorted(CASES))
def test_long_case(name: str, tmp_path: Path) -> None:
    counter = itertools.count()

    def connect(**options: Any) -> Any:
        return edgesql.connect(str(tmp_path / f"case{next(counter)}.db"), **options)

    run(CASES[name](connect))
