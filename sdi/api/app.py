"""The ASGI application served: pygeoapi's Starlette app, configured for production.

:func:`build` puts the middlewares around pygeoapi, once; their order and why:
``docs/internals.md`` ("The API stack").
"""

from __future__ import annotations

import logging

import psycopg
from pygeoapi.provider.base import ProviderGenericError
from pygeoapi.starlette_app import APP as pygeoapi_app
from pygeoapi.starlette_app import CONFIG, OPENAPI, api_, api_routes
from starlette.requests import Request
from starlette.responses import Response

from sdi.api import etl_process, export_process, ops, pages, pygeoapi_patches
from sdi.api.asgi import error_response
from sdi.api.auth import (
    ANONYMOUS,
    AccessControl,
    AccessPolicy,
    KeyVerifier,
    database_lookup,
)
from sdi.api.caller import ProcessCaller
from sdi.api.cap import ROUTES as CAP_ROUTES
from sdi.api.cap import CapFeed
from sdi.api.changes import ROUTES as CHANGE_ROUTES
from sdi.api.changes import ChangeFeed
from sdi.api.contract import MethodContract, QueryContract
from sdi.api.downloads import ROUTES as DOWNLOAD_ROUTES
from sdi.api.downloads import Downloads
from sdi.api.incidents import IncidentWrites, document_writes
from sdi.api.limits import Limits
from sdi.api.media import ItemsMedia
from sdi.api.processes import CallerHeader
from sdi.dashboard import ROUTES as DASHBOARD_ROUTES
from sdi.dashboard import Dashboard
from sdi.layers import load_layers
from sdi.settings import get_settings

LOGGER = logging.getLogger("sdi.api")


async def _server_error(request: Request, exc: Exception) -> Response:
    LOGGER.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "NoApplicableCode", "internal error; it has been logged")


async def _bad_value(request: Request, exc: Exception) -> Response:
    """The database refused a value taken from the request (SQLSTATE class 22)."""
    message = getattr(getattr(exc, "diag", None), "message_primary", None) or "invalid value"
    LOGGER.warning("bad value on %s?%s: %s", request.url.path, request.url.query, message)
    return error_response(
        400,
        "InvalidParameterValue",
        f"a parameter value is malformed or out of range: {message}",
    )


async def _provider_error(request: Request, exc: ProviderGenericError) -> Response:
    """A provider error pygeoapi let through (e.g. tileset metadata): its own status."""
    return error_response(exc.http_status_code, exc.ogc_exception_code, exc.message)


def build(settings=None):
    """The served app: operations around access control around pygeoapi.

    The one place the stack is put together (the module docstring lists it, outermost first).
    """
    # 4. pygeoapi: no tracebacks to clients, its errors as OGC exception bodies
    pygeoapi_app.debug = False
    pygeoapi_app.add_exception_handler(ProviderGenericError, _provider_error)
    pygeoapi_app.add_exception_handler(psycopg.DataError, _bad_value)
    pygeoapi_app.add_exception_handler(Exception, _server_error)
    settings = settings or get_settings()
    ops.prepare_multiprocess_dir(settings.state_dir)  # before prometheus_client is imported
    ops.configure_logging(
        settings.state_dir / "server" / "api.log", settings.log_max_bytes, settings.log_backups
    )
    pygeoapi_patches.apply()  # before the first request of this worker
    collections = [
        name
        for name, resource in CONFIG.get("resources", {}).items()
        if resource.get("type") in ("collection", "stac-collection")
    ]
    layers = load_layers(settings)
    pages.configure(api_, settings, layers)  # the project's templates, translations, base map
    policy = AccessPolicy(layers, collections)
    # CallerHeader: the job manager's view of who asks (sdi.api.processes); ProcessCaller: the
    # processor's, written into the inputs of the processes that decide by it (sdi.api.caller)
    callers = {"etl-run": etl_process.CALLER_RULE, "export": export_process.CALLER_RULE}
    # Writes to incident collections carry the writer (identified by the access control) to
    # their provider; the served document says so (PATCH, no DELETE) before it is compiled.
    writes = IncidentWrites.from_config(
        ItemsMedia(
            QueryContract(
                Downloads(CallerHeader(ProcessCaller(pygeoapi_app, callers)), layers), OPENAPI
            )
        ),
        CONFIG,
    )
    document_writes(OPENAPI, writes.collections)
    # The dashboard (static page on the public API) sits inside the access control like pygeoapi.
    # /collections/{id}/changes (sdi.api.changes), inside the access control too
    inner = CapFeed(Dashboard(ChangeFeed(writes, layers, CONFIG["server"]["url"])))  # + /cap
    inner = Limits(inner, settings)  # bodies, rate limits, processes at once (sdi.api.limits)
    protected = AccessControl(inner, policy, KeyVerifier(database_lookup), api_)
    # /assets/… (the pages' libraries) and a Content-Security-Policy on every HTML answer
    protected = pages.Pages(protected, settings.basemap_url)
    return ops.Operations(
        MethodContract(protected, OPENAPI, public=lambda c: policy.can_see(ANONYMOUS, c)),
        metrics=ops.Metrics(),
        access_log=ops.AccessLog(settings.state_dir / "server" / "access.log"),
        health=ops.HealthCheck(ops.DatabaseProbe()),
        routes=ops.route_templates(
            [
                *pages.ROUTES,
                *DASHBOARD_ROUTES,
                *CHANGE_ROUTES,
                *CAP_ROUTES,
                *DOWNLOAD_ROUTES,
                *api_routes,
            ]
        ),
    )


app = build()
