"""The change feed over HTTP: added, changed, removed since an instant or a run; pages; access.

Versions of street lamps of our own (keys CF-*) are written the way a merge writes them (a new
version per change, the old one closed, a retired feature closed) in two runs, R0 then R1; the
feed must report exactly what R1 changed. The flood scenario (tests/hazard/
test_flood_scenario.py) reads the warnings' feed after real ETL loads.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import psycopg
import pytest

from sdi.keys import create_key

NOT_FOUND = {"code": "NotFound", "type": "NotFound", "description": "Collection not found"}
POINT = "ST_SetSRID(ST_MakePoint(107.05 + %s * 0.0001, 20.95), 4326)"


def _lamp(conn: psycopg.Connection, key: str, run: int, status: str, n: int, id_=None) -> None:
    conn.execute(
        f"INSERT INTO utility.street_lamps (id, natural_key, commune_code, run_id, valid_from, "
        f"row_hash, geom, lamp_code, status) VALUES (coalesce(%s, "
        f"nextval('utility.street_lamps_id_seq')), %s, '99999', %s, now(), "
        f"md5(%s)::uuid, {POINT}, %s, %s)",
        (id_, key, run, key + status, n, key, status),
    )


def _close(conn: psycopg.Connection, key: str) -> int:
    return conn.execute(
        "UPDATE utility.street_lamps SET valid_to = now() WHERE natural_key = %s "
        "AND valid_to IS NULL RETURNING id",
        (key,),
    ).fetchone()[0]


def _run(conn: psycopg.Connection) -> int:
    return conn.execute(
        "INSERT INTO etl.runs (job, status, message) VALUES ('test_change_feed', 'running', "
        "'tests/api/test_changes.py') RETURNING run_id"
    ).fetchone()[0]


def _finish(conn: psycopg.Connection, run: int) -> None:
    conn.execute(
        "UPDATE etl.runs SET status = 'succeeded', finished_at = clock_timestamp() "
        "WHERE run_id = %s",
        (run,),
    )


def _clean(conn: psycopg.Connection) -> None:
    conn.execute("DELETE FROM utility.street_lamps WHERE natural_key LIKE 'CF-%'")


@pytest.fixture(scope="module")
def history(loaded, migrated) -> Iterator[dict]:
    with psycopg.connect(migrated, autocommit=True) as conn:
        _clean(conn)
        before = conn.execute("SELECT now()").fetchone()[0]
        with conn.transaction():  # run R0: four lamps
            r0 = _run(conn)
            for n, key in enumerate(("CF-1", "CF-2", "CF-3"), 1):
                _lamp(conn, key, r0, "on", n)
            _finish(conn, r0)
        with conn.transaction():  # run R1: one changed, one retired, one added, one in and out
            r1 = _run(conn)
            changed = _close(conn, "CF-1")
            _lamp(conn, "CF-1", r1, "fault", 1, id_=changed)
            removed = _close(conn, "CF-2")
            _lamp(conn, "CF-4", r1, "on", 4)
            _lamp(conn, "CF-5", r1, "on", 5)
            _close(conn, "CF-5")
            _finish(conn, r1)
        ids = dict(
            conn.execute(
                "SELECT natural_key, id FROM utility.street_lamps WHERE natural_key LIKE 'CF-%' "
                "GROUP BY 1, 2"
            ).fetchall()
        )
        assert ids["CF-1"] == changed and ids["CF-2"] == removed
        try:
            yield {"r0": r0, "r1": r1, "ids": ids, "before": before}
        finally:
            _clean(conn)


def _changes(api: httpx.Client, collection: str = "lamps", key: str | None = None, **params):
    headers = {"X-API-Key": key} if key else {}
    return api.get(f"/collections/{collection}/changes", params=params, headers=headers)


def _ours(body: dict) -> dict[str, tuple[str, str | None]]:
    """lamp code → (change, status) of the CF-* features of a feed page."""
    return {
        f["properties"]["lamp_code"]: (f["properties"]["change"], f["properties"]["status"])
        for f in body["features"]
        if str(f["properties"]["lamp_code"]).startswith("CF-")
    }


def test_changes_since_a_run(api, history) -> None:
    response = _changes(api, since=history["r0"])
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/geo+json")
    body = response.json()
    assert body["since_run"] == history["r0"]
    assert _ours(body) == {
        "CF-1": ("changed", "fault"),
        "CF-2": ("removed", "on"),
        "CF-4": ("added", "on"),
    }
    by_code = {f["properties"]["lamp_code"]: f for f in body["features"]}
    assert by_code["CF-1"]["id"] == history["ids"]["CF-1"]
    assert by_code["CF-1"]["properties"]["run_id"] == history["r1"]
    assert by_code["CF-2"]["properties"]["valid_to"] is not None
    assert by_code["CF-4"]["geometry"]["type"] == "Point"
    assert history["r1"] in [r["run_id"] for r in body["runs"]]
    assert set(by_code["CF-4"]["properties"]) == {
        "change", "run_id", "valid_from", "valid_to", "lamp_code", "commune_code", "road_id",
        "road_name", "status", "power_w", "install_year", "cabinet_id", "geometry_repaired",
    }  # fmt: skip


def test_changes_since_an_instant_and_polling(api, history) -> None:
    since = history["before"].astimezone(UTC).isoformat()
    body = _changes(api, since=since, limit=10_000).json()
    # added since: CF-1 (as it is now), CF-3, CF-4; CF-2 and CF-5 came and went
    assert _ours(body) == {
        "CF-1": ("added", "fault"),
        "CF-3": ("added", "on"),
        "CF-4": ("added", "on"),
    }
    poll = next(link["href"] for link in body["links"] if link["rel"] == "poll")
    again = api.get(poll).json()
    assert _ours(again) == {}  # nothing of ours changed after the window
    assert datetime.fromisoformat(again["since"]) == datetime.fromisoformat(body["until"])


def test_pages_cover_the_window_once(api, history) -> None:
    first = _changes(api, since=history["r0"], limit=1).json()
    seen, page = [], first
    while True:
        assert page["numberReturned"] <= 1
        seen += [f["id"] for f in page["features"]]
        following = [link["href"] for link in page["links"] if link["rel"] == "next"]
        if not following:
            break
        page = api.get(following[0]).json()
        assert page["until"] == first["until"]
    everything = _changes(api, since=history["r0"], limit=10_000).json()
    assert seen == [f["id"] for f in everything["features"]] and len(seen) >= 3


def test_warnings_have_a_feed_and_the_openapi_documents_it(api) -> None:
    body = _changes(api, "warnings", since="2000-01-01T00:00:00Z").json()
    assert "G-HL-01" in [
        f["properties"]["gauge_code"]
        for f in body["features"]
        if f["properties"]["change"] == "added"
    ]
    paths = api.get("/openapi", params={"f": "json"}).json()["paths"]
    assert "/collections/warnings/changes" in paths and "/collections/lamps/changes" in paths
    assert "/collections/permits_register/changes" not in paths  # internal: hidden


def test_internal_layers_and_personal_fields(api, settings) -> None:
    anonymous = _changes(api, "permits_register", since="2000-01-01T00:00:00Z")
    assert anonymous.status_code == 404 and anonymous.json() == NOT_FOUND
    with psycopg.connect(settings.database_url) as conn:
        _, construction = create_key(conn, "construction", "change feed tests")
    keyed = _changes(api, "permits_register", construction, since="2000-01-01T00:00:00Z")
    assert keyed.status_code == 200 and keyed.json()["features"]
    assert "applicant_name" in keyed.json()["features"][0]["properties"]
    public = _changes(api, "permits", since="2000-01-01T00:00:00Z", limit=50).json()
    assert public["features"]
    assert all("applicant_name" not in f["properties"] for f in public["features"])


@pytest.mark.parametrize(
    ("collection", "params", "status", "phrase"),
    [
        ("lamps", {}, 400, "missing parameter since"),
        ("lamps", {"since": "last tuesday"}, 400, "since"),
        ("lamps", {"since": "2025-10-14T18:00:00"}, 400, "since"),  # no UTC offset
        ("lamps", {"since": "2025-02-30T18:00:00Z"}, 400, "since"),
        ("lamps", {"since": "999999999"}, 404, "run 999999999 does not exist"),
        ("lamps", {"since": "2025-10-14T18:00:00Z", "limit": "0"}, 400, "limit"),
        ("lamps", {"since": "2025-10-14T18:00:00Z", "f": "html"}, 400, "f"),
        ("warning_history", {"since": "2025-10-14T18:00:00Z"}, 400, "keeps no versions"),
        ("no_such_layer", {"since": "2025-10-14T18:00:00Z"}, 404, "Collection not found"),
    ],
)
def test_bad_requests(api, collection, params, status, phrase) -> None:
    """The OpenAPI document's patterns (checked by sdi.api.contract) and the feed's own checks."""
    response = _changes(api, collection, **params)
    assert response.status_code == status, response.text
    assert phrase in response.json()["description"]
