"""The Starlette app behind ``serve.py`` and ``edgesql serve``: static files with the right headers.

Every response carries COOP/COEP/CORP, so pages are cross-origin isolated
(SharedArrayBuffer for the fast path) and nothing from another origin can be
embedded. Nothing is ever fetched from outside. With a :class:`~.hosts.HostPolicy`,
a request for a host the server was not started for gets 421 on every path
(DNS rebinding; see ``hosts.py``).

Two kinds of files are served: the app's own folder (``edgesql serve
APP_DIR``; for ``serve.py``, the demo app: this checkout's ``web/``) and
the browser runtime every page needs (``assets.py``: from the installed
wheel, or from this checkout and ``node_modules``). Both sit at ``/``, in
layers (``static.py``): edgesql's page modules, then the app, then the
defaults an app may replace (manifest, icons, style.css).

The app's schema and the primary's data are not served when they sit inside
the app's folder (the demo's ``web/app/schema/`` always): the schema is the
primary's to give, as ``/sync/schema``, behind the token when there is one
(issue 12: its SQL files were public while ``/sync/schema`` was not).

URL layout::

    /                     the runtime's page modules (bridge.js, pyodide-start.mjs, pwa.js, sw.js, ...),
                          then the app's folder, then manifest.webmanifest, icons/, style.css
    /worker/              worker/ (the DB worker)
    /vendor/pyodide/      Pyodide's core (npm pyodide)
    /vendor/sqlite-wasm/  SQLite-Wasm (npm @sqlite.org/sqlite-wasm, dist/)
    /vendor/pyscript/     PyScript (npm @pyscript/core, dist/)
    /wheels/edgesql.json  {"url": ..., "sha256": ...} of the browser wheel
    /wheels/<file>.whl    the edgesql package for Pyodide, built from this package at start
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass, field
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from .assets import PAGE_MODULES, PARTS, Runtime, RuntimeMissingError, find_runtime
from .hosts import HostGuardMiddleware, HostPolicy
from .pwa import install_pwa
from .static import Layer, LayeredFiles
from .wheel import Wheel, build_browser_wheel

__all__ = ["ServerConfig", "create_app", "shadowed"]

#: The checkout this file is in, when it is in one (not in an installed wheel).
ROOT = Path(__file__).resolve().parents[3]
#: The edgesql package, from which the browser's wheel is built.
PACKAGE = Path(__file__).resolve().parents[1]

mimetypes.add_type("application/wasm", ".wasm")
mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("application/manifest+json", ".webmanifest")
mimetypes.add_type("text/x-python", ".py")

SECURITY_HEADERS = [
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-embedder-policy", b"require-corp"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"x-content-type-options", b"nosniff"),
]


@dataclass
class ServerConfig:
    """What ``serve.py`` or ``edgesql serve`` was asked to do."""

    data_dir: Path = field(default_factory=lambda: Path("data"))
    root: Path = ROOT  # the checkout: the demo app, and the runtime where no wheel carries one
    hosts: HostPolicy | None = None  # None: any Host (in-process tests)
    app_dir: Path | None = None  # the app's folder, served at /; None: the demo (the checkout's web/)
    schema: Path | None = None  # the app's schema, never served as files (it is /sync/schema's to give)


class HeadersMiddleware:
    """Add isolation headers to every response, and ``no-cache`` to static files.

    ``no-cache`` means "revalidate": the browser keeps its copy but asks with
    the ETag, so a changed file is never served stale during development.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [h for h in SECURITY_HEADERS if h[0] not in present]
                if b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-cache"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _root_layers(runtime: Runtime, app: Layer) -> list[Layer]:
    """What ``/`` serves, in order: edgesql's page modules, the app, the defaults it may replace."""
    parts = [p for p in PARTS if not p.url]
    return [
        *(Layer(runtime.folder(p), only=p.files) for p in parts if p.reserved),
        app,
        *(Layer(runtime.folder(p), only=p.files) for p in parts if not p.reserved),
    ]


def _mounts(runtime: Runtime, app: Layer) -> list[Mount]:
    """One mount per URL prefix of the runtime, ``/`` (with the app) last."""
    prefixes = dict.fromkeys(p.url for p in PARTS if p.url)
    mounts = [
        Mount(url, LayeredFiles([Layer(runtime.folder(p), only=p.files) for p in PARTS if p.url == url]))
        for url in prefixes
    ]
    return [*mounts, Mount("/", LayeredFiles(_root_layers(runtime, app), html=True))]


#: Paths at the root that routes answer before any file: /wheels/..., /sync..., /precache-manifest.json.
ROUTED = ("wheels", "sync", "precache-manifest.json")


def shadowed(app_dir: Path, runtime: Runtime) -> list[Path]:
    """Files and folders of the app's folder that are never served: the runtime's URLs come first."""
    if any(app_dir.resolve() == runtime.folder(p).resolve() for p in PARTS if not p.url):
        return []  # the demo: web/ is both the app and the runtime's page modules
    found: list[Path] = [app_dir / name for name in ROUTED]
    for part in PARTS:
        if part.url:
            found.append(app_dir / part.url.strip("/"))
        elif part.reserved:
            folder = runtime.folder(part)
            found += [app_dir / p.relative_to(folder) for glob in part.files for p in folder.glob(glob)]
    return [p for p in dict.fromkeys(found) if p.exists()]


def create_app(config: ServerConfig, extra_routes: list[BaseRoute] | None = None) -> Starlette:
    """Build the app: static files, the browser wheel, and any extra routes (/sync)."""
    try:
        runtime = find_runtime(config.root)
    except RuntimeMissingError as e:
        raise SystemExit(str(e)) from None
    hidden = [p for p in (config.schema, config.data_dir) if p is not None]
    app_dir = config.app_dir
    if app_dir is None:  # the demo: its schema folder stays private whichever --schema is served
        app_dir = config.root / "web"
        hidden.append(app_dir / "app" / "schema")
        if not (app_dir / "index.html").is_file():
            raise SystemExit(
                f"no demo app at {app_dir}: serve.py serves the demo of a checkout; "
                "serve your own app with `edgesql serve APP_DIR`"
            )
    wheel: Wheel = build_browser_wheel(PACKAGE, __version__)

    async def wheel_index(request: Request) -> JSONResponse:
        return JSONResponse({"url": f"/wheels/{wheel.filename}", "sha256": wheel.sha256})

    async def wheel_file(request: Request) -> Response:
        if request.path_params["name"] != wheel.filename:
            return JSONResponse({"error": f"no wheel {request.path_params['name']}"}, 404)
        return Response(
            wheel.data,
            media_type="application/zip",
            headers={"etag": f'"{wheel.sha256}"'},
        )

    routes: list[BaseRoute] = [
        Route("/wheels/edgesql.json", wheel_index),
        Route("/wheels/{name}", wheel_file),
        *(extra_routes or []),
        *_mounts(runtime, Layer(app_dir, hidden=tuple(hidden))),
    ]
    app = Starlette(routes=routes)
    app.state.wheel = wheel
    app.state.app_dir = app_dir
    app.state.runtime = runtime
    install_pwa(app, runtime.folder(PAGE_MODULES))  # /sw.js and its precache list (app.state.precache)
    app.add_middleware(HeadersMiddleware)
    if config.hosts is not None:
        app.add_middleware(HostGuardMiddleware, policy=config.hosts)  # outermost: before anything runs
    return app
