"""The Starlette app behind ``serve.py``: static files with the right headers.

Every response carries COOP/COEP/CORP, so pages are cross-origin isolated
(SharedArrayBuffer for the fast path) and nothing from another origin can be
embedded. Files are served from the checkout and from ``node_modules``;
nothing is ever fetched from outside. With a :class:`~.hosts.HostPolicy`,
a request for a host the server was not started for gets 421 on every path
(DNS rebinding; see ``hosts.py``).

The app's schema folder (``web/app/schema/``) is not served: the schema is
the primary's to give, as ``/sync/schema``, behind the token when there is
one (issue 12: its SQL files were public while ``/sync/schema`` was not).

URL layout::

    /                     web/ (the app, console.html, bridge.js, sw.js), except /app/schema/
    /worker/              worker/ (the DB worker)
    /vendor/pyodide/      node_modules/pyodide
    /vendor/sqlite-wasm/  node_modules/@sqlite.org/sqlite-wasm/dist
    /vendor/pyscript/     node_modules/@pyscript/core/dist
    /wheels/edgesql.json  {"url": ..., "sha256": ...} of the browser wheel
    /wheels/<file>.whl    the edgesql package, built from py/ at start
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass, field
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from .hosts import HostGuardMiddleware, HostPolicy
from .pwa import install_pwa
from .wheel import Wheel, build_browser_wheel

__all__ = ["ServerConfig", "create_app"]

ROOT = Path(__file__).resolve().parents[3]

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
    """What ``serve.py`` was asked to do."""

    data_dir: Path = field(default_factory=lambda: Path("data"))
    root: Path = ROOT
    hosts: HostPolicy | None = None  # None: any Host (in-process tests)


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


def _static(path: Path, html: bool = False) -> StaticFiles:
    return StaticFiles(directory=path, html=html, check_dir=False, follow_symlink=False)


def create_app(config: ServerConfig, extra_routes: list[BaseRoute] | None = None) -> Starlette:
    """Build the app: static files, the browser wheel, and any extra routes (/sync)."""
    root = config.root
    modules = root / "node_modules"
    missing = [p for p in (modules / "pyodide", modules / "@sqlite.org/sqlite-wasm/dist") if not p.is_dir()]
    if missing:
        raise SystemExit(
            f"missing browser assets {[str(p) for p in missing]}: run `make install` (npm ci) first"
        )
    wheel: Wheel = build_browser_wheel(root / "py" / "edgesql", __version__)

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

    async def not_served(request: Request) -> JSONResponse:
        message = "the app's schema is served as /sync/schema (with the app's token, if it has one)"
        return JSONResponse({"error": "not_found", "message": message}, 404)

    routes: list[BaseRoute] = [
        Route("/wheels/edgesql.json", wheel_index),
        Route("/wheels/{name}", wheel_file),
        *(extra_routes or []),
        Route("/app/schema", not_served),
        Route("/app/schema/{rest:path}", not_served),
        Mount("/worker", _static(root / "worker")),
        Mount("/vendor/pyodide", _static(modules / "pyodide")),
        Mount("/vendor/sqlite-wasm", _static(modules / "@sqlite.org/sqlite-wasm/dist")),
        Mount("/vendor/pyscript", _static(modules / "@pyscript/core/dist")),
        Mount("/", _static(root / "web", html=True)),
    ]
    app = Starlette(routes=routes)
    app.state.wheel = wheel
    install_pwa(app, root / "web")  # /sw.js and its precache list (app.state.precache)
    app.add_middleware(HeadersMiddleware)
    if config.hosts is not None:
        app.add_middleware(HostGuardMiddleware, policy=config.hosts)  # outermost: before anything runs
    return app
