"""Fixtures of the API tests (the server and database ones are in tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def media_api(server, settings):
    """pygeoapi (as configured for the test server) wrapped in ItemsMedia, in this process.

    The same app objects the server runs, over ASGI instead of a socket, so the middleware is
    tested whether or not sdi/api/app.py registers it.
    """
    import os

    from starlette.testclient import TestClient

    wanted = {
        "PYGEOAPI_CONFIG": str(settings.pygeoapi_config),
        "PYGEOAPI_OPENAPI": str(settings.state_dir / "server" / "openapi.yml"),
        "SDI_PUBLIC_URL": server,
    }
    saved = {name: os.environ.get(name) for name in wanted}
    os.environ.update(wanted)
    try:
        from pygeoapi.starlette_app import APP  # reads its configuration once, here
    finally:  # the variables must not leak into servers other tests start (their own URL)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    from sdi.api import pygeoapi_patches
    from sdi.api.media import ItemsMedia

    pygeoapi_patches.apply()
    with TestClient(ItemsMedia(APP), base_url=server, raise_server_exceptions=False) as client:
        yield client
