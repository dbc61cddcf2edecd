"""Zonal statistics over the hazard rasters of the COG catalogue (flood depth, elevation).

:func:`zonal_stats` (polygon in EPSG:4326, a raster layer's kind; :class:`ZonalStatsError`, a
400, for bad input): how it counts and why COGs: ``docs/hazard.md``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import rasterio
import rasterio.features
import rasterio.windows
import shapely
from pyproj import CRS, Transformer
from shapely.geometry.base import BaseGeometry

from sdi.errors import SdiError, SourceError
from sdi.settings import Settings, get_settings

__all__ = [
    "DEPTH_THRESHOLD_M",
    "ZonalStatsError",
    "as_polygon",
    "raster_layers",
    "stats_over_files",
    "zonal_stats",
]

# Default threshold of depth layers: above 0.5 m of water, walking and driving are dangerous
# (the first boundary of the committee's depth classes '0-0.5' | '0.5-1' | …).
DEPTH_THRESHOLD_M = 0.5


class ZonalStatsError(SdiError, ValueError):
    """The polygon or the raster layer asked for is not usable (a client error)."""

    exit_code = 2
    http_status = 400


@dataclass(frozen=True)
class _Sums:
    """What one raster contributes to the statistics of a polygon."""

    count: int = 0
    nodata: int = 0
    total: float = 0.0
    low: float = math.inf
    high: float = -math.inf
    area: float = 0.0
    above_area: float = 0.0

    def __add__(self, other: _Sums) -> _Sums:
        return _Sums(
            self.count + other.count,
            self.nodata + other.nodata,
            self.total + other.total,
            min(self.low, other.low),
            max(self.high, other.high),
            self.area + other.area,
            self.above_area + other.above_area,
        )


def as_polygon(polygon: Any) -> BaseGeometry:
    """A valid (Multi)Polygon in EPSG:4326 from shapely, WKB, hex WKB, WKT or GeoJSON."""
    try:
        if isinstance(polygon, BaseGeometry):
            geom = polygon
        elif isinstance(polygon, bytes | bytearray | memoryview):
            geom = shapely.from_wkb(bytes(polygon))
        elif isinstance(polygon, dict):
            geom = shapely.geometry.shape(polygon)
        elif isinstance(polygon, str):
            text = polygon.strip()
            is_hex = bool(text) and all(c in "0123456789abcdefABCDEF" for c in text)
            geom = shapely.from_wkb(text) if is_hex else shapely.from_wkt(text)
        else:
            raise ZonalStatsError(
                "zonal_stats: polygon must be a shapely geometry, WKB, WKT or a GeoJSON "
                f"geometry, not {type(polygon).__name__}"
            )
    except (shapely.errors.GEOSException, ValueError, TypeError, AttributeError, KeyError) as exc:
        if isinstance(exc, ZonalStatsError):
            raise
        raise ZonalStatsError(f"zonal_stats: polygon cannot be read: {exc}") from exc
    if geom is None or geom.is_empty:
        raise ZonalStatsError("zonal_stats: polygon is empty")
    if geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise ZonalStatsError(
            f"zonal_stats: polygon must be a Polygon or MultiPolygon, not a {geom.geom_type}"
        )
    xmin, ymin, xmax, ymax = geom.bounds
    if not (-180 <= xmin <= xmax <= 180 and -90 <= ymin <= ymax <= 90):
        raise ZonalStatsError(
            f"zonal_stats: polygon bounds ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g}) are not "
            "lon/lat: give it in EPSG:4326, longitude first"
        )
    if not geom.is_valid:
        # A self-intersecting ring (a bow-tie drawn by hand) keeps its polygonal parts.
        parts = shapely.get_parts(shapely.make_valid(geom))
        geom = shapely.union_all([p for p in parts if p.geom_type in ("Polygon", "MultiPolygon")])
        if geom.is_empty:
            raise ZonalStatsError("zonal_stats: polygon is invalid and has no area")
    return geom


@lru_cache(maxsize=16)
def _from_lonlat(crs_wkt: str) -> Transformer:
    return Transformer.from_crs(CRS.from_epsg(4326), CRS.from_wkt(crs_wkt), always_xy=True)


@lru_cache(maxsize=64)
def _between(src_wkt: str, dst_wkt: str) -> Transformer:
    return Transformer.from_crs(CRS.from_wkt(src_wkt), CRS.from_wkt(dst_wkt), always_xy=True)


def _transform(geom: BaseGeometry, transformer: Transformer) -> BaseGeometry:
    return shapely.transform(
        geom, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))
    )


def _as_stored(value: float) -> float:
    """A pixel value as the raster stores it: float32 0.1 is 0.1, not 0.10000000149011612."""
    return float(str(np.float32(value)))


def _one_raster(
    path: Path, polygon: BaseGeometry, covered: list[tuple[str, BaseGeometry]], threshold
) -> tuple[_Sums, tuple[str, BaseGeometry]]:
    """Sums over ``polygon`` minus the extents already ``covered``; and this raster's extent."""
    try:
        src = rasterio.open(path)
    except rasterio.RasterioIOError as exc:
        raise SourceError(
            f"raster {path} cannot be read ({exc}); re-run its ETL job to store it again"
        ) from exc
    with src:
        if src.crs is None or not src.crs.is_projected:
            raise SourceError(f"raster {path}: needs a projected CRS in metres, has {src.crs}")
        wkt = src.crs.to_wkt()
        extent = shapely.box(*src.bounds)
        local = _transform(polygon, _from_lonlat(wkt))
        for other_wkt, other in covered:
            moved = other if other_wkt == wkt else _transform(other, _between(other_wkt, wkt))
            local = local.difference(moved)
        local = local.intersection(extent)
        if local.is_empty or local.area == 0:
            return _Sums(), (wkt, extent)
        # the pixels the bounds touch: floor of the start, ceil of the end (rounding offset
        # and length separately can drop the last row or column)
        exact = rasterio.windows.from_bounds(*local.bounds, transform=src.transform)
        col0, row0 = math.floor(exact.col_off), math.floor(exact.row_off)
        window = rasterio.windows.Window(
            col0,
            row0,
            math.ceil(exact.col_off + exact.width) - col0,
            math.ceil(exact.row_off + exact.height) - row0,
        )
        full = rasterio.windows.Window(0, 0, src.width, src.height)
        try:
            window = window.intersection(full)
        except rasterio.errors.WindowError:
            return _Sums(), (wkt, extent)
        height, width = int(window.height), int(window.width)
        if height == 0 or width == 0:
            return _Sums(), (wkt, extent)
        inside = rasterio.features.geometry_mask(
            [shapely.geometry.mapping(local)],
            out_shape=(height, width),
            transform=src.window_transform(window),
            invert=True,
        )
        data = src.read(1, window=window, masked=True)
        values = np.ma.filled(data.astype(np.float64), np.nan)
        valid = inside & np.isfinite(values)
        picked = values[valid]
        pixel_area = abs(src.transform.a * src.transform.e - src.transform.b * src.transform.d)
        sums = _Sums(
            count=int(picked.size),
            nodata=int(inside.sum() - picked.size),
            total=float(picked.sum()),
            low=_as_stored(picked.min()) if picked.size else math.inf,
            high=_as_stored(picked.max()) if picked.size else -math.inf,
            area=picked.size * pixel_area,
            above_area=(
                int((picked > threshold).sum()) * pixel_area if threshold is not None else 0.0
            ),
        )
        return sums, (wkt, extent)


