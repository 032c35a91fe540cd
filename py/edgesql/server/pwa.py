"""The offline shell: the service worker at ``/sw.js`` and its generated precache list.

The precache list is generated, never hand-written. :data:`PRECACHE_GLOBS` are
URL globs; each is matched against the directory that the app mounts at that
URL prefix (read from the app's own routes, so the URL layout is defined once,
in ``app.py``), and the browser wheel, which exists only in memory, is added
from ``app.state.wheel``. Each entry carries a revision, a hash of its bytes;
the version of the whole list is a hash of its (url, revision) pairs, and the
service worker names its cache after it (see ``web/sw.js`` and docs/pwa.md).

Why not workbox-build's ``getManifest``: the wheel is not a file, the URL space
is assembled from five directories, and ``serve.py`` should not need Node at
run time. The globs and the revision scheme do the same job in a page of code.

The list is built once when the app is created (its size is printed at start)
and rebuilt whenever ``/sw.js`` is requested, rehashing only files whose size
or mtime changed. So a file edited while ``serve.py`` runs gives a new version,
and pages see "New version ready" instead of a stale copy served from cache.

Routes added::

    /sw.js                   web/sw.js with the precache list injected
    /precache-manifest.json  the same list, its version and total size (benchmarks)
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .static import Layer, LayeredFiles
from .wheel import Wheel

__all__ = [
    "PRECACHE_GLOBS",
    "PrecacheBuilder",
    "PrecacheEntry",
    "PrecacheManifest",
    "StaticMount",
    "install_pwa",
    "static_mounts",
]

#: What a page needs to start with no network. Globs are URL paths: ``*``
#: stays within one folder, ``**`` spans folders (Python's ``Path.glob``).
PRECACHE_GLOBS: tuple[str, ...] = (
    # the app shell: pages, page modules, Python, styles, manifest, icons
    "/**/*.html",
    "/**/*.js",
    "/**/*.mjs",
    "/**/*.py",
    "/**/*.css",
    "/**/*.json",
    "/**/*.toml",
    "/**/*.webmanifest",
    "/**/*.png",
    "/**/*.svg",
    # the DB worker
    "/worker/*.js",
    # Pyodide's core: what loadPyodide() fetches (checked in Chromium)
    "/vendor/pyodide/pyodide.mjs",
    "/vendor/pyodide/pyodide.asm.mjs",
    "/vendor/pyodide/pyodide.asm.wasm",
    "/vendor/pyodide/python_stdlib.zip",
    "/vendor/pyodide/pyodide-lock.json",
    # SQLite-Wasm, as the worker imports it (the opfs VFS's proxy is not used)
    "/vendor/sqlite-wasm/index.mjs",
    "/vendor/sqlite-wasm/sqlite3.wasm",
    # PyScript: core.js and every chunk it may import (plugins, editor, terminal)
    "/vendor/pyscript/*.js",
    "/vendor/pyscript/*.css",
)

#: Never precached: the service worker itself (the browser fetches it) and
#: PyScript's own service worker, which edgesql does not use.
PRECACHE_EXCLUDE: frozenset[str] = frozenset({"/sw.js", "/vendor/pyscript/service-worker.js"})

#: Stands for the precache list in web/sw.js; replaced when /sw.js is served.
PLACEHOLDER = "self.__EDGESQL_PRECACHE__"

_REVISION_CHARS = 20  # of a sha256 hex digest: 80 bits, plenty to tell versions apart


@dataclass(frozen=True)
class StaticMount:
    """A folder the app serves at a URL prefix (``""`` for the root).

    Several mounts may share a prefix: the layers of one ``LayeredFiles``
    (static.py), in the order a request looks in them. ``only`` and
    ``hidden`` are the layer's: which files of the folder it serves.
    """

    prefix: str
    directory: Path
    html: bool
    only: tuple[str, ...] | None = None
    hidden: tuple[Path, ...] = ()

    def serves(self, rel: PurePosixPath) -> bool:
        """Whether a request for ``rel`` (under the prefix) is answered by this mount's folder."""
        found = Layer(self.directory, self.only, self.hidden).find(str(rel))
        return found is not None and found[0].is_file()


@dataclass(frozen=True)
class PrecacheEntry:
    """One URL to precache, with a revision that changes when its bytes change."""

    url: str
    revision: str
    size: int


@dataclass(frozen=True)
class PrecacheManifest:
    """The precache list, its version and its total size."""

    version: str
    entries: tuple[PrecacheEntry, ...]

    @property
    def size_bytes(self) -> int:
        return sum(e.size for e in self.entries)

    def summary(self) -> str:
        """One line for the server's start-up output."""
        return (
            f"edgesql precache {self.version}: {len(self.entries)} files, "
            f"{self.size_bytes / 1e6:.1f} MB (served to the browser's cache by /sw.js)"
        )

    def to_json(self) -> dict[str, object]:
        return {
            "version": self.version,
            "size_bytes": self.size_bytes,
            "entries": [{"url": e.url, "revision": e.revision, "size": e.size} for e in self.entries],
        }


def _revision(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:_REVISION_CHARS]


def static_mounts(app: Starlette) -> list[StaticMount]:
    """The app's StaticFiles mounts (a ``LayeredFiles`` gives one per layer), longest prefix first."""
    mounts = []
    for route in app.routes:
        if isinstance(route, Mount) and isinstance(route.app, LayeredFiles):
            prefix, html = route.path.rstrip("/"), route.app.html
            mounts += [StaticMount(prefix, la.directory, html, la.only, la.hidden) for la in route.app.layers]
        elif isinstance(route, Mount) and isinstance(route.app, StaticFiles):
            directory = route.app.directory
            if directory is not None:
                mounts.append(StaticMount(route.path.rstrip("/"), Path(directory), route.app.html))
    return sorted(mounts, key=lambda m: len(m.prefix), reverse=True)  # stable: layers keep their order


