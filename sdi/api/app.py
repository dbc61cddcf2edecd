"""The ASGI application served: pygeoapi's Starlette app, configured for production.

pygeoapi builds its app at import time from PYGEOAPI_CONFIG and PYGEOAPI_OPENAPI, which
:mod:`sdi.serve` sets. pygeoapi creates it with ``debug=True``, which would send tracebacks
to clients on an unexpected error; we switch that off and answer with an OGC exception body.
"""

from __future__ import annotations

import logging

from pygeoapi.starlette_app import APP as pygeoapi_app
from starlette.requests import Request
from starlette.responses import JSONResponse

LOGGER = logging.getLogger("sdi.api")

pygeoapi_app.debug = False


async def _server_error(request: Request, exc: Exception) -> JSONResponse:
    LOGGER.exception("unhandled error on %s", request.url.path)
    return JSONResponse(
        {"code": "NoApplicableCode", "description": "internal error; it has been logged"},
        status_code=500,
    )


pygeoapi_app.add_exception_handler(Exception, _server_error)
app = pygeoapi_app
