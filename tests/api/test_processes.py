"""OGC API Process "exposure" over HTTP: sync and async, its figures, its errors, whose jobs.

The figures are checked two ways: a gauge at the water level of its current warning must expose
exactly what the warning says (the warnings' own computation), and a polygon's figures must
match one plain PostGIS query written independently here.
"""

from __future__ import annotations

import json
import time

import httpx
import psycopg
import pytest

from sdi.keys import create_key

EXECUTE = "/processes/exposure/execution"
GAUGE = "G-HL-01"  # the sample readings put it at alarm II (tests/hazard/test_warnings.py)
FIGURES = (
    "zone_codes",
    "return_period_years",
    "buildings",
    "buildings_by_use",
    "residents_estimate",
    "parcels",
    "parcels_by_group",
    "critical_facilities",
    "schools",
    "health_facilities",
    "state_offices",
    "street_lamps",
    "cameras",
)


@pytest.fixture(scope="module")
def keys(server: str, settings) -> dict[str, str]:
    with psycopg.connect(settings.database_url) as conn:
        _, planning = create_key(conn, "planning", "exposure tests: planning")
        _, construction = create_key(conn, "construction", "exposure tests: construction")
        _, admin = create_key(conn, "*", "exposure tests: administrator")
    return {"planning": planning, "construction": construction, "admin": admin}


@pytest.fixture(scope="module")
def warning(loaded, migrated) -> dict:
    with psycopg.connect(migrated) as conn:
        cursor = conn.execute(
            "SELECT *, ST_AsGeoJSON(geom)::json AS area FROM hazard.warnings_current "
            "WHERE gauge_code = %s",
            (GAUGE,),
        )
        return dict(zip([c.name for c in cursor.description], cursor.fetchone(), strict=True))


def execute(api: httpx.Client, inputs: dict, key: str | None = None, **headers) -> httpx.Response:
    if key:
        headers["X-API-Key"] = key
    return api.post(EXECUTE, json={"inputs": inputs}, headers=headers)


def test_the_process_is_listed_and_described(api) -> None:
    listed = api.get("/processes", params={"f": "json"}).json()
    assert "exposure" in [p["id"] for p in listed["processes"]]
    described = api.get("/processes/exposure", params={"f": "json"}).json()
    assert {"area", "gauge", "water_level_m"} <= set(described["inputs"])
    assert {"sync-execute", "async-execute"} <= set(described["jobControlOptions"])


def test_a_gauge_at_its_warning_level_exposes_what_the_warning_says(api, warning) -> None:
    response = execute(api, {"gauge": GAUGE, "water_level_m": warning["water_level_m"]})
    assert response.status_code == 200, response.text
    feature = response.json()
    assert feature["type"] == "Feature" and feature["geometry"]["type"] == "MultiPolygon"
    properties = feature["properties"]
    assert (properties["level"], properties["level_label"]) == (warning["level"], "II")
    for name in FIGURES:
        assert properties[name] == warning[name], name
    assert properties["water_pipes_m"] == pytest.approx(warning["water_pipes_m"], abs=0.01)
    assert properties["zone_area_m2"] == pytest.approx(warning["zone_area_m2"], abs=0.1)
    # the sample's 100-year depth raster (etl/jobs/hazard_flood_depth.yml) over the area
    (depth,) = properties["flood_depth"]
    assert depth["raster"] == "flood_depth_100y" and depth["unit"] == "m"
    assert depth["count"] > 0 and depth["max"] >= depth["mean"] >= depth["min"]


def test_a_hypothetical_level_iii_covers_more_and_below_i_nothing(api, warning) -> None:
    high = execute(api, {"gauge": GAUGE, "water_level_m": 99.0}).json()["properties"]
    assert high["level_label"] == "III" and high["buildings"] >= warning["buildings"]
    low = execute(api, {"gauge": GAUGE, "water_level_m": "-5"}).json()["properties"]
    assert (low["level"], low.get("buildings")) == (0, None)
    assert "below alarm level I" in low["note"]


def test_a_polygon_matches_an_independent_postgis_query(api, warning, db) -> None:
    area = warning["area"]
    response = execute(api, {"area": {"type": "Feature", "geometry": area, "properties": {}}})
    assert response.status_code == 200, response.text
    properties = response.json()["properties"]
    independent = db.execute(
        """
        WITH a AS (SELECT ST_SetSRID(ST_GeomFromGeoJSON(%s), 4326) AS g)
        SELECT
          (SELECT count(*) FROM construction.buildings_current b, a
             WHERE ST_Intersects(b.geom, a.g)),
          (SELECT count(*) FROM land.parcels_current p, a WHERE ST_Intersects(p.geom, a.g)),
          (SELECT count(*) FROM utility.street_lamps_current l, a WHERE ST_Intersects(l.geom, a.g)),
          (SELECT count(*) FROM utility.cameras_current c, a WHERE ST_Intersects(c.geom, a.g)),
          (SELECT coalesce(sum(ST_Length(ST_Transform(ST_Intersection(w.geom, a.g), 5899))), 0)
             FROM utility.water_pipes_current w, a WHERE ST_Intersects(w.geom, a.g))
        """,
        (json.dumps(area),),
    ).fetchone()
    assert independent[0] > 0
    got = [properties[k] for k in ("buildings", "parcels", "street_lamps", "cameras")]
    assert got == list(independent[:4])
    assert properties["water_pipes_m"] == pytest.approx(independent[4], abs=0.05)
    # the warning's area is the same area: the same figures
    assert properties["buildings"] == warning["buildings"]
    assert properties["residents_estimate"] == warning["residents_estimate"]