class PrecacheBuilder:
    """Turns URL globs into a :class:`PrecacheManifest`, remembering file hashes.

    Thread-safe; :meth:`build` rehashes a file only when its size or mtime
    changed, so calling it on every ``/sw.js`` request is cheap.
    """

    def __init__(
        self,
        mounts: list[StaticMount],
        globs: tuple[str, ...] = PRECACHE_GLOBS,
        exclude: frozenset[str] = PRECACHE_EXCLUDE,
        extra: tuple[PrecacheEntry, ...] = (),
    ) -> None:
        self.mounts = sorted(mounts, key=lambda m: len(m.prefix), reverse=True)
        self.globs = globs
        self.exclude = exclude
        self.extra = extra
        self._hashes: dict[Path, tuple[int, int, str]] = {}
        self._lock = threading.Lock()
        self.manifest = self.build()

    def _mount_for(self, pattern: str) -> tuple[StaticMount, str]:
        for m in self.mounts:
            if pattern.startswith(m.prefix + "/"):
                return m, pattern[len(m.prefix) + 1 :]
        raise ValueError(f"precache glob {pattern!r} is under no static mount of the app")

    def _serving(self, url: str) -> StaticMount | None:
        """The mount whose folder answers ``url``: the longest prefix, then the first layer holding it."""
        first, rel = self._mount_for(url)
        return next(
            (m for m in self.mounts if m.prefix == first.prefix and m.serves(PurePosixPath(rel))), None
        )

    def _files(self) -> dict[str, Path]:
        """URL → file for every glob, each file under the mount that really serves it."""
        found: dict[str, Path] = {}
        for pattern in self.globs:
            first, rel_pattern = self._mount_for(pattern)
            for mount in (m for m in self.mounts if m.prefix == first.prefix):
                for path in mount.directory.glob(rel_pattern):
                    rel = PurePosixPath(path.relative_to(mount.directory).as_posix())
                    if not path.is_file() or any(p.startswith(".") or p == "__pycache__" for p in rel.parts):
                        continue
                    url = f"{mount.prefix}/{rel}"
                    # A file under "/" can be shadowed by a longer mount ("/worker/..."), or by an
                    # earlier layer; a layer may not serve it at all (its `only`, its `hidden`).
                    if url in self.exclude or self._serving(url) != mount:
                        continue
                    if mount.html and rel.name == "index.html":
                        url = url[: -len("index.html")]  # served (and navigated to) as the folder
                    found[url] = path
        return found

    def _hash(self, path: Path) -> tuple[str, int]:
        st = path.stat()
        known = self._hashes.get(path)
        if known and known[:2] == (st.st_mtime_ns, st.st_size):
            return known[2], st.st_size
        data = path.read_bytes()
        rev = _revision(data)
        self._hashes[path] = (st.st_mtime_ns, st.st_size, rev)
        return rev, len(data)

    def build(self) -> PrecacheManifest:
        """Match the globs now and return the current manifest (also kept in ``.manifest``)."""
        with self._lock:
            entries = [PrecacheEntry(url, *self._hash(path)) for url, path in self._files().items()]
            entries += self.extra
            entries.sort(key=lambda e: e.url)
            listing = "".join(f"{e.url} {e.revision}\n" for e in entries).encode()
            self.manifest = PrecacheManifest(_revision(listing)[:12], tuple(entries))
            return self.manifest


def wheel_entries(wheel: Wheel) -> tuple[PrecacheEntry, ...]:
    """The wheel and its index, as app.py serves them (both change with the wheel's hash)."""
    index = JSONResponse({"url": f"/wheels/{wheel.filename}", "sha256": wheel.sha256}).body
    return (
        PrecacheEntry("/wheels/edgesql.json", _revision(bytes(index)), len(index)),
        PrecacheEntry(f"/wheels/{wheel.filename}", wheel.sha256[:_REVISION_CHARS], len(wheel.data)),
    )


def render_service_worker(source: str, manifest: PrecacheManifest) -> str:
    """web/sw.js with the precache list put in place of :data:`PLACEHOLDER`."""
    if source.count(PLACEHOLDER) != 1:
        raise ValueError(f"web/sw.js must contain {PLACEHOLDER} exactly once")
    return source.replace(PLACEHOLDER, json.dumps(manifest.to_json(), separators=(",", ":")))


def install_pwa(app: Starlette, web_dir: Path) -> PrecacheBuilder:
    """Add /sw.js and /precache-manifest.json to ``app``; keep the builder in ``app.state.precache``.

    Call after the app's routes are in place: the precache globs are matched
    against its static mounts, and the wheel comes from ``app.state.wheel``.
    """
    builder = PrecacheBuilder(static_mounts(app), extra=wheel_entries(app.state.wheel))
    sw_source = web_dir / "sw.js"

    async def service_worker(request: Request) -> Response:
        manifest = await run_in_threadpool(builder.build)
        body = render_service_worker(sw_source.read_text(encoding="utf-8"), manifest)
        return Response(
            body,
            media_type="text/javascript",
            headers={"cache-control": "no-cache", "service-worker-allowed": "/"},
        )

    async def precache_manifest(request: Request) -> JSONResponse:
        manifest = await run_in_threadpool(builder.build)
        return JSONResponse(manifest.to_json(), headers={"cache-control": "no-cache"})

    # In front of the mounts: /sw.js would otherwise be web/sw.js without its list.
    app.router.routes[0:0] = [
        Route("/sw.js", service_worker),
        Route("/precache-manifest.json", precache_manifest),
    ]
    app.state.precache = builder
    return builder
