"""The service's own web pages: local assets, a Content-Security-Policy, Vietnamese first.

pygeoapi renders its HTML pages from Jinja2 templates that load Bootstrap, Leaflet and Swagger
UI from public CDNs and draw maps on OpenStreetMap's tiles; most provincial networks have no
route to the internet, and with API keys that third-party code would run with the visitor's
key. So:

- the project's templates (``sdi/api/templates``, named in ``pygeoapi-config.yml`` by
  :mod:`sdi.publish.config`) override pygeoapi's; they load only ``/assets/…``;
- ``/assets/lib/{name}`` serves a fixed list of files of the npm packages pinned in
  ``package.json`` (``npm ci`` by ``scripts/setup.sh``), ``/assets/sdi/{name}`` the project's
  own scripts and styles (``sdi/api/static``): the templates carry no inline script;
- every HTML answer gets a Content-Security-Policy that keeps the page on this origin (plus
  the intranet tile server of ``SDI_BASEMAP_URL``, if one is set);
- the Vietnamese catalogue of the templates' texts lives in ``sdi/translations`` (gettext,
  ``vi/LC_MESSAGES/messages.po`` and its compiled ``.mo``); pygeoapi 0.24 reads it from
  ``server.locale_dir``.
- ``/assets/sdi/labels.json``: the properties' Vietnamese and English labels
  (``sdi/translations/fields.yml``), for the collection and queryables pages;
- the templates get the public collections grouped by domain (:func:`domains`) for the landing
  page and the collections list;
- Vietnamese unless asked otherwise: ``?lang=en``, or an Accept-Language that prefers English,
  but not Qt's automatic header (:func:`automatic_languages`), which QGIS sends from the
  desktop's locale: QGIS lists the Vietnamese titles whatever the locale it runs in.

:func:`configure` resolves the relative paths of the committed configuration against the
project and sets the base map from the settings; :class:`Pages` is the ASGI middleware.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sdi.api.asgi import error_response
from sdi.layers import Layer
from sdi.publish.config import texts
from sdi.settings import PROJECT_DIR, Settings

PREFIX = "/assets"
TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
TRANSLATIONS = PROJECT_DIR / "sdi" / "translations"

# name served under /assets/lib/ → (file under node_modules, media type)
LIBRARIES: dict[str, tuple[str, str]] = {
    "bootstrap.min.css": ("bootstrap/dist/css/bootstrap.min.css", "text/css"),
    "bootstrap.bundle.min.js": ("bootstrap/dist/js/bootstrap.bundle.min.js", "text/javascript"),
    "leaflet.js": ("leaflet/dist/leaflet.js", "text/javascript"),
    "leaflet.css": ("leaflet/dist/leaflet.css", "text/css"),
    # leaflet.css names its images relative to itself: images/…
    "images/layers.png": ("leaflet/dist/images/layers.png", "image/png"),
    "images/layers-2x.png": ("leaflet/dist/images/layers-2x.png", "image/png"),
    "images/marker-icon.png": ("leaflet/dist/images/marker-icon.png", "image/png"),
    "images/marker-icon-2x.png": ("leaflet/dist/images/marker-icon-2x.png", "image/png"),
    "images/marker-shadow.png": ("leaflet/dist/images/marker-shadow.png", "image/png"),
    "swagger-ui.css": ("swagger-ui-dist/swagger-ui.css", "text/css"),
    "swagger-ui-bundle.js": ("swagger-ui-dist/swagger-ui-bundle.js", "text/javascript"),
    "favicon-32x32.png": ("swagger-ui-dist/favicon-32x32.png", "image/png"),
}
OWN = {
    "pages.js": "text/javascript",
    "pages.css": "text/css",
}
# Revalidated on each load (ETag): a new release of the pages is picked up at once.
_ASSET_HEADERS = {"x-content-type-options": "nosniff", "cache-control": "no-cache"}


def node_modules() -> Path:
    return PROJECT_DIR / "node_modules"


def csp(basemap_url: str | None = None) -> str:
    """The policy of every HTML answer: this origin only (and the intranet tile server).

    Nothing inline: every script and style sheet is a file under /assets (the templates carry
    no style attribute, no <style>, no inline script). Leaflet, OpenLayers and Swagger UI set
    ``element.style`` from script (CSSOM), which the policy does not govern.
    """
    images = "'self' data: blob:"
    if basemap_url:
        parts = urlsplit(basemap_url.replace("{s}", "a"))
        images += f" {parts.scheme}://{parts.netloc}"
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        f"img-src {images}; connect-src 'self'; font-src 'self' data:; worker-src 'self' blob:; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'self'; form-action 'self'"
    )


# Qt's own Accept-Language (QNetworkAccessManager, so QGIS's OAPIF and WFS clients): the system
# locale's languages, then a bare "*", no quality values: "en-US,*", "en,*", "vi-VN,en,*".
_TAG = r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*"
_QT_LANGUAGES = re.compile(rf"^\s*{_TAG}(?:\s*,\s*{_TAG})*\s*,\s*\*\s*$")


def automatic_languages(value: str) -> bool:
    """Whether an Accept-Language is Qt's automatic one, the desktop's locale rather than a
    language a person chose: the pages and metadata then stay Vietnamese, as with no header.

    A browser's header has quality values and no bare ``*``; ``?lang=en`` still gives English.

    >>> automatic_languages("en-US,*"), automatic_languages("vi-VN,en,*")
    (True, True)
    >>> automatic_languages("en-GB,en;q=0.8"), automatic_languages("en"), automatic_languages("*")
    (False, False, False)
    """
    return bool(_QT_LANGUAGES.match(value))


# The landing page's groups, in this order (a layer's ``domain``)
DOMAINS: dict[str, dict[str, str]] = {
    "planning": {"vi": "Quy hoạch", "en": "Planning"},
    "hazard": {"vi": "Thiên tai", "en": "Hazard"},
    "operations": {"vi": "Vận hành đô thị", "en": "Operations"},
    "land": {"vi": "Đất đai", "en": "Land"},
    "construction": {"vi": "Xây dựng", "en": "Construction"},
    "utility": {"vi": "Hạ tầng kỹ thuật", "en": "Utilities"},
    "admin": {"vi": "Hành chính", "en": "Administrative"},
    "other": {"vi": "Khác", "en": "Other"},
}


def domains(layers: list[Layer]) -> list[dict[str, Any]]:
    """The public collections grouped by domain, for the templates (``server.sdi_domains``).

    Titles are pygeoapi multilingual values: the templates get them in the page's language.
    """
    groups: dict[str, list[dict[str, Any]]] = {name: [] for name in DOMAINS}
    for layer in layers:
        if layer.access != "public" or layer.kind != "features":
            continue
        domain = layer.domain if layer.domain in DOMAINS else "other"
        groups[domain].append({"id": layer.id, "title": texts(layer)["title"]})
    return [
        {"id": name, "title": DOMAINS[name], "collections": members}
        for name, members in groups.items()
        if members
    ]


def configure(api: Any, settings: Settings, layers: list[Layer] | None = None) -> None:
    """Point pygeoapi's API object at the project's templates, translations and base map.

    The committed configuration names ``server.templates.path`` and ``server.locale_dir``
    relative to the project (it is the same on every machine); pygeoapi would read them
    relative to the server's working directory.
    """
    for config in (api.config, api.tpl_config):
        server = config["server"]
        templates = server.get("templates") or {}
        path = Path(templates.get("path", TEMPLATES))
        server["templates"] = {**templates, "path": str(_absolute(path))}
        server["locale_dir"] = str(_absolute(Path(server.get("locale_dir", TRANSLATIONS))))
        server["map"] = {
            "url": settings.basemap_url or "",
            "attribution": settings.basemap_attribution,
        }
    # only the templates read it (pygeoapi's own code never looks at this key)
    api.tpl_config["server"]["sdi_domains"] = domains(layers or [])


def _absolute(path: Path) -> Path:
    return path if path.is_absolute() else PROJECT_DIR / path


async def _library(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in LIBRARIES:
        return error_response(404, "NotFound", f"no asset {name!r}")
    relative, media_type = LIBRARIES[name]
    path = node_modules() / relative
    if not path.is_file():  # npm ci has not run on this machine: say so
        return error_response(
            503,
            "ServiceUnavailable",
            f"the pages' browser libraries are not installed ({path} is missing): "
            "run ./dev setup (npm ci) on the server",
        )
    return FileResponse(path, media_type=media_type, headers=_ASSET_HEADERS)


@lru_cache(maxsize=1)
def labels() -> dict[str, dict[str, str]]:
    """Property name → {vi, en} label (``sdi/translations/fields.yml``)."""
    data = yaml.safe_load((TRANSLATIONS / "fields.yml").read_text("utf-8")) or {}
    found = {}
    for name, label in data.items():
        english = name.replace("_", " ").capitalize()
        found[name] = (
            {"vi": label, "en": english} if isinstance(label, str) else {"en": english, **label}
        )
    return found


async def _own(request: Request) -> Response:
    name = request.path_params["name"]
    if name == "labels.json":
        return JSONResponse(labels(), headers=_ASSET_HEADERS)
    if name not in OWN:
        return error_response(404, "NotFound", f"no asset {name!r}")
    return FileResponse(STATIC / name, media_type=OWN[name], headers=_ASSET_HEADERS)


ROUTES: list[BaseRoute] = [
    Route(PREFIX + "/lib/{name:path}", _library, methods=["GET", "HEAD"]),
    Route(PREFIX + "/sdi/{name}", _own, methods=["GET", "HEAD"]),
]


class Pages:
    """ASGI middleware: ``/assets/…`` answered here; a CSP on every HTML answer of ``app``;
    Qt's automatic Accept-Language dropped (Vietnamese, as without one)."""

    def __init__(self, app: ASGIApp, basemap_url: str | None = None) -> None:
        self.app = app
        self.router = Router(routes=ROUTES)
        self.policy = csp(basemap_url).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope.get("path", "").startswith(PREFIX + "/"):
            if scope["method"] not in ("GET", "HEAD"):
                await error_response(405, "MethodNotAllowed", "assets are read-only")(
                    scope, receive, send
                )
                return
            await self.router(scope, receive, send)
            return
        languages = [v for k, v in scope["headers"] if k.lower() == b"accept-language"]
        if languages and all(automatic_languages(v.decode("latin-1")) for v in languages):
            headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"accept-language"]
            scope = {**scope, "headers": headers}

        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                media = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if media.startswith(b"text/html") and b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", self.policy))
                    headers.append((b"x-content-type-options", b"nosniff"))
                    headers.append((b"referrer-policy", b"same-origin"))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_policy)
