"""Check statement parameters, the same way on every backend.

SQLite stores five kinds of value; edgesql binds exactly these Python types:
``None``, ``int`` (signed 64-bit; ``bool`` binds as 0/1), ``float``, ``str``
and ``bytes`` (``bytearray`` and ``memoryview`` are accepted as bytes). Any
other type is refused with a :class:`ProgrammingError` that names the type
and the parameter, on CPython and in the browser alike, so code that works
in one place works in the other.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from ._exceptions import DataError, ProgrammingError
from ._wire import tag_list, tag_values

__all__ = ["Params", "check_many", "check_params", "describe"]

Params = Sequence[Any] | Mapping[str, Any]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_SAFE = 2**53  # beyond it a JS number loses digits
SQLITE_MISMATCH = 20
SQLITE_RANGE = 25
SQLITE_TOOBIG = 18
_OK_TYPES = (type(None), int, float, str, bytes)
_BUFFER_TYPES = (bytes, bytearray, memoryview)


def describe(key: int | str) -> str:
    """How an error message names a parameter: ``parameter 2`` or ``parameter :name``."""
    return f"parameter {key + 1}" if isinstance(key, int) else f"parameter :{key}"


def _check_value(value: Any, key: int | str) -> Any:
    kind = type(value)
    if kind in _OK_TYPES:
        if kind is int and not INT64_MIN <= value <= INT64_MAX:
            raise DataError(
                f"{describe(key)} is {value}, outside SQLite's 64-bit INTEGER range "
                f"[-2**63, 2**63-1]; store it as TEXT or split it",
                sqlite_errorcode=SQLITE_TOOBIG,
                sqlite_errorname="SQLITE_TOOBIG",
            )
        if kind is str and not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ProgrammingError(
                    f"{describe(key)} is a str that is not valid Unicode (it holds a lone "
                    "surrogate); SQLite TEXT is UTF-8: fix the string or bind it as bytes",
                    sqlite_errorcode=SQLITE_MISMATCH,
                    sqlite_errorname="SQLITE_MISMATCH",
                ) from None
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):  # an int subclass, such as an IntEnum
        return _check_value(int(value), key)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return _check_value(str(value), key)
    if isinstance(value, _BUFFER_TYPES):
        return bytes(value)
    raise ProgrammingError(
        f"{describe(key)} has type {kind.__name__}, which SQLite cannot store; "
        "bind None, int, float, str or bytes (convert it first, e.g. str(value) or value.isoformat())",
        sqlite_errorcode=SQLITE_MISMATCH,
        sqlite_errorname="SQLITE_MISMATCH",
    )


def _plain(params: list[Any] | tuple[Any, ...], wire: bool) -> list[Any] | None:
    """``params`` as a list when every value is a plain None, float, int in range or ASCII str
    (nearly always): one tight loop instead of a call per value. None means "check each".

    With ``wire``, the same pass notices the values the browser's wire must tag
    (integral floats, ints beyond 2^53) and returns them tagged.
    """
    special = False
    for v in params:
        kind = type(v)
        if kind is int:
            if not INT64_MIN <= v <= INT64_MAX:
                return None
            if wire and not -_SAFE < v < _SAFE:
                special = True
        elif kind is str:
            if not v.isascii():
                return None
        elif kind is float:
            if wire and (v.is_integer() or v - v != 0.0):  # integral, -0.0, inf, nan
                special = True
        elif v is not None:
            return None
    return tag_list(list(params)) if special else list(params)


def check_params(params: Params | None, wire: bool = False) -> list[Any] | dict[str, Any]:
    """Validate ``params`` and return them as a list (positional) or dict (named).

    ``wire``: also tag them for the browser's wire (:func:`edgesql._wire.tag_values`).
    """
    if params is None:
        return []
    if type(params) is tuple or type(params) is list:
        plain = _plain(cast("list[Any]", params), wire)
        if plain is not None:
            return plain
    checked = _check_params(params)
    return tag_values(checked) if wire else checked


def _check_params(params: Params) -> list[Any] | dict[str, Any]:
    if isinstance(params, Mapping):
        out: dict[str, Any] = {}
        for k, v in params.items():
            if not isinstance(k, str):
                raise ProgrammingError(
                    f"named parameters need str keys, got {type(k).__name__} {k!r}",
                    sqlite_errorcode=SQLITE_RANGE,
                    sqlite_errorname="SQLITE_RANGE",
                )
            out[k.lstrip(":@$")] = _check_value(v, k)
        return out
    if isinstance(params, str | bytes | bytearray | memoryview):
        raise ProgrammingError(
            f"params must be a sequence or a mapping of values, not a single "
            f"{type(params).__name__}; write ({params!r},) for one parameter",
            sqlite_errorcode=SQLITE_RANGE,
            sqlite_errorname="SQLITE_RANGE",
        )
    if not isinstance(params, Sequence):
        if isinstance(params, Iterable):
            params = list(params)
        else:
            raise ProgrammingError(
                f"params must be a sequence (tuple, list) or a mapping, not {type(params).__name__}",
                sqlite_errorcode=SQLITE_RANGE,
                sqlite_errorname="SQLITE_RANGE",
            )
    return [_check_value(v, i) for i, v in enumerate(params)]


def check_many(seq_of_params: Iterable[Params], wire: bool = False) -> list[list[Any] | dict[str, Any]]:
    """Validate every parameter set of an ``executemany``; errors name the row.

    ``wire``: also tag them for the browser's wire, as :func:`check_params` does.
    """
    if isinstance(seq_of_params, str | bytes | Mapping):
        raise ProgrammingError(
            "executemany takes an iterable of parameter sets, e.g. [(1, 'a'), (2, 'b')]",
            sqlite_errorcode=SQLITE_RANGE,
            sqlite_errorname="SQLITE_RANGE",
        )
    out: list[list[Any] | dict[str, Any]] = []
    append = out.append
    for n, params in enumerate(seq_of_params):
        if type(params) is tuple or type(params) is list:
            plain = _plain(cast("list[Any]", params), wire)
            if plain is not None:
                append(plain)
                continue
        try:
            append(check_params(params, wire))
        except (ProgrammingError, DataError) as e:
            raise type(e)(
                f"row {n} of executemany: {e}",
                sqlite_errorcode=e.sqlite_errorcode,
                sqlite_errorname=e.sqlite_errorname,
            ) from None
    return out
