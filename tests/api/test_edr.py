"""OGC API EDR on the gauges collection: water-level series as CoverageJSON, over HTTP.

The sample readings (etl/jobs/hazard_gauge_readings.yml) are what the series must hold: every
figure below is compared with a plain query on ``hazard.gauge_readings``.
"""

from __future__ import annotations

from datetime import UTC

import pytest

GAUGE = "G-HL-01"


@pytest.fixture(scope="module")
def gauge(loaded, migrated) -> dict:
    """G-HL-01's position and readings, straight from the warehouse."""
    import psycopg

    with psycopg.connect(migrated) as conn:
        x, y = conn.execute(
            "SELECT ST_X(geom), ST_Y(geom) FROM hazard.gauges_current WHERE gauge_code = %s",
            (GAUGE,),
        ).fetchone()
        readings = conn.execute(
            "SELECT observed_at, water_level_m FROM hazard.gauge_readings "
            "WHERE gauge_code = %s ORDER BY observed_at",
            (GAUGE,),
        ).fetchall()
        others = conn.execute(
            "SELECT count(*) FROM hazard.gauges_current WHERE gauge_code <> %s "
            "AND ST_DWithin(geom::geography, ST_MakePoint(%s, %s)::geography, 100)",
            (GAUGE, x, y),
        ).fetchone()[0]
    assert len(readings) >= 4 and others == 0
    return {"x": x, "y": y, "readings": readings}


def _iso(t) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _series(coverage: dict) -> list[tuple[str, float]]:
    times = coverage["domain"]["axes"]["t"]["values"]
    values = coverage["ranges"]["water_level_m"]["values"]
    assert coverage["ranges"]["water_level_m"]["shape"] == [len(times)]
    return list(zip(times, values, strict=True))


def test_the_collection_advertises_its_edr_queries(api) -> None:
    body = api.get("/collections/gauges", params={"f": "json"}).json()
    assert {"position", "area", "locations"} <= set(body["data_queries"])
    assert body["parameter_names"]["water_level_m"]["unit"]["symbol"]["value"] == "m"


def test_a_location_query_gives_the_gauge_series(api, gauge) -> None:
    response = api.get(f"/collections/gauges/locations/{GAUGE}", params={"f": "json"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/vnd.cov+json")
    body = response.json()
    assert body["type"] == "CoverageCollection" and body["domainType"] == "PointSeries"
    (coverage,) = body["coverages"]
    assert coverage["id"] == GAUGE
    assert coverage["domain"]["axes"]["x"]["values"] == [pytest.approx(gauge["x"])]
    assert _series(coverage) == [(_iso(t), v) for t, v in gauge["readings"]]


def test_position_with_a_datetime_range_and_parameter_name(api, gauge) -> None:
    readings = gauge["readings"]
    start, end = readings[1][0], readings[-2][0]
    response = api.get(
        "/collections/gauges/position",
        params={
            "coords": f"POINT({gauge['x'] + 0.0003} {gauge['y']})",  # ~30 m away
            "datetime": f"{_iso(start)}/{_iso(end)}",
            "parameter-name": "water_level_m",
            "f": "json",
        },
    )
    assert response.status_code == 200, response.text
    (coverage,) = response.json()["coverages"]
    assert _series(coverage) == [(_iso(t), v) for t, v in readings[1:-1]]
    open_end = api.get(
        "/collections/gauges/position",
        params={"coords": f"POINT({gauge['x']} {gauge['y']})", "datetime": f"{_iso(end)}/.."},
    ).json()
    assert _series(open_end["coverages"][0]) == [(_iso(t), v) for t, v in readings[-2:]]


def test_area_gives_every_gauge_inside(api, gauge, db) -> None:
    x, y = gauge["x"], gauge["y"]
    ring = [(x - 0.3, y - 0.3), (x + 0.3, y - 0.3), (x + 0.3, y + 0.3), (x - 0.3, y - 0.3)]
    polygon = "POLYGON((" + ",".join(f"{a} {b}" for a, b in ring) + "))"
    body = api.get("/collections/gauges/area", params={"coords": polygon, "f": "json"}).json()
    expected = [
        code
        for (code,) in db.execute(
            "SELECT gauge_code FROM hazard.gauges_current WHERE ST_Intersects(geom, "
            "ST_SetSRID(ST_GeomFromText(%s), 4326)) ORDER BY gauge_code",
            (polygon,),
        )
    ]
    assert [c["id"] for c in body["coverages"]] == expected and GAUGE in expected


def test_locations_lists_the_gauges_as_geojson(api, db) -> None:
    body = api.get("/collections/gauges/locations", params={"f": "json"}).json()
    assert body["type"] == "FeatureCollection"
    ids = sorted(f["id"] for f in body["features"])
    expected = [c for (c,) in db.execute("SELECT gauge_code FROM hazard.gauges_current ORDER BY 1")]
    assert ids == expected
    assert {"name", "alarm_level_1"} <= set(body["features"][0]["properties"])
    assert "run_id" not in body["features"][0]["properties"]  # only the published properties


@pytest.mark.parametrize(
    ("path", "params", "status", "phrase"),
    [
        ("/collections/gauges/locations/NO-SUCH", {}, 404, "no location"),
        ("/collections/gauges/position", {"coords": "POINT(100 10)"}, 404, "no location within"),
        ("/collections/gauges/position", {"coords": "POINT(1 2"}, 400, "coords"),
        ("/collections/gauges/position", {"coords": "POLYGON((0 0,1 0,1 1,0 0))"}, 400, "POINT"),
        ("/collections/gauges/area", {"coords": "POINT(107 21)"}, 400, "POLYGON"),
        (f"/collections/gauges/locations/{GAUGE}", {"parameter-name": "rain_mm"}, 400, "parameter"),
        (f"/collections/gauges/locations/{GAUGE}", {"datetime": "yesterday"}, 400, ""),
    ],
)
def test_bad_queries_are_clear_4xx(api, path, params, status, phrase) -> None:
    response = api.get(path, params={**params, "f": "json"})
    assert response.status_code == status, response.text
    assert phrase in response.json()["description"]