def stats_over_files(
    polygon: Any, paths: Iterable[Path | str], *, threshold: float | None = None
) -> dict:
    """Zonal statistics of ``polygon`` (EPSG:4326) over raster files, in the order given.

    Returns ``count`` (pixels with a value whose centre is in the polygon), ``nodata_count``,
    ``min``, ``max``, ``mean`` (None when count is 0), ``area_m2`` (their area), and with a
    ``threshold`` also ``area_above_threshold_m2`` (pixels with a value > threshold), and
    ``files``: the paths that had pixels in the polygon. Where files overlap, the first one
    covering a place counts it.
    """
    geom = as_polygon(polygon)
    total = _Sums()
    covered: list[tuple[str, BaseGeometry]] = []
    used: list[str] = []
    for path in paths:
        sums, extent = _one_raster(Path(path), geom, covered, threshold)
        covered.append(extent)
        if sums.count or sums.nodata:
            used.append(str(path))
        total = total + sums
    return {
        "count": total.count,
        "nodata_count": total.nodata,
        "min": total.low if total.count else None,
        "max": total.high if total.count else None,
        "mean": total.total / total.count if total.count else None,
        "area_m2": total.area,
        "threshold": threshold,
        "area_above_threshold_m2": total.above_area if threshold is not None else None,
        "files": used,
    }


