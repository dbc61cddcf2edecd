"""Access control over HTTP: internal layers, API keys, personal fields, refused writes.

Everything runs against the real server (``server`` fixture) and the test warehouse; keys are
issued with the real ``sdi keys`` command and the Python API behind it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time

import httpx
import psycopg
import pytest

from sdi.keys import CACHE_TTL, create_key
from sdi.layers import load_layers
from tests.conftest import run_sdi

INTERNAL = "permits_register"  # layers/permits_register.yml: internal, departments [construction]
MISSING = "no_such_layer_at_all"
LAYERS = {layer.id: layer for layer in load_layers()}
NOT_FOUND = {"code": "NotFound", "type": "NotFound", "description": "Collection not found"}


@pytest.fixture(scope="module")
def keys(server: str, settings) -> dict[str, str]:
    """A key of the construction department (made with the CLI), of planning, and an admin's."""
    made = run_sdi(
        "keys", "create", "--department", "construction", "--name", "QGIS of construction"
    )
    assert made.returncode == 0, made.stderr
    construction = made.stdout.strip()
    assert construction.startswith("sdi_") and "\n" not in construction
    with psycopg.connect(settings.database_url) as conn:
        _, planning = create_key(conn, "planning", "QGIS of the planning office")
        _, admin = create_key(conn, "*", "SDI administrator")
    return {"construction": construction, "planning": planning, "admin": admin}


def get(api: httpx.Client, path: str, key: str | None = None, **params) -> httpx.Response:
    headers = {"X-API-Key": key} if key else {}
    return api.get(path, params=params, headers=headers)


def mentions_internal(text: str) -> bool:
    title = LAYERS[INTERNAL].title
    return INTERNAL in text or title in text or title.split(" (")[0] in text


def test_the_demo_internal_layer_is_restricted_to_construction() -> None:
    layer = LAYERS[INTERNAL]
    assert layer.access == "internal" and layer.departments == ("construction",)
    assert "applicant_name" in layer.properties and "applicant_name" in layer.personal


# -- anonymous clients and keys of other departments never see it -------------------------------
LISTINGS = [
    ("/", {"f": "json"}, {}),
    ("/", {"f": "jsonld"}, {}),
    ("/", {"f": "html"}, {}),
    ("/collections", {"f": "json"}, {}),
    ("/collections", {"f": "jsonld"}, {}),
    ("/collections", {"f": "html"}, {}),
    ("/collections", {}, {"Accept": "text/html"}),
    ("/collections", {}, {}),
    ("/openapi", {"f": "json"}, {}),
    ("/openapi", {}, {}),
    ("/openapi", {"f": "html"}, {}),
    ("/conformance", {}, {}),
    ("/collections/catalogue", {"f": "json"}, {}),
    ("/collections/catalogue/items", {"f": "json", "limit": 100}, {}),
    ("/collections/catalogue/items", {"f": "html", "limit": 100}, {}),
    ("/collections/catalogue/items", {"q": "permit register"}, {}),
    ("/collections/catalogue/queryables", {}, {}),
    ("/healthz", {}, {}),
]


@pytest.mark.parametrize("who", ["anonymous", "planning"])
@pytest.mark.parametrize(("path", "params", "headers"), LISTINGS)
def test_listings_never_mention_an_internal_layer(
    api, keys, who: str, path: str, params: dict, headers: dict
) -> None:
    if who != "anonymous":
        headers = {**headers, "X-API-Key": keys[who]}
    response = api.get(path, params=params, headers=headers)
    assert response.status_code == 200, response.text
    assert not mentions_internal(response.text), f"{path} {params} leaks {INTERNAL}"


def test_metrics_never_name_a_layer(api) -> None:
    get(api, f"/collections/{INTERNAL}/items")
    get(api, "/collections/lamps/items", limit=1)
    text = get(api, "/metrics").text
    assert not mentions_internal(text)
    assert "lamps" not in text


@pytest.mark.parametrize("who", ["anonymous", "planning"])
def test_collections_list_and_openapi_are_the_visible_layers(api, keys, who: str) -> None:
    key = keys.get(who)
    public = sorted(i for i, layer in LAYERS.items() if layer.access == "public")
    listed = sorted(c["id"] for c in get(api, "/collections", key, f="json").json()["collections"])
    assert listed == public
    paths = get(api, "/openapi", key, f="json").json()["paths"]
    assert not [p for p in paths if p.startswith(f"/collections/{INTERNAL}")]
    assert "/collections/lamps/items" in paths


