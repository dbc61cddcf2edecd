"""Citizen incident reports over HTTP: OGC API Features Part 4 writes with API keys.

Against the real server and test warehouse: keys are made with the real ``sdi keys`` command,
reports are sent as an app would (POST/PUT/PATCH with GeoJSON), and what is stored, logged
and published is read back from PostGIS and from the API as an anonymous client.
"""

from __future__ import annotations

import json

import httpx
import psycopg
import pytest

from tests.conftest import run_sdi

ITEMS = "/collections/incidents/items"
GEOJSON = {"Content-Type": "application/geo+json"}
PERSONAL = ("description", "reporter_name", "reporter_phone", "reporter_email", "created_by")


@pytest.fixture(scope="module")
def keys(server: str) -> dict[str, str]:
    """An app's key that may write incidents (made with the CLI), a read-only key, a key that
    may write another collection, and an administrator's key."""

    def create(*args: str) -> str:
        made = run_sdi("keys", "create", *args)
        assert made.returncode == 0, made.stderr
        return made.stdout.strip()

    return {
        "app": create(
            "--department", "operations", "--name", "Citizen app", "--write", "incidents"
        ),
        "reader": create("--department", "planning", "--name", "QGIS of planning"),
        "lamps_writer": create("--department", "lighting", "--name", "Lamps", "--write", "lamps"),
        "admin": create("--department", "*", "--name", "SDI administrator"),
    }


@pytest.fixture(scope="module")
def place(loaded, settings) -> dict:
    """A point inside a 2025 commune, and one inside the province's box but in no commune."""
    with psycopg.connect(settings.database_url) as conn:
        lon, lat, code = conn.execute(
            "SELECT ST_X(p), ST_Y(p), commune_code FROM (SELECT ST_PointOnSurface(geom) p, "
            "commune_code FROM admin.communes_current WHERE admin_vintage = '2025' "
            "ORDER BY commune_code LIMIT 1) c"
        ).fetchone()
        west, south, east, _ = settings.province_extent
        nowhere = None
        for i in range(1, 10):  # along the box's southern edge: sea or a neighbour province
            x, y = west + (east - west) * i / 10, south + 0.01
            inside = conn.execute(
                "SELECT EXISTS (SELECT FROM admin.communes_current WHERE "
                "ST_Intersects(geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326)))",
                (x, y),
            ).fetchone()[0]
            if not inside:
                nowhere = (x, y)
                break
    assert nowhere is not None
    return {"point": [lon, lat], "commune": code, "nowhere": list(nowhere)}


def report(place: dict, **properties) -> dict:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": place["point"]},
        "properties": {
            "category": "fallen_tree",
            "description": "Cây đổ chắn ngang đường, xe máy không qua được",
            "reporter_name": "Nguyễn Văn A",
            "reporter_phone": "+84 912 345 678",
            **properties,
        },
    }


def send(
    api: httpx.Client,
    method: str,
    path: str,
    key: str | None,
    body: object = None,
    content: bytes | None = None,
    headers: dict | None = None,
) -> httpx.Response:
    all_headers = {**GEOJSON, **(headers or {})}
    if key is not None:
        all_headers["X-API-Key"] = key
    if content is None and body is not None:
        content = json.dumps(body).encode()
    response = api.request(method, path, content=content, headers=all_headers)
    assert response.status_code < 500, response.text  # never a 500, whatever is sent
    return response


