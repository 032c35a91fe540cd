"""The browser runtime: which files every edgesql page needs, and where they are found.

Beside an app's own files, a page needs edgesql's page modules (``web/``:
bridge.js, pyodide-start.mjs, pwa.js, the service worker, ...), the DB
worker (``worker/``), the npm packages the browser loads (Pyodide,
SQLite-Wasm, PyScript) and the edgesql wheel for Pyodide (built from the
package itself when the server starts, see ``wheel.py``).

Where they are found::

    a wheel (make dist)    edgesql/server/runtime/{web,worker,vendor/...}   copied in by hatch_build.py
    this checkout          web/, worker/, node_modules/...                  read in place: an edit
                                                                            shows at the next reload

:data:`PARTS` lists them once, as globs: the build hook copies exactly
these files into the wheel, and the server serves exactly these files in
both cases, so a checkout's test run sees what a wheel carries.

This module uses the standard library only: ``hatch_build.py`` loads it by
path while building the wheel, where none of edgesql's dependencies are.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath

__all__ = [
    "APP_DEFAULTS",
    "PAGE_MODULES",
    "PARTS",
    "Part",
    "Runtime",
    "RuntimeMissingError",
    "find_runtime",
    "matches",
]

#: Where a wheel keeps the runtime, beside this module.
PACKAGED = Path(__file__).resolve().parent / "runtime"


@dataclass(frozen=True)
class Part:
    """Files served at one URL prefix, from one folder of the checkout."""

    url: str  # "" for the site's root
    source: str  # the folder in the checkout
    files: tuple[str, ...]  # globs relative to the folder (`*` within a folder, `**` across folders)
    #: True: these URLs are the runtime's, whatever the app holds. False: defaults an app may replace.
    reserved: bool = True

    @property
    def packaged(self) -> str:
        """The folder under ``edgesql/server/runtime/`` in a wheel."""
        return "web" if not self.url else self.url.strip("/")


#: edgesql's page modules: PyScript's interpreter (pyodide-start.mjs), the bridge to the DB worker,
#: Python's start (boot.js, snapshot*.js), the offline shell (pwa.js, and sw.js behind /sw.js).
PAGE_MODULES = Part("", "web", ("*.js", "*.mjs"))

#: What an installable app needs until it brings its own (pwa.js links the manifest when a
#: page has none; style.css styles its "New version ready" banner).
APP_DEFAULTS = Part("", "web", ("manifest.webmanifest", "icons/*.png", "style.css"), reserved=False)

#: The whole runtime; at ``/`` a request looks in the page modules, the app's folder, then the defaults.
PARTS: tuple[Part, ...] = (
    PAGE_MODULES,
    APP_DEFAULTS,
    Part("/worker", "worker", ("**/*.js",)),
    # Pyodide's core, as loadPyodide() fetches it (no packages: edgesql is a wheel of its own).
    Part(
        "/vendor/pyodide",
        "node_modules/pyodide",
        ("pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json"),
    ),
    # SQLite-Wasm as the worker imports it: index.mjs finds sqlite3.wasm beside itself. (Its init
    # also tries the "opfs" VFS, whose proxy edgesql does not use: opfs-sahpool needs none.)
    Part(
        "/vendor/sqlite-wasm",
        "node_modules/@sqlite.org/sqlite-wasm/dist",
        ("index.mjs", "sqlite3.wasm", "sqlite3-opfs-async-proxy.js"),
    ),
    # PyScript: core.js and every chunk it may import (plugins, editor, terminal); no source maps.
    Part("/vendor/pyscript", "node_modules/@pyscript/core/dist", ("*.js", "*.css")),
)


def matches(rel: PurePosixPath, globs: tuple[str, ...]) -> bool:
    """Whether the relative path ``rel`` matches one of ``globs`` (as :meth:`Path.glob` would)."""
    return any(_match(rel.parts, tuple(g.split("/"))) for g in globs)


def _match(parts: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_match(parts[i:], pattern[1:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatchcase(parts[0], pattern[0]) and _match(parts[1:], pattern[1:])


class RuntimeMissingError(Exception):
    """Neither a wheel's runtime nor a checkout's files are there; the message says what to do."""


@dataclass(frozen=True)
class Runtime:
    """The runtime found: in a wheel (``packaged``) or a checkout."""

    base: Path
    packaged: bool

    def folder(self, part: Part) -> Path:
        return self.base / part.packaged if self.packaged else self.base / part.source

    def files(self) -> Iterator[tuple[Path, str]]:
        """Every file of the runtime: (where it is, its path under ``runtime/`` in a wheel)."""
        for part in PARTS:
            folder = self.folder(part)
            for glob in part.files:
                for path in sorted(folder.glob(glob)):
                    rel = path.relative_to(folder)
                    if path.is_file() and not any(p.startswith(".") or p == "__pycache__" for p in rel.parts):
                        yield path, f"{part.packaged}/{rel.as_posix()}"


def find_runtime(checkout: Path) -> Runtime:
    """The runtime a wheel carries, else the one in ``checkout``; :class:`RuntimeMissingError` if neither."""
    if (PACKAGED / "web" / "bridge.js").is_file():
        return Runtime(PACKAGED, packaged=True)
    missing = [
        str(checkout / s) for s in dict.fromkeys(p.source for p in PARTS) if not (checkout / s).is_dir()
    ]
    if not missing:
        return Runtime(checkout, packaged=False)
    if (checkout / "worker").is_dir():
        raise RuntimeMissingError(f"missing browser assets {missing}: run `make install` (npm ci) first")
    raise RuntimeMissingError(
        "this edgesql has no browser runtime (worker, Pyodide, SQLite-Wasm, PyScript): install it from "
        "a wheel built with `make dist`, or run it from a checkout after `make install`"
    )
