"""The operations-centre dashboard: ``GET /dashboard/``, a static page on the public OGC API.

:class:`Dashboard` serves ``sdi/dashboard/static`` and the map library from ``node_modules``,
inside the access control, so the page sees what an anonymous client sees. Using it:
``docs/operator-guide.md``; where it sits: ``docs/internals.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from sdi.api.asgi import error_response
from sdi.settings import PROJECT_DIR

PREFIX = "/dashboard"
STATIC_DIR = Path(__file__).parent / "static"
# OpenLayers' full build (one UMD file defining the global `ol`) and its stylesheet.
LIBRARIES = {
    "ol.js": ("ol/dist/ol.js", "text/javascript"),
    "ol.css": ("ol/ol.css", "text/css"),
}
# Same origin only: the page may not load code, styles, images or data from anywhere else.
# OpenLayers sets element styles from script (allowed) and draws tiles through blob:/data: URLs.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'self'; form-action 'none'"
)
_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    # Revalidate on each load (ETag / Last-Modified make it cheap): a wall screen that runs
    # for weeks picks up a new version of the page at its next reload.
    "cache-control": "no-cache",
}


def node_modules() -> Path:
    return PROJECT_DIR / "node_modules"


class _Static(StaticFiles):
    """The page's own files, with the dashboard's security and caching headers."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        try:
            return await super().get_response(path, scope)
        except HTTPException as exc:  # no such file, or a method other than GET/HEAD
            code = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "Error")
            return error_response(exc.status_code, code, f"dashboard: {exc.detail}")

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers.update(_HEADERS)
        return response


async def _library(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in LIBRARIES:
        return error_response(404, "NotFound", f"dashboard: no library {name!r}")
    relative, media_type = LIBRARIES[name]
    path = node_modules() / relative
    if not path.is_file():
        # npm ci has not run on this machine: say so instead of a blank wall screen.
        return error_response(
            503,
            "ServiceUnavailable",
            f"the dashboard's map library is not installed ({path} is missing): "
            "run ./dev setup (npm ci) on the server",
        )
    return FileResponse(path, media_type=media_type, headers=_HEADERS)


async def _to_index(request: Request) -> Response:
    return RedirectResponse(f"{request.scope.get('root_path', '')}{PREFIX}/", 308)


ROUTES: list[BaseRoute] = [
    Route(PREFIX, _to_index, methods=["GET", "HEAD"]),
    Route(PREFIX + "/lib/{name}", _library, methods=["GET", "HEAD"]),
    Mount(PREFIX, app=_Static(directory=STATIC_DIR, html=True)),
]


class Dashboard:
    """ASGI dispatcher: ``/dashboard`` and below are the dashboard, the rest goes to ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.router = Router(routes=ROUTES)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == PREFIX or path.startswith(PREFIX + "/")):
            await self.router(scope, receive, send)
            return
        await self.app(scope, receive, send)