def test_a_body_that_is_not_an_object_is_a_400_not_a_500(api) -> None:
    for body in ("[null, null]", "3", '"inputs"'):
        response = api.post(EXECUTE, content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, response.text
        assert "JSON object" in response.json()["description"]


@pytest.mark.parametrize(
    ("inputs", "phrase"),
    [
        ({"area": {"type": "Point", "coordinates": [107.0, 21.0]}}, "not Point"),
        ({"area": "POLYGON((0 0, 1 0, 1 1, 0 0))"}, "GeoJSON Polygon"),
        (
            {"area": {"type": "Polygon", "coordinates": [[[2, 48], [3, 48], [3, 49], [2, 48]]]}},
            "outside the province",
        ),
        (
            {
                "area": {
                    "type": "Polygon",
                    "coordinates": [
                        [[107, 21], [107.1, 21.1], [107.1, 21], [107, 21.1], [107, 21]]
                    ],
                }
            },
            "not a valid polygon",
        ),
        ({"area": {"type": "Polygon", "coordinates": "x"}}, "not a readable GeoJSON"),
        ({"gauge": "NO-SUCH", "water_level_m": 3}, "unknown gauge 'NO-SUCH'"),
        ({"gauge": GAUGE, "water_level_m": "high"}, "water_level_m must be a number"),
        ({"gauge": GAUGE, "water_level_m": "nan"}, "finite"),
        ({"gauge": GAUGE}, "missing input water_level_m"),
        ({}, "missing input"),
        ({"gauge": GAUGE, "water_level_m": 3, "area": {"type": "Polygon"}}, "not both"),
        ({"polygon": {}}, "unknown input(s) polygon"),
    ],
)
def test_bad_inputs_are_a_clear_400(api, inputs, phrase) -> None:
    response = execute(api, inputs)
    assert response.status_code == 400, response.text
    assert phrase in response.json()["description"]


def _wait(api: httpx.Client, job: str, key: str) -> dict:
    for _ in range(200):
        status = api.get(job, headers={"X-API-Key": key}, params={"f": "json"}).json()
        if status["status"] in ("successful", "failed"):
            return status
        time.sleep(0.1)
    raise AssertionError(f"job {job} did not finish")


def test_async_jobs_run_and_are_visible_to_their_key_only(api, keys, warning) -> None:
    inputs = {"gauge": GAUGE, "water_level_m": warning["water_level_m"]}
    anonymous = execute(api, inputs, Prefer="respond-async")
    assert anonymous.status_code == 401 and "API key" in anonymous.json()["description"]

    started = execute(api, inputs, keys["planning"], Prefer="respond-async")
    assert started.status_code == 201, started.text
    job_id = started.json()["jobID"]
    job = started.headers["location"].removeprefix(str(api.base_url).rstrip("/"))
    assert job == f"/jobs/{job_id}"
    assert _wait(api, job, keys["planning"])["status"] == "successful"
    result = api.get(
        f"{job}/results", params={"f": "json"}, headers={"X-API-Key": keys["planning"]}
    )
    assert result.status_code == 200, result.text
    sync = execute(api, inputs).json()
    assert result.json() == sync

    # another department's key, and anonymous clients: the job does not exist for them
    for key in (keys["construction"], None):
        headers = {"X-API-Key": key} if key else {}
        assert api.get(job, headers=headers).status_code == 404
        assert api.get(f"{job}/results", headers=headers).status_code == 404
        listed = api.get("/jobs", params={"f": "json"}, headers=headers).json()
        assert job_id not in [j["jobID"] for j in listed["jobs"]]
    mine = api.get("/jobs", params={"f": "json"}, headers={"X-API-Key": keys["planning"]}).json()
    assert job_id in [j["jobID"] for j in mine["jobs"]]
    admin = api.get(
        "/jobs", params={"f": "json", "limit": 1000}, headers={"X-API-Key": keys["admin"]}
    )
    assert job_id in [j["jobID"] for j in admin.json()["jobs"]]
    # a client cannot claim to be someone else through the internal header
    forged = api.get(job, headers={"x-sdi-caller": "whatever *"})
    assert forged.status_code == 404


def test_an_async_job_with_a_bad_input_fails_with_its_reason(api, keys) -> None:
    started = execute(
        api, {"gauge": "NO-SUCH", "water_level_m": 1}, keys["planning"], Prefer="respond-async"
    )
    assert started.status_code == 201
    status = _wait(api, f"/jobs/{started.json()['jobID']}", keys["planning"])
    assert status["status"] == "failed" and "unknown gauge" in status["message"]


def test_the_process_describes_the_inputs_the_hazard_package_checks() -> None:
    from sdi.api.processes import PROCESS_METADATA
    from sdi.hazard.exposure import INPUTS, ExposureInputError, checked_inputs

    assert tuple(PROCESS_METADATA["inputs"]) == INPUTS
    with pytest.raises(ExposureInputError, match="unknown input"):
        checked_inputs({"gauge": GAUGE, "water_level_m": 3, "depth": 1})
