"""Build hook: put the browser runtime into the edgesql wheel (``make dist``).

An installed edgesql serves an app's own folder with everything its pages
need (``edgesql serve APP_DIR``), outside this checkout and without
``node_modules/``. So a wheel carries the runtime under
``edgesql/server/runtime/``: the page modules of ``web/``, the DB worker
(``worker/``), and the parts of Pyodide, SQLite-Wasm and PyScript the
browser loads, copied from ``node_modules/`` (``make install`` fetched
them; building needs no network). Which files, is
``py/edgesql/server/assets.py``'s ``PARTS``: the list the server serves from.

Editable installs (``pip install -e``) get nothing here: the server finds
the runtime in the checkout itself.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

#: Where the wheel keeps the runtime (assets.PACKAGED, inside the package).
RUNTIME_IN_WHEEL = "edgesql/server/runtime"


def _assets(root: Path) -> Any:
    """py/edgesql/server/assets.py, loaded by path: the build environment has none of edgesql's dependencies."""
    path = root / "py" / "edgesql" / "server" / "assets.py"
    spec = importlib.util.spec_from_file_location("_edgesql_build_assets", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


class RuntimeHook(BuildHookInterface):  # type: ignore[type-arg]
    """Adds the browser runtime's files to a standard (not editable) wheel."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version != "standard":
            return
        root = Path(self.root)
        assets = _assets(root)
        try:
            runtime = assets.find_runtime(root)
        except assets.RuntimeMissingError as e:
            raise SystemExit(f"cannot build the edgesql wheel: {e}") from None
        if runtime.packaged:  # it would be packed twice, and be something other than this checkout's files
            raise SystemExit(
                f"cannot build the edgesql wheel: remove {runtime.base}, the runtime is copied in"
            )
        files = list(runtime.files())
        for part in assets.PARTS:
            if not any(dest.startswith(part.packaged + "/") for _, dest in files):
                raise SystemExit(f"cannot build the edgesql wheel: no file of {part.source} {part.files}")
        for source, dest in files:
            build_data["force_include"][str(source)] = f"{RUNTIME_IN_WHEEL}/{dest}"