def refused(response: httpx.Response, status: int, *words: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert {"code", "description"} <= body.keys()
    for word in words:
        assert word in body["description"], body["description"]
    return body["description"]


def created(api: httpx.Client, key: str, body: dict) -> int:
    response = send(api, "POST", ITEMS, key, body)
    assert response.status_code == 201, response.text
    location = response.headers["location"]
    assert location.split("?")[0].rsplit("/items/", 1)[0].endswith("/collections/incidents")
    return int(location.rsplit("/", 1)[1])


# -- who may write ----------------------------------------------------------------------------
def test_a_report_without_a_key_is_refused_401(api, place) -> None:
    refused(send(api, "POST", ITEMS, None, report(place)), 401, "API key")


def test_a_wrong_key_is_refused_401(api, place, keys) -> None:
    forged = keys["app"][:-4] + "AAAA"  # well-formed, right id, wrong secret
    refused(send(api, "POST", ITEMS, forged, report(place)), 401)
    refused(send(api, "POST", ITEMS, "not-a-key", report(place)), 401)


def test_a_key_without_the_write_right_is_refused_403(api, place, keys, db) -> None:
    before = db.execute("SELECT count(*) FROM ops.incidents").fetchone()[0]
    for name in ("reader", "lamps_writer"):
        refused(send(api, "POST", ITEMS, keys[name], report(place)), 403, "write")
        refused(send(api, "PATCH", f"{ITEMS}/1", keys[name], {"properties": {}}), 403)
    assert db.execute("SELECT count(*) FROM ops.incidents").fetchone()[0] == before


# -- what may be written ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("geometry", "words"),
    [
        (
            {"type": "Polygon", "coordinates": [[[107, 21], [107.1, 21], [107, 21.1], [107, 21]]]},
            ("Point", "Polygon"),
        ),
        ({"type": "Point", "coordinates": ["107", "21"]}, ("longitude, latitude",)),
        ({"type": "Point", "coordinates": [105.85, 21.03]}, ("outside the province",)),  # Hà Nội
        ({"type": "Point", "coordinates": [20.95, 107.05]}, ("outside", "swapped")),
        ({"type": "Point", "coordinates": [430000.0, 2320000.0]}, ("outside the province",)),
        (None, ("geometry", "required")),
    ],
)
def test_a_report_must_be_a_point_inside_the_province(api, place, keys, geometry, words) -> None:
    body = report(place)
    body["geometry"] = geometry
    refused(send(api, "POST", ITEMS, keys["app"], body), 400, "geometry", *words)


def test_a_point_in_the_provinces_box_but_in_no_commune_is_refused(api, place, keys) -> None:
    body = report(place)
    body["geometry"]["coordinates"] = place["nowhere"]
    refused(send(api, "POST", ITEMS, keys["app"], body), 400, "no commune")


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b'{"type": "Feature", "geometry": ', ("not valid JSON",)),
        (b"", ("empty",)),
        (b"[1, 2]", ("GeoJSON Feature",)),
        (b'{"type": "FeatureCollection", "features": []}', ("GeoJSON Feature",)),
        (b"[" * 30_000 + b"]" * 30_000, ("nested too deeply",)),
        ('{"type": "Feature", "x": "Qu\xe1ng"}'.encode("latin-1"), ("not UTF-8",)),
    ],
)
def test_a_body_that_is_not_a_feature_is_a_400(api, keys, content, words) -> None:
    refused(send(api, "POST", ITEMS, keys["app"], content=content), 400, *words)


def test_a_category_outside_the_list_is_refused(api, place, keys) -> None:
    message = refused(
        send(api, "POST", ITEMS, keys["app"], report(place, category="alien landing")),
        400,
        "category",
        "alien landing",
    )
    assert "flooding" in message and "broken_street_lamp" in message  # says what is accepted


@pytest.mark.parametrize(
    ("properties", "words"),
    [
        ({"description": "x" * 2001}, ("description", "2001", "2000")),
        ({"description": "   "}, ("description", "empty")),
        ({"description": None}, ("description", "required")),
        ({"reporter_phone": "call me maybe"}, ("reporter_phone",)),
        ({"reporter_email": "a" * 250 + "@x.vn"}, ("reporter_email", "at most")),
        ({"reporter_name": "bad\x00name"}, ("reporter_name", "control")),
        ({"owner": "me"}, ("unknown field", "owner")),
        ({"status": "resolved"}, ("starts as new",)),
    ],
)
def test_text_fields_are_bounded_and_checked(api, place, keys, properties, words) -> None:
    response = send(api, "POST", ITEMS, keys["app"], report(place, **properties))
    status = 409 if "status" in properties else 400
    refused(response, status, *words)


def test_oversized_bodies_and_other_media_types_are_refused(api, place, keys) -> None:
    huge = report(place, description="x" * 100_000)
    refused(send(api, "POST", ITEMS, keys["app"], huge), 413, "KiB")
    response = send(
        api, "PUT", f"{ITEMS}/1", keys["app"], report(place), headers={"Content-Type": "text/csv"}
    )
    refused(response, 415, "application/geo+json")
    crs = {"Content-Crs": "<http://www.opengis.net/def/crs/EPSG/0/5899>"}
    refused(send(api, "POST", ITEMS, keys["app"], report(place), headers=crs), 400, "CRS84")


