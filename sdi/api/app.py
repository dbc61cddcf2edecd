"""The ASGI application served: pygeoapi's Starlette app, configured for production.

pygeoapi builds its app at import time from PYGEOAPI_CONFIG and PYGEOAPI_OPENAPI, which
:mod:`sdi.serve` sets. Around it, outermost first:

1. :class:`sdi.api.ops.Operations`: ``/healthz``, ``/metrics``, the JSON access log, and a
   last-resort 500 with an OGC exception body;
2. :class:`sdi.api.contract.MethodContract`: 405 for a method the OpenAPI document has not;
   :class:`sdi.api.auth.AccessControl`: API keys, internal layers hidden, no anonymous writes;
   :class:`sdi.dashboard.Dashboard`: ``/dashboard/``, the operations-centre page (static files
   that read the public API from the browser, anonymously);
   :class:`sdi.api.changes.ChangeFeed`: ``/collections/{id}/changes``; every other path goes on to
3. :class:`sdi.api.incidents.IncidentWrites`: writes to incident collections (Part 4) carry
   the writer to the provider; PATCH as a partial PUT; DELETE refused;
   :class:`sdi.api.media.ItemsMedia`: media types of the output formats
   (:mod:`sdi.api.formats`: items as ``application/geo+json``…), CQL2 JSON in GET;
   :class:`sdi.api.contract.QueryContract`: query parameters checked against the OpenAPI
   document (400 for what it does not allow);
   :class:`sdi.api.downloads.Downloads`: ``/collections/{id}/download`` (files);
   :class:`sdi.api.processes.CallerHeader`: who asks, for the job manager;
4. pygeoapi, created with ``debug=True`` (which would send tracebacks to clients): we switch
   that off and answer unexpected errors with an OGC exception body, and a value the database
   rejects (a malformed date, a number out of range: SQLSTATE class 22) with a 400.
"""

from __future__ import annotations

import logging

import psycopg
from pygeoapi.provider.base import ProviderGenericError
from pygeoapi.starlette_app import APP as pygeoapi_app
from pygeoapi.starlette_app import CONFIG, OPENAPI, api_, api_routes
from starlette.requests import Request
from starlette.responses import Response

from sdi.api import ops, pygeoapi_patches
from sdi.api.asgi import error_response
from sdi.api.auth import (
    ANONYMOUS,
    AccessControl,
    AccessPolicy,
    KeyVerifier,
    database_lookup,
)
from sdi.api.changes import ROUTES as CHANGE_ROUTES
from sdi.api.changes import ChangeFeed
from sdi.api.contract import MethodContract, QueryContract
from sdi.api.downloads import ROUTES as DOWNLOAD_ROUTES
from sdi.api.downloads import Downloads
from sdi.api.incidents import IncidentWrites, document_writes
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
    pygeoapi_patches.apply()  # before the first request of this worker
    collections = [
        name
        for name, resource in CONFIG.get("resources", {}).items()
        if resource.get("type") in ("collection", "stac-collection")
    ]
    layers = load_layers(settings)
    policy = AccessPolicy(layers, collections)
    # CallerHeader: the job manager's view of who asks (sdi.api.processes)
    # Writes to incident collections carry the writer (identified by the access control) to
    # their provider; the served document says so (PATCH, no DELETE) before it is compiled.
    writes = IncidentWrites.from_config(
        ItemsMedia(QueryContract(Downloads(CallerHeader(pygeoapi_app), layers), OPENAPI)), CONFIG
    )
    document_writes(OPENAPI, writes.collections)
    # The dashboard (static page on the public API) sits inside the access control like pygeoapi.
    # /collections/{id}/changes (sdi.api.changes), inside the access control too
    inner = Dashboard(ChangeFeed(writes, layers, CONFIG["server"]["url"]))
    protected = AccessControl(inner, policy, KeyVerifier(database_lookup), api_)
    return ops.Operations(
        MethodContract(protected, OPENAPI, public=lambda c: policy.can_see(ANONYMOUS, c)),
        metrics=ops.Metrics(),
        access_log=ops.AccessLog(settings.state_dir / "server" / "access.log"),
        health=ops.HealthCheck(ops.database_probe),
        routes=ops.route_templates(
            [*DASHBOARD_ROUTES, *CHANGE_ROUTES, *DOWNLOAD_ROUTES, *api_routes]
        ),
    )


app = build()
