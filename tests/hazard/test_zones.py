"""Landslide susceptibility and storm-surge zones: the sample deliveries (a UTM shapefile with a
.cpg, a KML), loaded through the real ETL into PostGIS and served by the real OGC API."""

from __future__ import annotations

import pytest

from sdi.hazard.rasters import zonal_stats
from sdi.samples.check import check

ZONES = {  # job → (table, sample file, collection)
    "hazard_landslide_zones": (
        "hazard.landslide_zones",
        "hazard/landslide_susceptibility.shp",
        "landslide_zones",
    ),
    "hazard_storm_surge_zones": (
        "hazard.storm_surge_zones",
        "hazard/storm_surge_zones.kml",
        "storm_surge_zones",
    ),
}


def test_sample_files_pass_their_own_check(manifest, settings) -> None:
    # reads every delivered file back: .cpg, CRSs, nesting, DEM below each surge height, …
    assert check(settings.source_dir) == []


@pytest.mark.parametrize("job", sorted(ZONES))
def test_rows_match_the_manifest_city_by_city(job: str, loaded, manifest, db) -> None:
    table, rel, _collection = ZONES[job]
    result = loaded[job]
    expected = manifest["files"][rel]
    assert result.status == "succeeded", result.message
    assert (result.rows_read, result.counts.added, result.rejected) == (expected["rows"],) * 2 + (
        0,
    )
    by_city = dict(
        db.execute(
            f"SELECT c.city, count(*) FROM {table}_current z "
            "JOIN admin.communes_current c USING (commune_code) GROUP BY 1"
        ).fetchall()
    )
    assert by_city == {city: n for city, n in expected["rows_by_city"].items() if n}
    assert set(by_city) == {"ha_long", "uong_bi", "cam_pha", "mong_cai"}


@pytest.mark.parametrize("table", [t for t, _f, _c in ZONES.values()])
def test_zones_lie_inside_their_commune_in_a_city(table: str, loaded, db) -> None:
    outside, valid, srid = db.execute(
        f"SELECT count(*) FILTER (WHERE NOT ST_CoveredBy(z.geom, ST_Buffer(c.geom, 1e-7))), "
        "bool_and(ST_IsValid(z.geom)), min(ST_SRID(z.geom)) "
        f"FROM {table}_current z JOIN admin.communes_current c USING (commune_code) "
        "WHERE c.city <> ''"
    ).fetchone()
    assert (outside, valid, srid) == (0, True, 4326)


def test_landslide_classes_partition_each_site(loaded, db) -> None:
    rows = db.execute(
        "SELECT susceptibility, susceptibility_rank, count(*), bool_and(mining_area), "
        "bool_or(mining_area) FROM hazard.landslide_zones_current GROUP BY 1, 2 ORDER BY 2"
    ).fetchall()
    assert [r[:2] for r in rows] == [("low", 1), ("moderate", 2), ("high", 3), ("very_high", 4)]
    assert all(r[4] and not r[3] for r in rows)  # some zones in mining areas, not all
    # the classes of a site ring each other: they touch, never overlap
    overlap = db.execute(
        "SELECT count(*) FROM hazard.landslide_zones_current a "
        "JOIN hazard.landslide_zones_current b ON a.zone_code < b.zone_code "
        "AND ST_Intersects(a.geom, b.geom) "
        "WHERE ST_Area(ST_Transform(ST_Intersection(a.geom, b.geom), 5899)) > 1"
    ).fetchone()[0]
    assert overlap == 0
    # mining areas are in the coal basin (Hạ Long, Uông Bí, Cẩm Phả), never in Móng Cái
    cities = db.execute(
        "SELECT DISTINCT c.city FROM hazard.landslide_zones_current z "
        "JOIN admin.communes_current c USING (commune_code) WHERE z.mining_area"
    ).fetchall()
    assert {c for (c,) in cities} == {"ha_long", "uong_bi", "cam_pha"}


def test_surge_zones_are_nested_by_typhoon_level(loaded, db) -> None:
    levels = db.execute(
        "SELECT typhoon_level, surge_height_m, surge_class FROM hazard.storm_surge_zones_current "
        "GROUP BY 1, 2, 3 ORDER BY 2"
    ).fetchall()
    assert levels == [
        ("8-9", 1.0, "0-1"),
        ("10-11", 2.0, "1-2"),
        ("12-13", 3.0, "2-3"),
        ("14-15", 4.5, ">3"),
    ]
    # within a commune, a stronger typhoon's zone covers a weaker one's (to 5 cm: the zones
    # share the coastline, each cut by its own polygon overlay)
    pairs, nested = db.execute(
        "SELECT count(*), count(*) FILTER (WHERE ST_CoveredBy(ST_Transform(a.geom, 5899), "
        "ST_Buffer(ST_Transform(b.geom, 5899), 0.05))) "
        "FROM hazard.storm_surge_zones_current a JOIN hazard.storm_surge_zones_current b "
        "USING (commune_code) WHERE a.surge_height_m < b.surge_height_m"
    ).fetchone()
    assert pairs > 20 and nested == pairs


def test_surge_zones_are_low_coastal_land_and_landslides_high_ground(loaded, db, settings):
    # the DEM and the zones come from different departments; in the sample they agree
    surge = db.execute(
        "SELECT ST_AsBinary(geom), surge_height_m FROM hazard.storm_surge_zones_current "
        "WHERE typhoon_level = '14-15' ORDER BY zone_code"
    ).fetchall()
    assert len(surge) >= 8
    for wkb, height in surge:
        stats = zonal_stats(bytes(wkb), "elevation", settings, threshold=height)
        assert stats["count"] > 0 and stats["max"] <= height + 0.05
        assert stats["area_above_threshold_m2"] == 0
    (wkb,) = db.execute(
        "SELECT ST_AsBinary(ST_Union(geom)) FROM hazard.landslide_zones_current "
        "WHERE susceptibility IN ('high', 'very_high')"
    ).fetchone()
    hills = zonal_stats(bytes(wkb), "elevation", settings)
    assert hills["min"] > 50 and hills["mean"] > 150


@pytest.mark.parametrize("job", sorted(ZONES))
def test_collection_serves_every_zone_with_its_properties(job: str, api, manifest) -> None:
    _table, rel, collection = ZONES[job]
    response = api.get(f"/collections/{collection}/items", params={"limit": 1000, "f": "json"})
    assert response.status_code == 200
    body = response.json()
    assert body["numberMatched"] == len(body["features"]) == manifest["files"][rel]["rows"]
    props = set(body["features"][0]["properties"])
    assert "zone_code" in props and "area_m2" in props
    assert not props & {"run_id", "row_hash", "source_hash", "valid_to", "natural_key"}


@pytest.mark.parametrize("job", sorted(ZONES))
def test_collection_has_vector_tiles_with_zones(job: str, api, db) -> None:
    table, _rel, collection = ZONES[job]
    z = 12
    y, x = db.execute(
        f"""
        WITH p AS (SELECT ST_Transform(ST_PointOnSurface(geom), 3857) p FROM {table}_current
                   ORDER BY zone_code LIMIT 1)
        SELECT floor((20037508.342789244 - ST_Y(p)) / (40075016.68557849 / 2 ^ {z}))::int,
               floor((ST_X(p) + 20037508.342789244) / (40075016.68557849 / 2 ^ {z}))::int
        FROM p
        """
    ).fetchone()
    tile = api.get(f"/collections/{collection}/tiles/WebMercatorQuad/{z}/{y}/{x}")
    assert tile.status_code == 200 and len(tile.content) > 50