SUFFIXES = [
    "",
    "/",
    "?f=html",
    "?f=jsonld",
    "/items",
    "/items?f=html",
    "/items?f=jsonld",
    "/items?limit=1&bbox=106,20,108,22",
    "/items/1",
    "/items/1?f=html",
    "/queryables",
    "/queryables?f=html",
    "/schema",
    "/tiles",
    "/tiles/WebMercatorQuad",
    "/tiles/WebMercatorQuad/metadata",
    "/tiles/WebMercatorQuad/0/0/0",
    "/coverage",
    "/map",
    "/position",
    "/locations",
]


@pytest.mark.parametrize("who", ["anonymous", "planning"])
@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_hidden_collection_answers_exactly_like_a_missing_one(
    api, keys, who: str, suffix: str
) -> None:
    headers = {"X-API-Key": keys[who]} if who != "anonymous" else {}
    hidden = api.get(f"/collections/{INTERNAL}{suffix}", headers=headers)
    missing = api.get(f"/collections/{MISSING}{suffix}", headers=headers)
    assert hidden.status_code == missing.status_code
    assert 400 <= hidden.status_code < 500
    assert hidden.headers["content-type"] == missing.headers["content-type"]
    assert hidden.content.replace(INTERNAL.encode(), MISSING.encode()) == missing.content
    assert not mentions_internal(hidden.text)


@pytest.mark.parametrize("suffix", ["", "/items", "/items/1", "/queryables", "/schema"])
def test_hidden_collection_is_pygeoapis_collection_not_found(api, suffix: str) -> None:
    response = get(api, f"/collections/{INTERNAL}{suffix}")
    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_head_requests_hide_it_too(api) -> None:
    assert api.head(f"/collections/{INTERNAL}/items").status_code == 404
    head = api.head("/collections", params={"f": "json"})
    full = get(api, "/collections", f="json")
    assert head.status_code == 200
    assert int(head.headers["content-length"]) == len(full.content)


# -- the right department (and an administrator) sees it everywhere ------------------------------
@pytest.mark.parametrize("who", ["construction", "admin"])
def test_the_right_department_sees_the_internal_layer(api, keys, who: str) -> None:
    key = keys[who]
    listed = [c["id"] for c in get(api, "/collections", key, f="json").json()["collections"]]
    assert INTERNAL in listed
    assert INTERNAL in get(api, "/collections", key, f="html").text
    assert get(api, f"/collections/{INTERNAL}", key).status_code == 200
    items = get(api, f"/collections/{INTERNAL}/items", key, limit=3)
    assert items.status_code == 200, items.text
    features = items.json()["features"]
    assert len(features) == 3
    assert all(f["properties"]["applicant_name"] for f in features)
    one = get(api, f"/collections/{INTERNAL}/items/{features[0]['id']}", key)
    assert one.status_code == 200 and one.json()["id"] == features[0]["id"]
    for endpoint in ("queryables", "schema"):
        response = get(api, f"/collections/{INTERNAL}/{endpoint}", key)
        assert response.status_code == 200 and "applicant_name" in response.text
    paths = get(api, "/openapi", key, f="json").json()["paths"]
    assert f"/collections/{INTERNAL}/items" in paths


def test_links_in_responses_carry_no_key(api, keys) -> None:
    body = get(api, f"/collections/{INTERNAL}/items", keys["construction"], limit=1).text
    assert keys["construction"] not in body
    assert "api_key" not in body


# -- personal fields ---------------------------------------------------------------------------
PERSONAL = sorted({f for layer in LAYERS.values() for f in layer.personal})


@pytest.mark.parametrize("who", ["anonymous", "construction", "admin"])
@pytest.mark.parametrize(
    "collection", sorted(i for i, layer in LAYERS.items() if layer.personal and i != INTERNAL)
)
def test_personal_fields_are_never_published(api, keys, who: str, collection: str) -> None:
    key = keys.get(who)
    items = get(api, f"/collections/{collection}/items", key, limit=5)
    features = items.json()["features"]
    # a collection written through the API (incidents) may still be empty: test_incidents.py
    # checks its items once it has some
    assert items.status_code == 200 and (features or LAYERS[collection].editable)
    bodies = {
        "items": items.text,
        "items html": get(api, f"/collections/{collection}/items", key, limit=5, f="html").text,
        "queryables": get(api, f"/collections/{collection}/queryables", key).text,
        "schema": get(api, f"/collections/{collection}/schema", key).text,
        "collection": get(api, f"/collections/{collection}", key).text,
    }
    if features:
        item_id = features[0]["id"]
        bodies["item"] = get(api, f"/collections/{collection}/items/{item_id}", key).text
    for what, body in bodies.items():
        for field in LAYERS[collection].personal:
            assert field not in body, f"{field} in {collection} {what} for {who}"


