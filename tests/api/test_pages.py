"""The service's own web pages: self-contained, Vietnamese first, useful (issue 16, items 1, 2, 4).

Checked in three ways: the templates as files (no CDN, no inline script, every text
translated), the answers over HTTP (CSP, languages, assets), and every page type in a real
headless Chromium (``tests/clients/browser.py``) against the real test server: styled, maps
drawn, Vietnamese rendered, and not one failed request or request leaving the service. The
screenshots are kept in ``.sdi/test-screenshots/pages-*.png`` for a person to look at.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pygeoapi
import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from sdi.api import pages
from sdi.settings import PROJECT_DIR
from tests.clients.browser import BrowserError, Chromium, find_chromium

PYGEOAPI_TEMPLATES = Path(pygeoapi.__file__).parent / "templates"
CATALOGUE = PROJECT_DIR / "sdi" / "translations" / "vi" / "LC_MESSAGES"
SCREENSHOTS = PROJECT_DIR / ".sdi" / "test-screenshots"
# pygeoapi templates of features this service does not publish (no STAC, coverage or pub/sub
# resource in pygeoapi-config.yml): no page of the service renders them.
NOT_SERVED = {
    "stac/collection_base.html",
    "stac/item.html",
    "asyncapi.html",
    "collections/coverage/index.html",
}


def _templates(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text("utf-8") for p in root.rglob("*.html")}


# -- the templates as files -------------------------------------------------------------------
def test_every_template_with_outside_assets_or_scripts_is_overridden() -> None:
    ours = _templates(pages.TEMPLATES)
    theirs = _templates(PYGEOAPI_TEMPLATES)
    needing = {
        name
        for name, text in theirs.items()
        if re.search(r"(?:src|href)=\"https?://(?!www\.opengis)", text) or "<script>" in text
    }
    assert needing, "pygeoapi's templates changed: check this test against the new release"
    assert needing - NOT_SERVED <= set(ours), sorted(needing - NOT_SERVED - set(ours))


@pytest.mark.parametrize("name", sorted(_templates(pages.TEMPLATES)))
def test_templates_load_nothing_from_outside_and_run_no_inline_script(name: str) -> None:
    text = (pages.TEMPLATES / name).read_text("utf-8")
    outside = re.findall(r"(?:src|href)=\"(https?://[^\"]*)\"", text)
    assert outside == [], outside
    for tag in re.findall(r"<script\b[^>]*>", text):
        assert "src=" in tag or 'type="application/json"' in tag, tag
    assert not re.search(r"\son(?:click|change|load|submit)=", text)
    # no inline style either: the policy has no 'unsafe-inline' (pages.css holds them)
    assert not re.search(r"\sstyle=|<style\b", text), name


def test_the_dashboard_page_has_no_inline_script_or_style() -> None:
    from sdi.dashboard import STATIC_DIR

    text = (STATIC_DIR / "index.html").read_text("utf-8")
    assert not re.search(r"\sstyle=|<style\b|<script>|\son[a-z]+=", text)


def test_vietnamese_catalogue_covers_every_template_text_and_is_compiled() -> None:
    from babel.messages.extract import extract_from_dir

    po = read_po((CATALOGUE / "messages.po").open("rb"))
    translated = {m.id: m.string for m in po if m.id}
    used = set()
    method_map = [("**.html", "jinja2")]
    options = {"**.html": {"extensions": "jinja2.ext.i18n"}}
    for root in (PYGEOAPI_TEMPLATES, pages.TEMPLATES):
        for _file, _line, message, _comments, _context in extract_from_dir(
            root, method_map, options_map=options
        ):
            used.add(message if isinstance(message, str) else message[0])
    untranslated = sorted(m for m in used if not translated.get(m))
    assert untranslated == [], untranslated
    assert translated["Collections"] == "Tập dữ liệu"
    # the compiled catalogue pygeoapi reads is the one of the .po file
    mo = read_mo((CATALOGUE / "messages.mo").open("rb"))
    assert {m.id: m.string for m in mo if m.id} == translated, (
        "messages.mo is stale: .venv/bin/pybabel compile -d sdi/translations -D messages"
    )


def test_policy_names_only_this_origin_and_the_intranet_tile_server() -> None:
    assert "script-src 'self';" in pages.csp()
    assert "style-src 'self';" in pages.csp()
    assert "unsafe-inline" not in pages.csp() and "unsafe-eval" not in pages.csp()
    assert "http" not in pages.csp()
    policy = pages.csp("http://tiles.intranet:8080/{z}/{x}/{y}.png")
    assert "img-src 'self' data: blob: http://tiles.intranet:8080;" in policy


# -- over HTTP --------------------------------------------------------------------------------
def test_html_answers_carry_the_policy(api: httpx.Client) -> None:
    for path in ("/", "/collections", "/collections/buildings", "/openapi"):
        answer = api.get(path, params={"f": "html"})
        assert answer.status_code == 200, path
        assert answer.headers["content-type"].startswith("text/html"), path
        assert "script-src 'self';" in answer.headers["content-security-policy"], path
        assert "unpkg.com" not in answer.text and "openstreetmap" not in answer.text, path
    json_answer = api.get("/collections", params={"f": "json"})
    assert "content-security-policy" not in json_answer.headers


def test_assets_are_served_from_node_modules(api: httpx.Client) -> None:
    for name, (relative, media_type) in pages.LIBRARIES.items():
        answer = api.get(f"/assets/lib/{name}")
        assert answer.status_code == 200, name
        assert answer.headers["content-type"].startswith(media_type), name
        assert answer.content == (pages.node_modules() / relative).read_bytes(), name
    assert api.get("/assets/sdi/pages.js").status_code == 200
    write = api.post("/assets/sdi/pages.js", content=b"x")
    assert write.status_code == 405 and write.json()["code"] == "MethodNotAllowed"
    for path in ("/assets/lib/jquery.js", "/assets/sdi/../app.py", "/assets/lib/../../pyproject"):
        answer = api.get(path)
        assert answer.status_code == 404, path
        assert answer.json()["code"] == "NotFound"


def test_vietnamese_by_default_english_on_request(api: httpx.Client) -> None:
    landing = api.get("/", params={"f": "html"}).text
    assert '<html lang="vi"' in landing and "Hạ tầng dữ liệu không gian đô thị" in landing
    assert "Tập dữ liệu" in landing  # a template text, from the project's catalogue
    english = api.get("/", params={"f": "html", "lang": "en"}).text
    assert '<html lang="en"' in english and "Urban spatial data infrastructure" in english
    header = api.get("/", params={"f": "html"}, headers={"Accept-Language": "en-GB,en;q=0.8"})
    assert '<html lang="en"' in header.text

    vi = api.get("/collections/buildings", params={"f": "json"}).json()
    en = api.get("/collections/buildings", params={"f": "json", "lang": "en"}).json()
    assert (vi["title"], en["title"]) == ("Công trình xây dựng", "Buildings")
    assert "nhà" in vi["keywords"] and "nhà" not in en["keywords"]
    process = api.get("/processes/exposure", params={"f": "json"}).json()
    english_process = api.get("/processes/exposure", params={"f": "json", "lang": "en"}).json()
    assert process["title"] != english_process["title"]
    assert english_process["title"].startswith("Flood exposure")


def test_openapi_document_and_catalogue_in_both_languages(api: httpx.Client) -> None:
    document = api.get("/openapi", params={"f": "json"}).json()
    assert "Các lớp dữ liệu" in document["info"]["description"]
    assert "Land, construction" in document["info"]["description"]
    tags = {t["name"]: t.get("description", "") for t in document["tags"]}
    assert "Công trình xây dựng" in tags["buildings"] and "Building" in tags["buildings"]
    summary = document["paths"]["/collections/buildings"]["get"]["summary"]
    assert "Công trình xây dựng (Buildings)" in summary
    assert document["components"]["parameters"]["lang"]["schema"]["default"] == "vi"

    vi = api.get("/collections/catalogue/items/buildings", params={"f": "json"}).json()
    en = api.get(
        "/collections/catalogue/items/buildings", params={"f": "json", "lang": "en"}
    ).json()
    assert vi["properties"]["title"] == "Công trình xây dựng"
    assert en["properties"]["title"] == "Buildings"
    assert vi["properties"]["language"] == {"code": "vi"}
    if vi["properties"]["lineage"]:
        assert vi["properties"]["lineage"]["statement"].startswith("Nạp bởi tác vụ ETL")
        assert en["properties"]["lineage"]["statement"].startswith("Loaded by ETL job")
        assert set(vi["properties"]["lineage"]["counts"]) >= {"read", "added", "rejected"}
    # the search finds a record by a word of either language
    for q in ("nhà", "footprints"):
        found = api.get("/collections/catalogue/items", params={"f": "json", "q": q}).json()
        assert "buildings" in [r["id"] for r in found["features"]], q


def test_landing_and_collections_group_by_domain(api: httpx.Client) -> None:
    landing = api.get("/", params={"f": "html"}).text
    order = re.findall(r'data-domain="(\w+)"', landing)
    assert order[:3] == ["planning", "hazard", "operations"], order
    assert order[-1] == "admin"
    assert "Quy hoạch" in landing and "Thiên tai" in landing
    english = api.get("/", params={"f": "html", "lang": "en"}).text
    assert ">Hazard<" in english and ">Planning<" in english
    listing = api.get("/collections", params={"f": "html"}).text
    assert re.findall(r'data-domain="(\w+)"', listing)[:2] == ["planning", "hazard"]
    public = {c["id"] for c in api.get("/collections", params={"f": "json"}).json()["collections"]}
    shown = set(re.findall(r'data-collection="(\w+)"', listing))
    assert shown == public - {"catalogue"}, shown ^ (public - {"catalogue"})


def test_property_labels_cover_every_published_property(api: httpx.Client) -> None:
    from sdi.layers import load_layers

    labels = api.get("/assets/sdi/labels.json").json()
    missing = sorted({p for layer in load_layers() for p in layer.properties if p not in labels})
    assert missing == [], missing
    assert labels["floors"] == {"vi": "Số tầng", "en": "Floors"}


# -- in the browser ---------------------------------------------------------------------------
def _pages(api: httpx.Client) -> dict[str, str]:
    """One URL of every page type: name → path (HTML)."""
    item = api.get("/collections/buildings/items", params={"f": "json", "limit": 1}).json()
    item_id = item["features"][0]["id"]
    gauge = api.get("/collections/gauges/locations", params={"f": "json"}).json()
    location = gauge["features"][0]["id"]
    return {
        "landing": "/?f=html",
        "collections": "/collections?f=html",
        "collection": "/collections/buildings?f=html",
        "items": "/collections/buildings/items?f=html&limit=50",
        "item": f"/collections/buildings/items/{item_id}?f=html",
        "queryables": "/collections/buildings/queryables?f=html",
        "schema": "/collections/buildings/schema?f=html",
        "tiles": "/collections/buildings/tiles?f=html",
        "processes": "/processes?f=html",
        "process": "/processes/exposure?f=html",
        "jobs": "/jobs?f=html",
        "edr": f"/collections/gauges/locations/{location}?f=html",
        "records": "/collections/catalogue/items?f=html",
        "record": "/collections/catalogue/items/buildings?f=html",
        "openapi": "/openapi?f=html",
        "redoc": "/openapi?f=html&ui=redoc",
        "english": "/collections/buildings?f=html&lang=en",
        "dashboard": "/dashboard/",
    }


@pytest.fixture(scope="module")
def browser():
    if find_chromium() is None:
        pytest.skip("chromium is not installed (./dev test installs Debian's chromium)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    # A browser set to Vietnamese, then English, as the province's staff have them
    with Chromium(width=1280, height=1000, accept_language="vi-VN,vi;q=0.9,en;q=0.5") as chromium:
        yield chromium


LOADED = "document.readyState === 'complete'"
MAP_DONE = "!document.querySelector('[data-sdi-map]') || document.body.dataset.map"
COLLECTION_DONE = (
    "!document.querySelector('[data-sdi-collection]') || "
    "['ready', 'failed'].includes(document.querySelector('[data-sdi-collection]').dataset.state)"
)


def _open(browser: Chromium, server: str, name: str, path: str) -> bytes:
    browser.navigate(server + path)
    try:
        browser.wait_for(LOADED, timeout=30)
        browser.wait_for(MAP_DONE, timeout=60)
        browser.wait_for(COLLECTION_DONE, timeout=60)
        if name == "dashboard":
            browser.wait_for("document.body.dataset.state === 'ready'", timeout=90)
        if name in ("openapi", "redoc"):
            browser.wait_for("!!document.querySelector('.swagger-ui .info .title')", timeout=60)
    except BrowserError as exc:
        browser.screenshot(SCREENSHOTS / f"pages-{name}-failed.png")
        pytest.fail(f"{name}: {exc}; console: {browser.log.errors()}")
    return browser.screenshot(SCREENSHOTS / f"pages-{name}.png")


def test_every_page_type_works_offline(browser: Chromium, server: str, api: httpx.Client) -> None:
    from PIL import Image

    origin = urlsplit(server)
    problems: list[str] = []
    for name, path in _pages(api).items():
        browser.log.requests.clear()
        browser.log.failed.clear()
        browser.log.console.clear()
        browser.log.exceptions.clear()
        browser.log.responses.clear()
        png = _open(browser, server, name, path)
        problems += [f"{name}: CSP violation {v}" for v in browser.csp_violations()]
        for url in browser.log.requests:
            parts = urlsplit(url)
            if parts.scheme in ("data", "blob"):
                continue
            if (parts.hostname, parts.port) != (origin.hostname, origin.port):
                problems.append(f"{name}: request outside the service: {url}")
        failed = [u for u, status in browser.log.responses.items() if status >= 400]
        problems += [f"{name}: {status}" for status in failed]
        problems += [f"{name}: failed {f}" for f in browser.log.failed]
        problems += [f"{name}: {e}" for e in browser.log.errors()]
        if browser.evaluate("document.body.dataset.map") == "failed":
            problems.append(f"{name}: the map did not draw")
        if name not in ("openapi", "redoc", "dashboard"):  # styled: Bootstrap and our fonts apply
            width = browser.evaluate(
                "getComputedStyle(document.querySelector('.container')).maxWidth"
            )
            font = browser.evaluate("getComputedStyle(document.body).fontFamily")
            if width in (None, "none") or "DejaVu" not in font:
                problems.append(f"{name}: not styled ({width!r}, {font!r})")
        if name == "tiles" and "Công trình xây dựng" not in browser.evaluate("document.title"):
            problems.append("tiles: the collection's title is not in Vietnamese")
        if name in ("queryables", "items"):
            browser.wait_for("document.querySelector('[data-labels-url]').dataset.state")
            text = browser.evaluate("document.querySelector('[data-property=floors]').textContent")
            if "Số tầng" not in text:
                problems.append(f"{name}: no Vietnamese label ({text!r})")
        if name == "edr":  # the gauge's series as a table
            rows = browser.evaluate("document.querySelectorAll('[data-series] tbody tr').length")
            if not rows:
                problems.append("edr: no series table")
        lang = browser.evaluate("document.documentElement.lang")
        expected = "en" if name == "english" else "vi"
        if lang != expected:
            problems.append(f"{name}: page language {lang!r}, expected {expected!r}")
        colours = Image.open(io.BytesIO(png)).convert("RGB").getcolors(maxcolors=1 << 24)
        if len(colours) < 20:
            problems.append(f"{name}: a blank screenshot ({len(colours)} colours)")
    assert problems == []


def test_the_policy_is_enforced_and_its_violations_seen(browser: Chromium, server: str) -> None:
    """The collector of the test above sees what the policy blocks: an inline style and an
    inline script added to a served page are refused, and reported."""
    _open(browser, server, "collection", "/collections/buildings?f=html")
    assert browser.csp_violations() == []
    browser.evaluate(
        "document.body.insertAdjacentHTML('beforeend', '<p id=x style=\"color: red\">x</p>');"
        "const s = document.createElement('script'); s.textContent = 'window.ran = 1';"
        "document.body.appendChild(s); 0"
    )
    browser.wait_for("window.__sdiCspViolations.length >= 2", timeout=10)
    assert browser.evaluate("getComputedStyle(document.getElementById('x')).color") != (
        "rgb(255, 0, 0)"
    )
    assert browser.evaluate("window.ran") is None
    directives = " ".join(browser.csp_violations())
    assert "style-src" in directives and "script-src" in directives


def test_maps_draw_on_the_communes(browser: Chromium, server: str) -> None:
    _open(browser, server, "collection", "/collections/buildings?f=html")
    communes = [u for u in browser.log.requests if "/collections/communes/items" in u]
    assert communes, "the base map did not ask for the communes"
    drawn = browser.evaluate("document.querySelectorAll('.leaflet-overlay-pane canvas').length")
    assert drawn >= 1
    assert browser.evaluate("document.querySelectorAll('.leaflet-tile').length") == 0


def test_collection_page_shows_lineage_queryables_and_working_filters(
    browser: Chromium, server: str, api: httpx.Client, db
) -> None:
    _open(browser, server, "collection", "/collections/buildings?f=html")
    assert browser.evaluate("document.querySelector('[data-lineage]').dataset.state") == "ready"
    lineage = browser.evaluate("document.querySelector('[data-lineage]').textContent")
    assert "Department of Construction" in lineage and "construction_buildings" in lineage
    properties = browser.evaluate(
        "[...document.querySelectorAll('[data-queryables] tr[data-property]')]"
        ".map(r => r.dataset.property)"
    )
    assert {"building_code", "floors", "use_type"} <= set(properties)
    rows = browser.evaluate(
        "Object.fromEntries([...document.querySelectorAll('[data-queryables] tr[data-property]')]"
        ".map(r => [r.dataset.property, [...r.cells].map(c => c.textContent)]))"
    )
    assert rows["floors"][1] == "Số tầng"  # the Vietnamese label
    uses = {
        u for (u,) in db.execute("SELECT DISTINCT use_type FROM construction.buildings_current")
    }
    assert set(rows["use_type"][3].split(", ")) <= uses and len(rows["use_type"][3]) > 0
    examples = browser.evaluate(
        "[...document.querySelectorAll('[data-examples] li')].map(li => li.dataset.cql)"
    )
    assert len(examples) >= 3, examples
    browser.screenshot(SCREENSHOTS / "pages-collection-full.png", full_page=True)
    for cql in examples:  # each shown filter works on the service and finds something
        answer = api.get(
            "/collections/buildings/items", params={"f": "json", "filter": cql, "limit": 1}
        )
        assert answer.status_code == 200, (cql, answer.text)
        assert answer.json()["features"], cql
