"""Exposure of an area, or of a gauge at a hypothetical water level: the inputs checked, and
the figures a warning would give (``docs/warnings.md``), with flood-depth statistics.

Used by the OGC API process "exposure" (``sdi.api.processes``) and ``sdi hazard exposure``;
both pass their own psycopg connection. Bad input raises :class:`ExposureInputError` (a
``ValueError``) with a message naming the input, for the client.
"""

from __future__ import annotations

import json
import math
from typing import Any

import psycopg

from sdi import sql
from sdi.hazard import model
from sdi.hazard.warnings import (
    ExposureInputError,
    exposure_of_area,
    exposure_of_gauge_level,
    exposure_of_many,
    exposure_stamp,
)
from sdi.settings import get_settings

__all__ = [
    "INPUTS",
    "ExposureInputError",
    "area_wkb",
    "checked_inputs",
    "depth_statistics",
    "exposure",
    "exposure_of_many",
    "exposure_stamp",
]

INPUTS = ("area", "gauge", "water_level_m")


def checked_inputs(data: Any) -> dict[str, Any]:
    """The inputs, checked; ExposureInputError with a message naming the input otherwise.

    >>> checked_inputs({"gauge": " G-HL-01 ", "water_level_m": "3.4"})
    {'gauge': 'G-HL-01', 'water_level_m': 3.4}
    """
    if not isinstance(data, dict):
        raise ExposureInputError(
            'inputs must be an object: {"area": …} or {"gauge": …, "water_level_m": …}'
        )
    unknown = sorted(set(data) - set(INPUTS))
    if unknown:
        raise ExposureInputError(
            f"unknown input(s) {', '.join(unknown)}; inputs are: area, or gauge and water_level_m"
        )
    area, gauge, level = data.get("area"), data.get("gauge"), data.get("water_level_m")
    if area is not None and (gauge is not None or level is not None):
        raise ExposureInputError("give either area, or gauge and water_level_m, not both")
    if area is not None:
        if isinstance(area, dict) and area.get("type") == "Feature":
            area = area.get("geometry")
        if not isinstance(area, dict) or area.get("type") not in ("Polygon", "MultiPolygon"):
            kind = area.get("type") if isinstance(area, dict) else type(area).__name__
            raise ExposureInputError(
                f"area must be a GeoJSON Polygon or MultiPolygon (lon/lat), not {kind}"
            )
        return {"area": area}
    if gauge is None:
        raise ExposureInputError(
            "missing input: area (a GeoJSON polygon), or gauge and water_level_m"
        )
    if not isinstance(gauge, str) or not gauge.strip():
        raise ExposureInputError(f"gauge must be a gauge code such as G-HL-01, not {gauge!r}")
    if level is None:
        raise ExposureInputError(
            "missing input water_level_m: the hypothetical water level in metres"
        )
    if isinstance(level, bool) or not isinstance(level, int | float | str):
        raise ExposureInputError(f"water_level_m must be a number of metres, not {level!r}")
    try:
        level = float(level)
    except ValueError:
        raise ExposureInputError(
            f"water_level_m must be a number of metres, not {level!r}"
        ) from None
    if not math.isfinite(level):
        raise ExposureInputError(f"water_level_m must be a finite number of metres, not {level!r}")
    return {"gauge": gauge.strip(), "water_level_m": level}


def area_wkb(conn: psycopg.Connection, area: dict[str, Any]) -> bytes:
    """The area as valid EPSG:4326 WKB; ExposureInputError if unreadable, invalid or outside."""
    settings = get_settings()
    try:
        cursor = conn.execute(
            sql.load("sdi.hazard", "area_check"),
            (*settings.province_extent, json.dumps(area)),
        )
    except psycopg.Error as exc:
        message = getattr(exc.diag, "message_primary", None) or "unreadable"
        raise ExposureInputError(f"area is not a readable GeoJSON polygon: {message}") from None
    valid, reason, has_area, inside, wkb = sql.one(cursor)
    if not valid:
        raise ExposureInputError(f"area is not a valid polygon: {reason}")
    if not has_area:
        raise ExposureInputError("area has no area (a degenerate polygon)")
    if not inside:
        west, south, east, north = settings.province_extent
        raise ExposureInputError(
            f"area is outside the province (lon {west}…{east}, lat {south}…{north}); "
            "coordinates are lon/lat in CRS84 (not VN-2000, not lat/lon)"
        )
    return bytes(wkb)


def exposure(conn: psycopg.Connection, inputs: dict[str, Any]) -> dict[str, Any]:
    """A GeoJSON Feature: the area, and its exposure figures as properties.

    ``inputs`` as returned by :func:`checked_inputs`.
    """
    properties: dict[str, Any] = {}
    if "area" in inputs:
        figures, wkb = exposure_of_area(conn, area_wkb(conn, inputs["area"]))
    else:
        level, thresholds, figures, wkb = exposure_of_gauge_level(
            conn, inputs["gauge"], inputs["water_level_m"]
        )
        properties.update(
            gauge_code=inputs["gauge"],
            water_level_m=inputs["water_level_m"],
            level=level,
            level_label=model.LEVEL_LABELS[level],
            thresholds_m=list(thresholds),
        )
        if level == 0:
            properties["note"] = "below alarm level I: no warning, nothing exposed"
        elif not figures:
            properties["note"] = "no flood zone is linked to this gauge: exposure unknown"
    properties.update(figures.get("figures", {}))
    if wkb is not None:
        properties["flood_depth"] = depth_statistics(conn, wkb)
    return {"type": "Feature", "geometry": figures.get("geometry"), "properties": properties}


def depth_statistics(conn: psycopg.Connection, wkb: bytes) -> list[dict[str, Any]]:
    """Zonal statistics of every flood-depth raster layer over the area (none loaded: [])."""
    try:
        from sdi.hazard.rasters import ZonalStatsError, raster_layers, zonal_stats
    except ImportError:  # the raster module is optional
        return []
    stats = []
    for layer in raster_layers(conn):
        if not layer.startswith("flood_depth"):
            continue
        try:
            stats.append(zonal_stats(wkb, layer, conn=conn))
        except ZonalStatsError as exc:
            stats.append({"raster": layer, "error": str(exc)})
    return stats