@pytest.mark.parametrize("who", ["anonymous", "planning", "construction", "admin"])
def test_openapi_names_personal_fields_only_in_the_layer_that_may_publish_them(
    api, keys, who: str
) -> None:
    document = get(api, "/openapi", keys.get(who), f="json").json()
    register = {
        p: v for p, v in document["paths"].items() if p.startswith(f"/collections/{INTERNAL}")
    }
    others = {k: v for k, v in document.items() if k != "paths"}
    others["paths"] = {p: v for p, v in document["paths"].items() if p not in register}
    text = json.dumps(others, ensure_ascii=False)
    for field in PERSONAL:
        assert field not in text, f"{field} in the OpenAPI document for {who}"
    assert bool(register) == (who in ("construction", "admin"))


# -- keys --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad",
    [
        "not-a-key",
        "sdi_aaaaaaaaaa_" + "x" * 43,  # well formed, unknown
        "",
    ],
)
def test_an_invalid_key_is_refused_on_every_path(api, bad: str) -> None:
    for path in ("/", "/collections", "/collections/lamps/items", f"/collections/{INTERNAL}"):
        response = api.get(path, headers={"X-API-Key": bad})
        assert response.status_code == 401, (path, response.text)
        assert response.json()["code"] == "InvalidApiKey"
        assert response.headers["www-authenticate"].lower().startswith("basic")


def test_a_key_with_a_wrong_secret_is_refused(api, keys) -> None:
    key = keys["construction"]
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    assert get(api, "/collections", forged).status_code == 401


def test_a_key_in_the_query_string_is_refused_and_not_echoed(api, keys) -> None:
    for name in ("api_key", "API_KEY", "apikey"):
        response = api.get("/collections", params={name: keys["construction"]})
        assert response.status_code == 400
        body = response.json()
        assert body["code"] == "InvalidParameterValue" and "X-API-Key" in body["description"]
        assert keys["construction"] not in response.text


def test_keys_are_stored_hashed_and_listed_without_secrets(db, keys) -> None:
    key = keys["construction"]
    key_id = key.split("_")[1]
    stored, row = db.execute(
        "SELECT key_sha256, k::text FROM auth.api_keys k WHERE key_id = %s", (key_id,)
    ).fetchone()
    assert bytes(stored) == hashlib.sha256(key.encode()).digest()
    secret = key.split("_", 2)[2]
    assert secret not in row
    listing = run_sdi("keys", "list")
    assert listing.returncode == 0 and key_id in listing.stdout
    assert secret not in listing.stdout + listing.stderr


def test_revoked_key_is_refused_within_the_cache_time(api, db, settings) -> None:
    record, key = create_key(db, "construction", "a laptop that was stolen")
    # Both workers learn the key (each caches what it read), then it is revoked.
    for _ in range(6):
        assert (
            httpx.get(
                f"{settings.server_url}/collections/{INTERNAL}", headers={"X-API-Key": key}
            ).status_code
            == 200
        )
    revoked = run_sdi("keys", "revoke", record.key_id)
    assert revoked.returncode == 0, revoked.stderr
    start = time.monotonic()
    deadline = start + CACHE_TTL + 3
    while time.monotonic() < deadline:
        answers = {
            httpx.get(f"{settings.server_url}/collections", headers={"X-API-Key": key}).status_code
            for _ in range(4)  # new connections: both workers answer
        }
        if answers == {401}:
            break
        time.sleep(0.25)
    assert answers == {401}, f"still accepted {time.monotonic() - start:.1f} s after revocation"
    assert run_sdi("keys", "revoke", record.key_id).returncode != 0  # already revoked: says so


def test_keys_command_refuses_a_department_that_is_not_a_short_name() -> None:
    made = run_sdi("keys", "create", "--department", "Dept. of Construction", "--name", "x")
    assert made.returncode != 0 and "department" in made.stderr
    assert made.stdout == ""


# -- writes ------------------------------------------------------------------------------------
WRITE_PATHS = [
    "/",
    "/collections",
    "/collections/lamps/items",
    "/collections/lamps/items/1",
    f"/collections/{INTERNAL}/items",
    f"/collections/{MISSING}/items",
    "/processes/hello-world/execution",
    "/openapi",
    "/no/such/path",
]


