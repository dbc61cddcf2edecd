"""Zonal statistics over the hazard rasters (sdi.hazard.rasters): a hand-checked fixture of two
overlapping 4 × 4 rasters with a nodata pixel, the same through the real ETL and catalogue, and
the sample rasters of four cities against an independent computation.

The fixture (EPSG:5899, 10 m pixels, origin X0/Y0 at the top left corner)::

    raster "fx_a" (columns 0-3)        raster "fx_b" (columns 3-6 of A's grid)
     0   1   2   3                     100 101 102 103
     4   5   6   7                     104 105 106 107
     8  --  10  11    (-- = nodata)    108 109 110 111
    12  13  14  15                     112 113 114 115

The polygon is the box of rows 1-2 and columns 1-4 (40 × 20 m). Column 3 is in both rasters:
the first raster by name counts it. So the pixels are A: 5 6 7 / -- 10 11 and B's column 1:
105 / 109 — 7 values and 1 nodata; sum 253, mean 253 / 7, min 5, max 109, 700 m²; above 10:
11, 105, 109 → 300 m².
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psycopg
import pytest
import rasterio
import rasterio.features
import shapely
from pyproj import Transformer
from rasterio.transform import from_origin

from sdi.etl.runner import run_job
from sdi.etl.spec import load_job
from sdi.hazard.rasters import ZonalStatsError, stats_over_files, zonal_stats
from sdi.settings import PROJECT_DIR

X0, Y0 = 463_000.0, 2_360_000.0  # Xã Tiên Yên: no sample raster near
TO_LONLAT = Transformer.from_crs(5899, 4326, always_xy=True)
FIXTURE_KIND = "flood_depth_fixture"

FLOOD_DEPTH_JOB = PROJECT_DIR / "etl" / "jobs" / "hazard_flood_depth.yml"


def fixture_job(path: Path) -> Path:
    """The shipped flood-depth job, reading the fixture files into a kind of their own."""
    text = FLOOD_DEPTH_JOB.read_text(encoding="utf-8")
    assert "hazard/flood_depth_*.tif" in text and "{value: flood_depth_100y}" in text
    text = text.replace("hazard/flood_depth_*.tif", "fx_*.tif")
    path.write_text(text.replace("flood_depth_100y", FIXTURE_KIND), encoding="utf-8")
    return path


def lonlat(geom_5899: shapely.Geometry) -> shapely.Geometry:
    return shapely.transform(
        geom_5899, lambda xy: np.column_stack(TO_LONLAT.transform(xy[:, 0], xy[:, 1]))
    )


def write_tiff(path: Path, x0: float, values: np.ndarray) -> Path:
    profile = {
        "driver": "GTiff",
        "width": 4,
        "height": 4,
        "count": 1,
        "dtype": "float32",
        "nodata": -9999.0,
        "crs": "EPSG:5899",
        "transform": from_origin(x0, Y0, 10, 10),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(values.astype("float32"), 1)
    return path


@pytest.fixture()
def fixture_rasters(tmp_path: Path) -> tuple[Path, Path]:
    a = np.arange(16, dtype=float).reshape(4, 4)
    a[2, 1] = -9999.0
    b = 100 + np.arange(16, dtype=float).reshape(4, 4)
    return write_tiff(tmp_path / "fx_a.tif", X0, a), write_tiff(tmp_path / "fx_b.tif", X0 + 30, b)


POLYGON = lonlat(shapely.box(X0 + 10, Y0 - 30, X0 + 50, Y0 - 10))
EXPECTED = {
    "count": 7,
    "nodata_count": 1,
    "min": 5.0,
    "max": 109.0,
    "mean": pytest.approx(253 / 7),
    "area_m2": pytest.approx(700.0),
}


def test_hand_checked_fixture_counts_each_place_once_and_skips_nodata(fixture_rasters) -> None:
    a, b = fixture_rasters
    stats = stats_over_files(POLYGON, [a, b], threshold=10.0)
    assert stats | {"files": None} == EXPECTED | {
        "threshold": 10.0,
        "area_above_threshold_m2": pytest.approx(300.0),
        "files": None,
    }
    assert stats["files"] == [str(a), str(b)]
    # the other order: B now owns the shared column 3 (values 104 and 108 instead of 7 and 11)
    swapped = stats_over_files(POLYGON, [b, a])
    assert (swapped["count"], swapped["nodata_count"], swapped["max"]) == (7, 1, 109.0)
    assert swapped["mean"] == pytest.approx((5 + 6 + 10 + 104 + 105 + 108 + 109) / 7)
    assert swapped["area_above_threshold_m2"] is None


def test_fixture_through_the_etl_and_the_catalogue(
    fixture_rasters, tmp_path: Path, migrated: str, settings
) -> None:
    (tmp_path / "jobs").mkdir()
    spec = fixture_job(tmp_path / "jobs" / "fixture_rasters.yml")
    local = settings.model_copy(update={"source_dir": tmp_path})
    try:
        result = run_job(load_job(spec, local), migrated, settings=local, force=True)
        assert result.status == "succeeded" and result.rows_read == 2
        # WKB, WKT and GeoJSON give the same answer; the depth default threshold is 0.5 m
        for polygon in (POLYGON.wkb, POLYGON.wkt, shapely.geometry.mapping(POLYGON)):
            stats = zonal_stats(polygon, FIXTURE_KIND, settings)
            assert {k: stats[k] for k in EXPECTED} == EXPECTED
            assert stats["rasters"] == ["fx_a", "fx_b"] and stats["unit"] == "m"
            assert stats["threshold"] == 0.5
            assert stats["area_above_threshold_m2"] == pytest.approx(700.0)
        # a polygon beside the rasters: nothing counted, no error
        away = lonlat(shapely.box(X0 - 500, Y0 - 500, X0 - 400, Y0 - 400))
        stats = zonal_stats(away, FIXTURE_KIND, settings)
        assert (stats["count"], stats["mean"], stats["rasters"]) == (0, None, [])
    finally:
        with psycopg.connect(migrated, autocommit=True) as conn:
            conn.execute("DELETE FROM hazard.rasters WHERE kind = %s", (FIXTURE_KIND,))


@pytest.mark.parametrize(
    ("polygon", "message"),
    [
        (shapely.Point(107.0, 21.0), "must be a Polygon or MultiPolygon, not a Point"),
        (shapely.box(21.0, 107.0, 21.1, 107.1), "are not lon/lat"),
        (shapely.box(X0, Y0, X0 + 10, Y0 + 10), "are not lon/lat"),
        ("POLYGON ((1 2, 3", "polygon cannot be read"),
        (42, "not int"),
        (shapely.Polygon(), "polygon is empty"),
    ],
)
def test_bad_polygons_are_clear_client_errors(polygon, message: str) -> None:
    with pytest.raises(ZonalStatsError, match=message) as caught:
        zonal_stats(polygon, "elevation")
    assert caught.value.http_status == 400 and isinstance(caught.value, ValueError)


@pytest.mark.parametrize("threshold", ["deep", float("nan"), [1]])
def test_bad_threshold_is_a_clear_client_error(threshold) -> None:
    with pytest.raises(ZonalStatsError, match="threshold must be a number"):
        zonal_stats(POLYGON, "elevation", threshold=threshold)


def test_unknown_raster_layer_names_the_known_ones(loaded, settings) -> None:
    with pytest.raises(ZonalStatsError, match=r"unknown raster layer 'depth'.*elevation"):
        zonal_stats(POLYGON, "depth", settings)


# -- the sample rasters ----------------------------------------------------------------------


def independent_stats(path: str, zone_5899: shapely.Geometry) -> tuple[int, float, float, float]:
    """Count/min/max/mean of a whole raster read into memory, pixel centres tested by shapely."""
    with rasterio.open(path) as src:
        values = src.read(1)
        rows, cols = np.indices(values.shape)
        xs, ys = rasterio.transform.xy(src.transform, rows.ravel(), cols.ravel())
        inside = shapely.contains_xy(zone_5899, np.asarray(xs), np.asarray(ys))
        picked = values.ravel()[inside & (values.ravel() != src.nodata)]
    return picked.size, float(picked.min()), float(picked.max()), float(picked.mean())


def test_flood_depth_of_a_sample_zone_matches_an_independent_computation(loaded, db, settings):
    zone_wkb, zone_5899_wkb, area, path = db.execute(
        "SELECT ST_AsBinary(z.geom), ST_AsBinary(ST_Transform(z.geom, 5899)), "
        "ST_Area(ST_Transform(z.geom, 5899)), r.path FROM hazard.flood_zones_current z, "
        "hazard.rasters_current r WHERE z.zone_code = 'FZ-HL-100-01' "
        "AND r.name = 'flood_depth_ha_long'"
    ).fetchone()
    stats = zonal_stats(bytes(zone_wkb), "flood_depth_100y", settings)
    count, low, high, mean = independent_stats(path, shapely.from_wkb(bytes(zone_5899_wkb)))
    assert stats["rasters"] == ["flood_depth_ha_long"]
    # pyproj and PostGIS agree to the nanometre: the same pixel centres are inside
    assert stats["count"] == count
    assert (stats["min"], stats["max"]) == (pytest.approx(low), pytest.approx(high))
    assert stats["mean"] == pytest.approx(mean, rel=1e-3)
    assert stats["area_m2"] == pytest.approx(area, rel=0.03)  # 20 m pixels vs the outline
    assert low >= 0.05  # the sample's depth is at least 5 cm inside a 100-year zone
    assert 0 < stats["area_above_threshold_m2"] < stats["area_m2"]


def test_elevation_across_two_city_rasters_counts_the_overlap_once(loaded, db, settings):
    paths = dict(
        db.execute(
            "SELECT name, path FROM hazard.rasters_current WHERE name IN "
            "('elevation_cam_pha', 'elevation_ha_long')"
        ).fetchall()
    )
    with (
        rasterio.open(paths["elevation_cam_pha"]) as cp,
        rasterio.open(paths["elevation_ha_long"]) as hl,
    ):
        assert cp.crs == hl.crs and cp.bounds.left < hl.bounds.right  # the DEMs overlap
        y = (max(cp.bounds.bottom, hl.bounds.bottom) + min(cp.bounds.top, hl.bounds.top)) / 2
        # a 2 × 2 km box (EPSG:3405) across Cẩm Phả's western edge, inside Hạ Long's DEM
        box_utm = shapely.box(cp.bounds.left - 1000, y - 1000, cp.bounds.left + 1000, y + 1000)
        assert shapely.box(*hl.bounds).contains(box_utm)
    to_lonlat = Transformer.from_crs(3405, 4326, always_xy=True)
    box = shapely.transform(
        box_utm, lambda xy: np.column_stack(to_lonlat.transform(xy[:, 0], xy[:, 1]))
    )
    stats = zonal_stats(box, "elevation", settings)
    assert stats["rasters"] == ["elevation_cam_pha", "elevation_ha_long"]
    # 2 km × 2 km at 50 m is 1,600 pixels (land or sea): each once, half of them in both DEMs
    assert stats["count"] + stats["nodata_count"] == 1600
    separately = [stats_over_files(box, [paths[n]]) for n in sorted(paths)]
    assert [s["count"] + s["nodata_count"] for s in separately] == [800, 1600]
    # neighbouring DEMs agree where they overlap: same values whichever raster counts them
    reversed_order = stats_over_files(box, [paths["elevation_ha_long"], paths["elevation_cam_pha"]])
    assert reversed_order["count"] == stats["count"]
    assert reversed_order["mean"] == pytest.approx(stats["mean"])
    assert reversed_order["files"] == [paths["elevation_ha_long"]]


def test_elevation_at_sea_is_nodata_and_rises_inland(loaded, db, settings) -> None:
    # 2-3 km south of the coast of Hạ Long, inside its DEM: sea, nodata only
    sea = lonlat(shapely.box(425_000, 2_313_000, 426_000, 2_314_000))
    stats = zonal_stats(sea, "elevation", settings)
    assert stats["count"] == 0 and stats["nodata_count"] > 300 and stats["min"] is None
    zone = db.execute(
        "SELECT ST_AsBinary(geom) FROM hazard.landslide_zones_current "
        "WHERE susceptibility = 'very_high' ORDER BY zone_code LIMIT 1"
    ).fetchone()[0]
    hills = zonal_stats(bytes(zone), "elevation", settings, threshold=100.0)
    assert hills["min"] > 100.0 and hills["area_above_threshold_m2"] == hills["area_m2"]
