"""JSON with exact SQLite types, as spoken between Python and the DB worker.

Python's ``json`` already keeps what matters: a float is always written with
a ``.`` or an exponent (``1.0``), an integer never is, whatever its size.
Bytes travel as ``{"$b": base64}`` and non-finite floats as ``{"$f": "inf"}``,
which JSON cannot spell.

Statements' values go one step further (:func:`tag_values`, and requests
that start with ``{"w":1``): the two values a plain ``JSON.parse`` would get
wrong are tagged here, an integral float (``{"$f": "3.0"}``, else it would
bind as INTEGER) and an int beyond 2^53 (``{"$i": "9007199254740993"}``,
else it would lose digits). The worker then parses with plain ``JSON.parse``
and turns the few tagged objects back into values, instead of running a
reviver on every number (six times slower on a 100k-row executemany).
Other requests are parsed with the reviver, which reads each number's
source text (see worker/codec.js).
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

__all__ = ["PLAIN", "dumps", "loads", "tag_list", "tag_values"]

#: The first key of a request whose values are tagged (:func:`tag_values`); see worker/codec.js.
PLAIN = "w"
_SAFE = 2**53

_encode = json.JSONEncoder(
    allow_nan=False, ensure_ascii=False, separators=(",", ":"), default=lambda o: _default(o)
).encode
_b64encode = base64.b64encode
_b64decode = base64.b64decode


def _default(o: Any) -> Any:
    if isinstance(o, bytes | bytearray | memoryview):
        return {"$b": _b64encode(o).decode("ascii")}
    raise TypeError(f"cannot send {type(o).__name__} to the worker")


def _tag_floats(o: Any) -> Any:
    if isinstance(o, float) and not math.isfinite(o):
        return {"$f": "nan" if math.isnan(o) else ("inf" if o > 0 else "-inf")}
    if isinstance(o, list | tuple):
        return [_tag_floats(v) for v in o]
    if isinstance(o, dict):
        return {k: _tag_floats(v) for k, v in o.items()}
    return o


def _tag(v: Any) -> Any:
    kind = type(v)
    if kind is float and (v.is_integer() or v - v != 0.0):  # integral, -0.0, inf, nan
        return {"$f": repr(v)}
    if kind is int and not -_SAFE < v < _SAFE:
        return {"$i": str(v)}
    return v


def tag_values(values: list[Any] | dict[str, Any]) -> list[Any] | dict[str, Any]:
    """Checked statement values, with those a plain ``JSON.parse`` would get wrong tagged."""
    if isinstance(values, dict):
        return {k: _tag(v) for k, v in values.items()}
    return tag_list(values)


def tag_list(values: list[Any]) -> list[Any]:
    """:func:`tag_values` of positional values."""
    return [_tag(v) for v in values]


def dumps(obj: Any) -> str:
    """Encode a request for the worker."""
    try:
        return _encode(obj)
    except ValueError:  # inf or nan somewhere: tag them (rare, so not on the fast path)
        return _encode(_tag_floats(obj))


def _hook(d: dict[str, Any]) -> Any:
    if len(d) == 1 and "$b" in d:
        return _b64decode(d["$b"])
    return d


def loads(text: str) -> Any:
    """Decode an answer from the worker."""
    # The hook costs a Python call per JSON object (a point query's answer takes 2.5x as long
    # with it), and only a BLOB needs it. A TEXT holding the same characters cannot match:
    # inside a JSON string its quotes are escaped.
    if '"$b":' in text:
        return json.loads(text, object_hook=_hook)
    return _plain_loads(text)


_plain_loads = json.loads