@pytest.fixture(scope="module")
def documented_methods(api, keys):
    """The methods the served OpenAPI document has for a path (None: no such path): the
    server enforces the whole document (the administrator's view), exactly for the public
    collections (those of the anonymous view), by shape for the others."""
    from sdi.api.contract import MethodContract

    document = api.get("/openapi", params={"f": "json"}, headers={"X-API-Key": keys["admin"]})
    public = api.get("/openapi", params={"f": "json"}).json()["paths"]
    visible = {p.split("/")[2] for p in public if p.startswith("/collections/")}
    return MethodContract(None, document.json(), public=visible.__contains__).allowed


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("path", WRITE_PATHS)
def test_writes_are_never_anonymous_and_need_an_admin_key(
    api, keys, documented_methods, method: str, path: str
) -> None:
    """A write a documented route takes needs an administrator's key; any other method on a
    documented path is a 405 for everyone, key or not (sdi.api.contract.MethodContract),
    alike for public, hidden and missing collections."""
    body = {"type": "Feature", "geometry": None, "properties": {}}
    headers = {"Content-Type": "application/geo+json"}
    allowed = documented_methods(path)
    if allowed is not None and method not in allowed:
        for key in (None, keys["planning"], keys["admin"]):
            extra = {"X-API-Key": key} if key else {}
            refused = api.request(method, path, json=body, headers={**headers, **extra})
            assert refused.status_code == 405, refused.text
            assert refused.json()["code"] == "MethodNotAllowed" and refused.headers["allow"]
        return
    anonymous = api.request(method, path, json=body, headers=headers)
    assert anonymous.status_code == 401, anonymous.text
    assert {"code", "description"} <= anonymous.json().keys()
    for department in ("planning", "construction"):
        refused = api.request(
            method, path, json=body, headers={**headers, "X-API-Key": keys[department]}
        )
        assert refused.status_code == 403, refused.text
        assert {"code", "description"} <= refused.json().keys()
    admin = api.request(method, path, json=body, headers={**headers, "X-API-Key": keys["admin"]})
    assert admin.status_code not in (401, 403) and admin.status_code < 500, admin.text


def test_a_post_without_content_type_is_a_400_not_a_500(api, keys) -> None:
    response = api.post("/collections/lamps/items", headers={"X-API-Key": keys["admin"]})
    assert response.status_code == 400
    assert response.json()["code"] == "InvalidParameterValue"


def test_gdal_reads_the_internal_layer_with_the_key_header(api, server, keys, tmp_path) -> None:
    """GDAL (and QGIS through it) sends the header on every request, next pages included."""

    def ogr2ogr(out: str, *options: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["ogr2ogr", "-f", "GeoJSON", tmp_path / out, f"OAPIF:{server}", INTERNAL, *options],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    assert ogr2ogr("anonymous.geojson").returncode != 0  # anonymous: no such layer
    header = f"X-API-Key: {keys['construction']}"
    done = ogr2ogr("register.geojson", "--config", "GDAL_HTTP_HEADERS", header)
    assert done.returncode == 0, done.stderr
    features = json.loads((tmp_path / "register.geojson").read_text())["features"]
    hits = get(api, f"/collections/{INTERNAL}/items", keys["construction"], resulttype="hits")
    assert len(features) == hits.json()["numberMatched"] > 0
    assert "applicant_name" in features[0]["properties"]


QGIS_PROBE = """
import json, sys
from qgis.core import QgsApplication, QgsVectorLayer
url, collection, password = sys.argv[1:4]
QgsApplication.setPrefixPath("/usr", True)
qgis = QgsApplication([], True)
qgis.initQgis()
login = f" username='key' password='{password}'" if password else ""
layer = QgsVectorLayer(f"url='{url}' typename='{collection}'{login}", collection, "OAPIF")
result = {"valid": layer.isValid()}
if layer.isValid():
    result["fields"] = layer.fields().names()
    result["count"] = sum(1 for _ in layer.getFeatures())
print(json.dumps(result))
"""


def _qgis(server: str, password: str) -> dict:
    result = subprocess.run(
        ["/usr/bin/python3", "-c", QGIS_PROBE, server, INTERNAL, password],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_RUNTIME_DIR="/tmp"),
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_basic_authentication_carries_the_key_too(api, keys) -> None:
    """For clients that can log in but not add a header: user name anything, password the key."""
    assert (
        api.get(f"/collections/{INTERNAL}", auth=("key", keys["construction"])).status_code == 200
    )
    assert api.get(f"/collections/{INTERNAL}", auth=("key", keys["planning"])).status_code == 404
    assert api.get("/collections", auth=("key", "not-a-key")).status_code == 401
    bearer = {"Authorization": f"Bearer {keys['construction']}"}
    assert api.get(f"/collections/{INTERNAL}", headers=bearer).status_code == 200


def test_qgis_opens_the_internal_layer_with_the_key_as_password(api, server, keys) -> None:
    """Debian 12's QGIS 3.22 has no API Header authentication; its login works."""
    try:
        subprocess.run(["/usr/bin/python3", "-c", "import qgis.core"], check=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        pytest.skip("QGIS is not installed (apt-get install python3-qgis)")
    assert not _qgis(server, "")["valid"]
    layer = _qgis(server, keys["construction"])
    assert layer["valid"] and "applicant_name" in layer["fields"]
    hits = get(api, f"/collections/{INTERNAL}/items", keys["construction"], resulttype="hits")
    assert layer["count"] == hits.json()["numberMatched"]
