"""The operations-centre dashboard in a real headless Chromium, against the real test server.

The page is loaded once (Debian's ``chromium`` over the DevTools pipe, ``tests/clients/
browser.py``), left to fetch its data, screenshotted, and then checked: the summary numbers it
shows against PostGIS, the map against its pixels, the browser's console and every request
it sent. The screenshots are kept in ``.sdi/test-screenshots/`` for a person to look at.
"""

from __future__ import annotations

import asyncio
import io
import re
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
from starlette.applications import Starlette

import sdi.dashboard
from sdi.settings import PROJECT_DIR
from tests.clients.browser import BrowserError, Chromium, find_chromium

Image = pytest.importorskip("PIL.Image", reason="Pillow is a test dependency (pyproject.toml)")

SCREENSHOTS = PROJECT_DIR / ".sdi" / "test-screenshots"
CITIES = ("ha_long", "uong_bi", "cam_pha", "mong_cai")
READY = "document.body.dataset.state === 'ready' && document.body.dataset.map === 'rendered'"
BACKGROUND = (0x0B, 0x16, 0x22)  # --bg of dashboard.css
LEVEL_COLOURS = {1: (0xFF, 0xD9, 0x2F), 2: (0xFC, 0x8D, 0x62), 3: (0xD7, 0x30, 0x1F)}


