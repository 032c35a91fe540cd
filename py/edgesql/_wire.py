"""JSON with exact SQLite types, as spoken between Python and the DB worker.

Python's ``json`` already keeps what matters: a float is always written with
a ``.`` or an exponent (``1.0``), an integer never is, whatever its size. The
worker reads that source text, so REAL stays REAL and integers beyond 2^53
stay exact. Only two things need tags: bytes (``{"$b": base64}``) and
non-finite floats (``{"$f": "inf"}``), which JSON cannot spell.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

__all__ = ["dumps", "loads"]

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
    return json.loads(text, object_hook=_hook)