def raster_layers(conn: psycopg.Connection) -> list[str]:
    """The raster layers (kinds) with at least one current raster in the catalogue."""
    rows = conn.execute("SELECT DISTINCT kind FROM hazard.rasters_current ORDER BY kind")
    return [kind for (kind,) in rows]


def zonal_stats(
    polygon: Any,
    raster: str,
    settings: Settings | None = None,
    *,
    threshold: float | None = None,
    conn: psycopg.Connection | None = None,
) -> dict:
    """Count/min/max/mean of raster layer ``raster`` inside ``polygon`` (EPSG:4326).

    ``raster`` is a kind of ``hazard.rasters`` ("flood_depth_100y", "elevation", …); every
    current raster of that kind whose footprint meets the polygon is read (one per city).
    ``threshold``: for depth layers (kind starting with "flood_depth") it defaults to
    :data:`DEPTH_THRESHOLD_M` and gives ``area_above_threshold_m2``; for other layers only when
    given. ``conn`` reuses an open warehouse connection (else one is opened from ``settings``).

    Returns a JSON-ready dict::

        {"raster": "flood_depth_100y", "unit": "m", "count": 2314, "nodata_count": 0,
         "min": 0.05, "max": 3.1, "mean": 1.2, "area_m2": 925600.0, "threshold": 0.5,
         "area_above_threshold_m2": 611200.0, "rasters": ["flood_depth_ha_long"]}

    Raises :class:`ZonalStatsError` (HTTP 400) for a polygon that is not a lon/lat
    (Multi)Polygon or an unknown raster layer.
    """
    geom = as_polygon(polygon)
    if not isinstance(raster, str) or not raster:
        raise ZonalStatsError("zonal_stats: raster must be the name of a raster layer")
    if threshold is None and raster.startswith("flood_depth"):
        threshold = DEPTH_THRESHOLD_M
    if threshold is not None:
        try:
            value = float(threshold)
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value):
            raise ZonalStatsError(f"zonal_stats: threshold must be a number, not {threshold!r}")
        threshold = value
    owned = conn is None
    if conn is None:
        from sdi.db import connect

        conn = connect(settings or get_settings())
    try:
        rows = conn.execute(
            "SELECT name, path, unit, "
            "ST_Intersects(geom, ST_GeomFromGeoJSON(%s)) FROM hazard.rasters_current "
            "WHERE kind = %s ORDER BY name",
            (json.dumps(shapely.geometry.mapping(geom)), raster),
        ).fetchall()
        if not rows:
            known = ", ".join(raster_layers(conn)) or "none loaded yet"
            raise ZonalStatsError(
                f"zonal_stats: unknown raster layer {raster!r}; raster layers: {known}"
            )
    finally:
        if owned:
            conn.close()
    names = {path: name for name, path, _unit, hit in rows if hit}
    stats = stats_over_files(geom, list(names), threshold=threshold)
    return {
        "raster": raster,
        "unit": next((unit for _n, _p, unit, _h in rows if unit), None),
        **{k: v for k, v in stats.items() if k != "files"},
        "rasters": [names[path] for path in stats["files"]],
    }