# -- a report's life ----------------------------------------------------------------------------
def test_a_report_is_created_published_without_personal_data_and_logged(
    api, place, keys, db
) -> None:
    incident = created(api, keys["app"], report(place, category="Street_Lamp"))
    row = db.execute(
        "SELECT category, status, commune_code, reporter_phone, created_by, "
        "ST_X(geom), ST_Y(geom) FROM ops.incidents WHERE id = %s",
        (incident,),
    ).fetchone()
    # the superseded name is mapped; the commune comes from the point, not from the client
    assert row[:5] == (
        "broken_street_lamp",
        "new",
        place["commune"],
        "+84 912 345 678",
        f"{keys['app'].split('_')[1]}: Citizen app (operations)",
    )
    assert [round(row[5], 7), round(row[6], 7)] == [round(c, 7) for c in place["point"]]

    # an anonymous client sees the report, and none of its personal fields
    item = api.get(f"{ITEMS}/{incident}")
    assert item.status_code == 200, item.text
    properties = item.json()["properties"]
    assert properties["category"] == "broken_street_lamp"
    assert properties["status"] == "new" and properties["commune_code"] == place["commune"]
    assert properties["reported_at"] and properties["updated_at"]
    page = api.get(ITEMS, params={"limit": 1000})
    for text in (item.text, page.text):
        assert not any(field in text for field in PERSONAL)
        assert "Nguyễn Văn A" not in text and "912 345 678" not in text and "Cây đổ" not in text

    (log,) = db.execute(
        "SELECT action, old_status, new_status, key_name, department, key_id, new_values, "
        "changed_at FROM ops.incident_log WHERE incident_id = %s",
        (incident,),
    ).fetchall()
    assert log[:6] == (
        "create",
        None,
        "new",
        "Citizen app",
        "operations",
        keys["app"].split("_")[1],
    )
    assert log[6]["category"] == "broken_street_lamp" and log[6]["commune_code"] == place["commune"]
    assert log[6]["reporter_phone"] == "(personal)"  # the log does not copy personal data
    assert log[7] is not None


