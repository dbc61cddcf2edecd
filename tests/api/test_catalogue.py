"""The OGC API Records catalogue describes every public layer, with lineage."""

from __future__ import annotations

import pytest

from sdi.layers import load_layers

PUBLIC = sorted(
    layer.id for layer in load_layers() if layer.kind == "features" and layer.access == "public"
)


def _records(api, **params) -> dict:
    response = api.get("/collections/catalogue/items", params={"f": "json", "limit": 100, **params})
    assert response.status_code == 200, response.text
    return response.json()


def test_every_public_layer_has_an_iso_shaped_record_and_no_other(api) -> None:
    body = _records(api)
    assert sorted(r["id"] for r in body["features"]) == PUBLIC
    for record in body["features"]:
        p = record["properties"]
        assert p["title"] and p["description"] and p["keywords"]
        assert p["license"] and p["contacts"][0]["organization"]
        assert "http://www.opengis.net/def/crs/EPSG/0/5899" in p["crs"]
        assert record["geometry"]["type"] == "Polygon"


def test_record_lineage_is_the_last_refresh_run_and_its_files(api, db) -> None:
    record = api.get("/collections/catalogue/items/parcels", params={"f": "json"}).json()
    lineage = record["properties"]["lineage"]
    run = db.execute(
        "SELECT max(run_id) FROM etl.runs WHERE job = 'land_parcels' AND status = 'succeeded' "
        "AND rows_read IS NOT NULL"
    ).fetchone()[0]
    assert lineage["run_id"] == run and lineage["job"] == "land_parcels"
    files = dict(
        db.execute(
            "SELECT regexp_replace(path, '^.*/', ''), sha256 FROM etl.run_sources "
            "WHERE run_id = %s",
            (run,),
        ).fetchall()
    )
    assert {s["file"]: s["sha256"] for s in lineage["sources"]} == files
    assert len(files) == 4  # one shapefile per city


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("đèn chiếu sáng", "lamps"),
        ("den chieu sang", "lamps"),
        ("ngap lut", "flood_zones"),
        ("cadastre", "parcels"),
    ],
)
def test_keyword_search_with_or_without_accents(api, q: str, expected: str) -> None:
    assert expected in [r["id"] for r in _records(api, q=q)["features"]]


def test_bbox_and_time_search(api) -> None:
    far_away = _records(api, bbox="100,10,100.1,10.1")
    assert far_away["numberMatched"] == 0
    recent = _records(api, datetime="2020-01-01T00:00:00Z/..")
    # a record's time is its lineage (the last ETL run); layers written only through the API
    # (incidents) have none
    loaded = [x for x in load_layers() if x.id in PUBLIC and x.metadata.get("etl_jobs")]
    assert recent["numberMatched"] == len(loaded)
    future = _records(api, datetime="2100-01-01T00:00:00Z/..")
    assert future["numberMatched"] == 0


def test_unknown_record_is_404(api) -> None:
    assert api.get("/collections/catalogue/items/nope", params={"f": "json"}).status_code == 404
