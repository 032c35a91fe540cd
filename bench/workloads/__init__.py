"""The workloads of a run, in report order.

Each module defines one object following :class:`bench.model.Workload`.
Issue 2's workloads live here now; issue 7's (writes, sync, multi-tab,
contenders) are added the same way: a module, and a line in ``WORKLOADS``.
"""

from __future__ import annotations

from ..model import Workload
from .bulk_insert import BULK_INSERT
from .edgesql_ops import EDGESQL_OPS
from .indexeddb import INDEXEDDB
from .native_sqlite import NATIVE_SQLITE
from .other_tab import OTHER_TAB
from .point_query import POINT_QUERY
from .pyodide_sqlite import PYODIDE_SQLITE
from .pyscript_storage import PYSCRIPT_STORAGE
from .sqlocal import SQLOCAL

__all__ = ["WORKLOADS"]

WORKLOADS: tuple[Workload, ...] = (
    POINT_QUERY,
    BULK_INSERT,
    EDGESQL_OPS,
    OTHER_TAB,
    NATIVE_SQLITE,
    INDEXEDDB,
    PYODIDE_SQLITE,
    PYSCRIPT_STORAGE,
    SQLOCAL,
)