def test_status_goes_new_assigned_resolved_and_never_back(api, place, keys, db) -> None:
    incident = created(api, keys["app"], report(place, category="flooding"))
    item = f"{ITEMS}/{incident}"
    # new → resolved skips a step
    refused(
        send(api, "PATCH", item, keys["app"], {"properties": {"status": "resolved"}}),
        409,
        "new → resolved",
        "assigned",
    )
    # PATCH: only what changes (application/merge-patch+json, as RFC 7396 names it)
    response = send(
        api,
        "PATCH",
        item,
        keys["app"],
        {"properties": {"status": "assigned", "assigned_to": "Đội thoát nước Hạ Long"}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert response.status_code == 204, response.text
    assert api.get(item).json()["properties"]["assigned_to"] == "Đội thoát nước Hạ Long"
    # PUT: the feature again, as read back by the app (read-only fields are ignored)
    feature = api.get(item).json()
    feature["properties"].update(
        status="resolved", description="Đã khơi thông cống", category="blocked_drain"
    )
    response = send(api, "PUT", item, keys["admin"], feature)
    assert response.status_code == 204, response.text
    properties = api.get(item).json()["properties"]
    assert properties["status"] == "resolved" and properties["resolved_at"]
    assert properties["category"] == "blocked_drain"
    # a resolved report stays resolved
    for status in ("new", "assigned"):
        refused(
            send(api, "PATCH", item, keys["app"], {"properties": {"status": status}}),
            409,
            f"resolved → {status}",
        )
    refused(
        send(api, "PATCH", item, keys["app"], {"properties": {"status": "closed"}}),
        400,
        "closed",
        "new, assigned, resolved",
    )
    patched_collection = {"type": "FeatureCollection", "properties": {"status": "resolved"}}
    refused(send(api, "PATCH", item, keys["app"], patched_collection), 400, "GeoJSON Feature")
    # a status beside "properties" is not silently ignored
    refused(send(api, "PATCH", item, keys["app"], {"status": "new"}), 400, 'under "properties"')
    # the reporter's contact survived the PUT that did not carry it
    assert (
        db.execute(
            "SELECT reporter_phone FROM ops.incidents WHERE id = %s", (incident,)
        ).fetchone()[0]
        == "+84 912 345 678"
    )

    log = db.execute(
        "SELECT action, old_status, new_status, key_name, department, old_values, new_values "
        "FROM ops.incident_log WHERE incident_id = %s ORDER BY id",
        (incident,),
    ).fetchall()
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in log] == [
        ("create", None, "new", "Citizen app", "operations"),
        ("update", "new", "assigned", "Citizen app", "operations"),
        ("update", "assigned", "resolved", "SDI administrator", "*"),
    ]
    assert log[1][5] == {"status": "new", "assigned_to": None}
    assert log[2][5]["category"] == "flooding" and log[2][6]["category"] == "blocked_drain"
    assert log[2][6]["description"] == "Đã khơi thông cống"


def test_moving_a_report_rederives_its_commune_and_is_checked(api, place, keys, db) -> None:
    incident = created(api, keys["app"], report(place))
    item = f"{ITEMS}/{incident}"
    refused(
        send(
            api,
            "PATCH",
            item,
            keys["app"],
            {"geometry": {"type": "Point", "coordinates": [105.85, 21.03]}},
        ),
        400,
        "outside",
    )
    other = db.execute(
        "SELECT ST_X(p), ST_Y(p), commune_code FROM (SELECT ST_PointOnSurface(geom) p, "
        "commune_code FROM admin.communes_current WHERE admin_vintage = '2025' "
        "AND commune_code <> %s ORDER BY commune_code LIMIT 1) c",
        (place["commune"],),
    ).fetchone()
    body = {"geometry": {"type": "Point", "coordinates": [other[0], other[1]]}}
    assert send(api, "PATCH", item, keys["app"], body).status_code == 204
    assert api.get(item).json()["properties"]["commune_code"] == other[2]
    old, new = db.execute(
        "SELECT old_values, new_values FROM ops.incident_log WHERE incident_id = %s "
        "ORDER BY id DESC LIMIT 1",
        (incident,),
    ).fetchone()
    assert old["commune_code"] == place["commune"] and new["commune_code"] == other[2]


def test_the_log_is_append_only(api, place, keys, db) -> None:
    incident = created(api, keys["app"], report(place))
    for statement in (
        "UPDATE ops.incident_log SET key_name = 'someone else' WHERE incident_id = %s",
        "DELETE FROM ops.incident_log WHERE incident_id = %s",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            db.execute(statement, (incident,))
    with pytest.raises(psycopg.errors.ForeignKeyViolation):  # a report with a history stays
        db.execute("DELETE FROM ops.incidents WHERE id = %s", (incident,))


def test_reports_are_never_deleted_and_unknown_ones_are_404(api, place, keys, db) -> None:
    incident = created(api, keys["app"], report(place))
    for key in ("app", "admin"):
        response = send(api, "DELETE", f"{ITEMS}/{incident}", keys[key])
        assert response.status_code == 405, response.text
        assert "PATCH" in response.headers["allow"]
    assert api.get(f"{ITEMS}/{incident}").status_code == 200
    options = api.options(f"{ITEMS}/{incident}")
    assert options.status_code == 200 and "DELETE" not in options.headers["allow"]
    assert "PATCH" in options.headers["allow"]
    for missing in ("999999999", "abc", "-1"):
        response = send(api, "PATCH", f"{ITEMS}/{missing}", keys["app"], {"properties": {}})
        assert response.status_code == 404, response.text


def test_the_internal_register_shows_the_description_to_operations_only(api, place, keys) -> None:
    incident = created(api, keys["app"], report(place))
    path = f"/collections/incidents_register/items/{incident}"
    assert api.get(path).status_code == 404
    assert api.get(path, headers={"X-API-Key": keys["reader"]}).status_code == 404
    seen = api.get(path, headers={"X-API-Key": keys["app"]})  # an operations key
    assert seen.status_code == 200, seen.text
    properties = seen.json()["properties"]
    assert properties["description"] == report(place)["properties"]["description"]
    assert properties["created_by"].endswith(": Citizen app (operations)")
    # contact details are published nowhere, not even to the operations centre
    assert not {"reporter_name", "reporter_phone", "reporter_email"} & properties.keys()
    assert "912 345 678" not in seen.text


def test_the_operations_summary_counts_a_new_report(api, place, keys, db) -> None:
    if not db.execute("SELECT to_regclass('ops.commune_summary') IS NOT NULL").fetchone()[0]:
        pytest.skip("ops.commune_summary (migration 0008) is not in this warehouse yet")

    def open_here() -> int:
        row = db.execute(
            "SELECT incidents_open FROM ops.commune_summary WHERE commune_code = %s",
            (place["commune"],),
        ).fetchone()
        return row[0] if row else 0

    before = open_here()
    created(api, keys["app"], report(place, category="fire"))
    assert open_here() == before + 1


def test_the_openapi_document_describes_patch_and_no_delete(api) -> None:
    document = api.get("/openapi", params={"f": "json"}).json()
    item = document["paths"][f"{ITEMS}/{{featureId}}"]
    assert {"get", "put", "patch"} <= item.keys() and "delete" not in item
    assert "post" in document["paths"][ITEMS]


def test_keys_list_shows_the_write_rights(keys) -> None:
    listed = run_sdi("keys", "list")
    assert listed.returncode == 0, listed.stderr
    line = next(x for x in listed.stdout.splitlines() if "Citizen app" in x)
    assert "incidents" in line
    bad = run_sdi("keys", "create", "--department", "x", "--name", "y", "--write", "Bad Name!")
    assert bad.returncode == 2 and "--write" in bad.stderr


@pytest.mark.parametrize(
    "change",
    [
        {"properties": {"category": "fire"}},
        {"properties": {"assigned_to": "Another office"}},
        {"geometry": "moved"},
        {"properties": {"description": "rewritten after the fact"}},
    ],
)
def test_a_resolved_report_is_frozen(api, place, keys, change) -> None:
    """Issue 13: once resolved, a report's category, office and point no longer change."""
    incident = created(api, keys["app"], report(place, category="flooding"))
    item = f"{ITEMS}/{incident}"
    for status in ("assigned", "resolved"):
        answer = send(api, "PATCH", item, keys["app"], {"properties": {"status": status}})
        assert answer.status_code == 204, answer.text
    before = api.get(item).json()
    if change.get("geometry") == "moved":
        lon, lat = before["geometry"]["coordinates"]
        change = {"geometry": {"type": "Point", "coordinates": [lon + 0.0001, lat]}}
    refused(send(api, "PATCH", item, keys["admin"], change), 409, "resolved")
    after = api.get(item).json()
    assert after["properties"] == before["properties"]
    assert after["geometry"] == before["geometry"]


def test_json_carries_text_as_stored(api, place, keys) -> None:
    """Issue 13: pygeoapi's to_json turned < and > into &lt; &gt; in JSON; not any more."""
    text = "Nước ngập > 0.5 m <gần chợ> & trường"
    incident = created(api, keys["app"], report(place, category="flooding", description=text))
    register = api.get(
        f"/collections/incidents_register/items/{incident}", headers={"X-API-Key": keys["admin"]}
    )
    assert register.status_code == 200
    assert register.json()["properties"]["description"] == text
    assert "&lt;" not in register.text
    page = api.get(
        "/collections/incidents_register/items",
        params={"limit": 1000},
        headers={"X-API-Key": keys["admin"]},
    )
    assert text in {f["properties"].get("description") for f in page.json()["features"]}


def test_csv_cells_are_never_spreadsheet_formulas(api, place, keys) -> None:
    """Issue 13: a text starting with = + - @ is written with a leading ' in CSV."""
    formula = '=HYPERLINK("http://evil.example","click")'
    incident = created(api, keys["app"], report(place, category="flooding", description=formula))
    csv = api.get(
        "/collections/incidents_register/items",
        params={"f": "csv", "limit": 10000},
        headers={"X-API-Key": keys["admin"]},
    )
    assert csv.status_code == 200, csv.text[:300]
    assert "'=HYPERLINK" in csv.text
    assert not any(
        cell.lstrip('"').startswith(("=", "+", "@"))
        for line in csv.text.splitlines()
        for cell in line.split(",")
    )
    assert incident
