"""Static files from several folders at one URL prefix: the runtime's, then the app's.

``edgesql serve APP_DIR`` serves the app's folder at ``/``, and edgesql's
page modules (``/bridge.js``, ``/pyodide-start.mjs``, ...) at ``/`` too:
the pages and the runtime's own modules name them by absolute URL. So a
request looks in layers, and the first layer that holds the file serves it::

    Mount("/", LayeredFiles([Layer(runtime_web, only=("*.js", "*.mjs")),   # edgesql's page modules
                             Layer(app_dir, hidden=(schema, data)),           # the app
                             Layer(runtime_web, only=("manifest.webmanifest", "icons/*.png"))],
                            html=True))                                        # defaults it may replace

A layer serves only the files its globs name (``only``), never a path
inside ``hidden`` (the app's schema and the primary's data, when they sit
inside the app's folder), and nothing outside its folder, symbolic links
included, as Starlette's own StaticFiles. The precache list (``pwa.py``)
reads the same layers, so what is cached is what is served.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from starlette.responses import JSONResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from .assets import matches

__all__ = ["HIDDEN_MESSAGE", "Layer", "LayeredFiles"]

HIDDEN_MESSAGE = (
    "not served: the app's schema is served as /sync/schema (with the app's token, if it has one), "
    "and the primary's data is only reached through /sync"
)


@dataclass(frozen=True)
class Layer:
    """A folder, the files of it that are served, and the paths inside it that never are."""

    directory: Path
    only: tuple[str, ...] | None = None  # globs relative to the folder; None: every file
    hidden: tuple[Path, ...] = ()  # files or folders inside it, never served

    def __post_init__(self) -> None:
        object.__setattr__(self, "directory", Path(os.path.realpath(self.directory)))
        object.__setattr__(self, "hidden", tuple(Path(os.path.realpath(h)) for h in self.hidden))

    def is_hidden(self, full: Path) -> bool:
        return any(full == h or h in full.parents for h in self.hidden)

    def find(self, rel: str) -> tuple[Path, os.stat_result] | None:
        """The file or folder ``rel`` (a normalized relative path) of this layer, if it serves it."""
        if self.only is not None and not matches(PurePosixPath(rel), self.only):
            return None
        full = Path(os.path.realpath(self.directory / rel))
        if full != self.directory and self.directory not in full.parents:
            return None  # out of the folder, by `..` or a symbolic link
        if self.is_hidden(full):
            return None
        try:
            return full, full.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None


class LayeredFiles(StaticFiles):
    """Starlette's StaticFiles over :class:`Layer` s: the first layer holding a path serves it."""

    def __init__(self, layers: list[Layer], html: bool = False) -> None:
        super().__init__(directory=layers[0].directory, html=html, check_dir=False, follow_symlink=False)
        self.layers = tuple(layers)
        self.all_directories = [layer.directory for layer in layers]

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        if path.startswith(("/", "\\")):
            return "", None
        for layer in self.layers:
            found = layer.find(path)
            if found is not None:
                return str(found[0]), found[1]
        return "", None

    async def get_response(self, path: str, scope: Scope) -> Response:
        # Say why a hidden path is not served, rather than a bare 404 (issue 12: the schema's SQL files).
        if self._hidden(path):
            return JSONResponse({"error": "not_found", "message": HIDDEN_MESSAGE}, 404)
        return await super().get_response(path, scope)

    def _hidden(self, path: str) -> bool:
        if path.startswith(("/", "\\")):
            return False
        try:
            return any(
                layer.hidden and layer.is_hidden(Path(os.path.realpath(layer.directory / path)))
                for layer in self.layers
            )
        except (OSError, ValueError):  # a null byte, a name too long: StaticFiles answers 404
            return False