# -- serving ----------------------------------------------------------------------------------
def test_page_and_library_are_served_anonymously_from_this_origin(api: httpx.Client) -> None:
    page = api.get("/dashboard/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "connect-src 'self'" in csp
    # Every script and stylesheet is a relative URL of this service: no CDN.
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert "lib/ol.js" in assets and "dashboard.js" in assets
    assert not [a for a in assets if "//" in a], assets

    library = api.get("/dashboard/lib/ol.js")
    assert library.status_code == 200
    assert library.headers["content-type"].startswith("text/javascript")
    assert library.content.startswith(b"var ol=")  # OpenLayers' full build from node_modules
    assert api.get("/dashboard/lib/ol.css").status_code == 200

    redirect = api.get("/dashboard", follow_redirects=False)
    assert redirect.status_code == 308 and redirect.headers["location"].endswith("/dashboard/")


def test_dashboard_errors_are_ogc_bodies(api: httpx.Client) -> None:
    for path in ("/dashboard/no-such-file.js", "/dashboard/lib/jquery.js"):
        answer = api.get(path)
        assert answer.status_code == 404, path
        assert answer.json()["code"] == "NotFound"
    write = api.post("/dashboard/", content=b"x", headers={"content-type": "text/plain"})
    # refused before any file is looked at: no anonymous writes (401), or no such method (405)
    assert write.status_code in (401, 405), write.text
    assert write.json()["code"] in ("Unauthorized", "MethodNotAllowed")
    traversal = api.get("/dashboard/..%2f..%2fpyproject.toml")
    assert traversal.status_code == 404


def test_missing_library_is_a_clear_503(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Before `npm ci` ran on a server the wall screen must say why the map is missing."""
    monkeypatch.setattr(sdi.dashboard, "node_modules", lambda: tmp_path)
    app = sdi.dashboard.Dashboard(Starlette())

    async def fetch(path: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sdi") as client:
            return await client.get(path)

    answer = asyncio.run(fetch("/dashboard/lib/ol.js"))
    assert answer.status_code == 503
    assert "npm ci" in answer.json()["description"]
    assert asyncio.run(fetch("/dashboard/")).status_code == 200  # the page itself still loads


def test_dashboard_paths_have_their_own_metrics_route(api: httpx.Client) -> None:
    api.get("/dashboard/lib/ol.css")
    metrics = api.get("/metrics").text
    assert 'route="/dashboard/lib/{name}"' in metrics


# -- in the browser ---------------------------------------------------------------------------
def published(api: httpx.Client) -> set[str]:
    """The collections an anonymous client sees."""
    listing = api.get("/collections", params={"f": "json"}).json()["collections"]
    return {c["id"] for c in listing}


@pytest.fixture(scope="module")
def reported(api: httpx.Client, settings) -> list[int]:
    """Two open incidents (Hạ Long, Móng Cái) sent by a field app, when incidents are published."""
    if "incidents" not in published(api):
        return []
    from sdi.keys import create_key, revoke_key

    with psycopg.connect(settings.database_url) as conn:
        record, key = create_key(conn, "operations", "dashboard test app", writes=["incidents"])
        points = conn.execute(
            "SELECT DISTINCT ON (city) ST_X(p), ST_Y(p) FROM (SELECT city, commune_code,"
            " ST_PointOnSurface(geom) p FROM admin.communes_current"
            " WHERE city IN ('ha_long', 'mong_cai')) c ORDER BY city, commune_code"
        ).fetchall()
    ids = []
    for (lon, lat), category in zip(points, ("flooding", "fallen_tree"), strict=True):
        feature = {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "properties": {"category": category, "description": "dashboard test"},
        }
        answer = api.post(
            "/collections/incidents/items",
            json=feature,
            headers={"X-API-Key": key, "Content-Type": "application/geo+json"},
        )
        assert answer.status_code == 201, answer.text
        ids.append(int(answer.headers["location"].rsplit("/", 1)[1]))
    with psycopg.connect(settings.database_url) as conn:
        revoke_key(conn, record.key_id)
        conn.commit()
    return ids


@pytest.fixture(scope="module")
def page(server: str, reported: list[int]):
    """The dashboard loaded in Chromium at wall-screen size, with its data; the browser."""
    if find_chromium() is None:
        pytest.skip(
            "chromium is not installed and could not be: ./dev test installs Debian's chromium "
            "(scripts/setup.sh, SDI_TEST_CLIENTS=1); without apt the browser test is skipped"
        )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with Chromium(width=1920, height=1080) as browser:
        browser.navigate(f"{server}/dashboard/")
        try:
            browser.wait_for(READY, timeout=90)
        except BrowserError as exc:
            browser.screenshot(SCREENSHOTS / "dashboard-failed.png")
            status = browser.evaluate("document.getElementById('status-text')?.textContent")
            pytest.fail(
                f"the dashboard did not get ready: {exc}; status line: {status!r}; "
                f"console: {browser.log.errors()}"
            )
        browser.png = browser.screenshot(SCREENSHOTS / "dashboard.png")
        yield browser


def metrics_on_screen(page: Chromium) -> dict[tuple[str | None, str], dict]:
    rows = page.evaluate(
        "[...document.querySelectorAll('[data-metric]')].map(n => ({city: n.dataset.city || null,"
        " metric: n.dataset.metric, value: n.dataset.value, state: n.dataset.state,"
        " text: n.textContent}))"
    )
    return {(r["city"], r["metric"]): r for r in rows}


def city_counts(db, table: str, condition: str = "true") -> dict[str, int]:
    rows = db.execute(
        f"""
        SELECT c.city, count(t.commune_code) FROM admin.communes_current c
        LEFT JOIN {table} t ON t.commune_code = c.commune_code AND {condition}
        WHERE c.city IS NOT NULL GROUP BY c.city
        """
    ).fetchall()
    return {city: n for city, n in rows}


def test_city_numbers_equal_the_warehouse(page: Chromium, db, api: httpx.Client) -> None:
    shown = metrics_on_screen(page)
    public = published(api)
    expected = {
        "lamps_total": city_counts(db, "utility.street_lamps_current"),
        "lamps_fault": city_counts(db, "utility.street_lamps_current", "t.status = 'fault'"),
        "lamps_off": city_counts(db, "utility.street_lamps_current", "t.status = 'off'"),
        "lamps_maintenance": city_counts(
            db, "utility.street_lamps_current", "t.status = 'maintenance'"
        ),
        "cameras_total": city_counts(db, "utility.cameras_current"),
        "cameras_offline": city_counts(db, "utility.cameras_current", "t.status = 'offline'"),
        "warnings": city_counts(db, "hazard.warnings_current"),
    }
    assert sum(expected["lamps_total"].values()) > 0  # the sample data has lamps in every city
    # With the per-commune operations summary published, the cards are built from it (one
    # request), else from one count per figure: either way they must equal the warehouse.
    source = page.evaluate("document.body.dataset.summary")
    assert source == ("ops_commune_summary" if "ops_commune_summary" in public else "counts")
    for metric, per_city in expected.items():
        for city in CITIES:
            cell = shown[(city, metric)]
            assert cell["value"] == str(per_city.get(city, 0)), (city, metric, cell)
            # what a person reads is the same number (vi-VN groups thousands with dots)
            assert re.sub(r"\D", "", cell["text"].split("(")[0]) == cell["value"], cell


def test_warnings_panel_lists_every_active_warning(page: Chromium, db) -> None:
    gauges = sorted(g for (g,) in db.execute("SELECT gauge_code FROM hazard.warnings_current"))
    shown = metrics_on_screen(page)
    assert shown[(None, "warnings_total")]["value"] == str(len(gauges))
    listed = page.evaluate(
        "[...document.querySelectorAll('#warnings-list li[data-gauge]')]"
        ".map(li => li.dataset.gauge)"
    )
    assert sorted(listed) == gauges
    if gauges:  # the highest level comes first, with its roman numeral
        top = db.execute("SELECT max(level) FROM hazard.warnings_current").fetchone()[0]
        badge = page.evaluate("document.querySelector('#warnings-list .badge').textContent")
        assert badge == {1: "I", 2: "II", 3: "III"}[top]


def test_incidents_shown_or_clearly_unavailable(
    page: Chromium, db, api: httpx.Client, reported: list[int]
) -> None:
    """Open incidents per city when the collection is published; else a visible 'not published'."""
    shown = metrics_on_screen(page)
    if "incidents" not in published(api):
        for city in CITIES:
            assert shown[(city, "incidents_open")]["state"] == "unavailable"
            assert shown[(city, "incidents_open")]["text"] == "—"
        assert "not published" in page.evaluate(
            "document.getElementById('incidents-list').textContent"
        )
        return
    assert len(reported) == 2
    expected = city_counts(db, "ops.incidents", "t.status <> 'resolved'")
    assert expected["ha_long"] >= 1 and expected["mong_cai"] >= 1
    for city in CITIES:
        assert shown[(city, "incidents_open")]["value"] == str(expected.get(city, 0))
    (total,) = db.execute(
        "SELECT count(*) FROM ops.incidents WHERE status <> 'resolved'"
    ).fetchone()
    assert shown[(None, "incidents_open_total")]["value"] == str(total)
    categories = page.evaluate(
        "[...document.querySelectorAll('#incidents-list li[data-category]')]"
        ".map(li => li.dataset.category)"
    )
    assert {"flooding", "fallen_tree"} <= set(categories)
    # the new reports are drawn: red dots of the 'new incident' colour
    counts = colours(map_pixels(page, page.png))
    assert sum(n for c, n in counts.items() if near(c, (0xFF, 0x4D, 0x6D), 10)) > 50


def map_pixels(page: Chromium, png: bytes) -> Image.Image:
    box = page.evaluate(
        "(() => { const r = document.getElementById('map').getBoundingClientRect();"
        " return [r.left, r.top, r.right, r.bottom].map(Math.round); })()"
    )
    return Image.open(io.BytesIO(png)).convert("RGB").crop(tuple(box))


def colours(image: Image.Image) -> Counter:
    """How many pixels of each colour."""
    return Counter({colour: n for n, colour in image.getcolors(maxcolors=1 << 24)})


def near(colour: tuple[int, int, int], target: tuple[int, int, int], tolerance: int = 24) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour, target, strict=True))


def test_map_is_drawn(page: Chromium, db) -> None:
    pixels = map_pixels(page, page.png)
    counts = colours(pixels)
    total = pixels.width * pixels.height
    background = sum(n for colour, n in counts.items() if near(colour, BACKGROUND, 6))
    # The communes cover much of the view; lamps, cameras and labels add many colours.
    assert background / total < 0.8, f"{background / total:.0%} of the map is background"
    assert len(counts) > 200, f"only {len(counts)} colours on the map"
    for (level,) in db.execute("SELECT DISTINCT level FROM hazard.warnings_current"):
        marked = sum(n for colour, n in counts.items() if near(colour, LEVEL_COLOURS[level], 10))
        assert marked > 100, f"warning level {level}: {marked} pixels of its colour on the map"


def test_browser_console_has_no_errors(page: Chromium) -> None:
    assert page.log.errors() == []
    assert page.log.failed == []


def test_every_request_stayed_on_the_service(
    page: Chromium, server: str, api: httpx.Client
) -> None:
    origin = urlsplit(server)
    public = published(api)
    assert page.log.requests, "the browser recorded no request"
    for url in page.log.requests:
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob"):
            continue
        assert (parts.scheme, parts.hostname) == ("http", "127.0.0.1"), url
        assert parts.port == origin.port, url
        collection = re.match(r"/collections/([^/]+)", parts.path)
        assert collection is None or collection.group(1) in public, url  # public data only
    assert all(status < 400 for status in page.log.responses.values()), page.log.responses


def test_street_level_shows_lamp_tiles(page: Chromium, db) -> None:
    """Zoomed in on a street, every lamp is drawn from the lamps' vector tiles."""
    lon, lat = db.execute(
        "SELECT ST_X(geom), ST_Y(geom) FROM utility.street_lamps_current "
        "WHERE status = 'on' ORDER BY lamp_code LIMIT 1"
    ).fetchone()
    before = len(page.log.requests)
    page.evaluate(
        f"new Promise(done => {{ const map = window.dashboard.map;"
        f" map.once('rendercomplete', () => done(true));"
        f" map.getView().setCenter(ol.proj.fromLonLat([{lon}, {lat}]));"
        f" map.getView().setZoom(16); }})"
    )
    tiles = [u for u in page.log.requests[before:] if "/collections/lamps/tiles/" in u]
    assert tiles, "no lamp tile was requested at zoom 16"
    assert all(page.log.responses.get(u, 0) in (200, 204) for u in tiles), tiles
    shot = page.screenshot(SCREENSHOTS / "dashboard-street.png")
    counts = colours(map_pixels(page, shot))
    lit = sum(n for colour, n in counts.items() if near(colour, (0xFF, 0xD7, 0x00), 10))
    assert lit > 20, f"{lit} pixels of the 'lamp on' colour at zoom 16"
    assert page.log.errors() == []
