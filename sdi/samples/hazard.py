"""Hazard data from the disaster-prevention committee: gauge stations with alarm levels I-III,
their hourly readings, nested flood zones per return period, and flood-depth rasters.

Each gauge watches a named river (``sdi.samples.relief.RIVERS``, whose valleys the terrain
carves) where it passes the city's houses: on the lowest residential lot near the river. Its
flood zones are the low ground around it — the land below the flood's water level (the
gauge's ground plus the event's depth) within an irregular star-shaped outline, so they spread
along the valley and the coastal plain and stop at the hills; 10-year inside 50-year inside
100-year, clipped to the commune. The depth raster is the 100-year depth: the water level
minus the ground, > 0 exactly inside the 100-year zones, 0 elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import shapely
from affine import Affine
from rasterio.features import shapes as raster_shapes
from shapely.geometry import shape as geojson_shape

from sdi.samples.common import (
    CADASTRAL_EPSG,
    REFERENCE_DATE,
    STREAM_FLOOD,
    STREAM_READINGS,
    rng_for,
)
from sdi.samples.land import Parcels
from sdi.samples.relief import RIVERS as RIVER_LINES
from sdi.samples.relief import ground_cadastral, river_lines

GAUGES = {"ha_long": 3, "uong_bi": 2, "cam_pha": 3, "mong_cai": 2}
RIVERS = {
    "ha_long": ("Sông Diễn Vọng", "Sông Trới", "Sông Míp"),
    "uong_bi": ("Sông Uông", "Sông Vàng Danh"),
    "cam_pha": ("Sông Mông Dương", "Sông Voi Lớn", "Sông Thác Thầy"),
    "mong_cai": ("Sông Ka Long", "Sông Bắc Luân"),
}
RETURN_PERIODS = (10, 50, 100)
ZONE_FACTOR = {10: 0.45, 50: 0.7, 100: 1.0}  # outline scale of each return period
RIVER_REACH_M = 800.0  # a gauge's lot lies at most this much further from its river than the
# nearest residential lot
DEPTH_FACTOR = {10: 0.3, 50: 0.6, 100: 1.0}  # peak depth of each event, share of the 100-year
DEPTH_CLASSES = ("0-0.5", "0.5-1", "1-2", ">2")
DATUM = "Hòn Dấu"
PIXEL = 20.0
NODATA = -9999.0
RASTER_MARGIN = 300.0
READING_HOURS = 168
RISING_GAUGE = "G-HL-01"
N_VERTICES = 72


@dataclass
class Hazard:
    """Hazard layers of one city."""

    gauges: pd.DataFrame  # gauge columns with EPSG:5899 x/y
    zones: pd.DataFrame  # flood-zone columns with EPSG:5899 MultiPolygon geometry
    shapes: pd.DataFrame  # per gauge: x, y, radius, harmonics, peak depth (for the raster)
    readings: pd.DataFrame


def _depth_class(depth: float) -> str:
    """'0-0.5', '0.5-1', '1-2' or '>2' metres."""
    return DEPTH_CLASSES[int(np.searchsorted([0.5, 1.0, 2.0], depth))]


def star_radius(shape, phi: np.ndarray) -> np.ndarray:
    """Radius of an irregular star-shaped outline (``radius``, ``amp``, ``phase``) at ``phi``."""
    a, p = shape["amp"], shape["phase"]
    return shape["radius"] * (
        1
        + a[0] * np.sin(2 * phi + p[0])
        + a[1] * np.sin(3 * phi + p[1])
        + a[2] * np.sin(5 * phi + p[2])
    )


def _low_ground(shape: dict, factor: float, level: float) -> tuple[shapely.Geometry, float]:
    """Cells of the 20 m depth grid below ``level`` within the outline scaled by ``factor``
    (a polygon, EPSG:5899) and the mean depth over them."""
    gx, gy, transform = _cells(shape, factor)
    dx, dy = gx - shape["x"], gy - shape["y"]
    rho = np.hypot(dx, dy) / star_radius(shape, np.arctan2(dy, dx))
    z = ground_cadastral(gx, gy)
    wet = ((z < level) & (rho <= factor)).astype(np.uint8)
    cells = [geojson_shape(g) for g, _v in raster_shapes(wet, mask=wet > 0, transform=transform)]
    mean_depth = float(np.mean(level - z[wet > 0])) if wet.any() else 0.0
    return shapely.coverage_union_all(np.asarray(cells, dtype=object)), mean_depth


def _cells(shape: dict, factor: float) -> tuple[np.ndarray, np.ndarray, Affine]:
    """Pixel centres (aligned to multiples of ``PIXEL``) around a gauge's scaled outline."""
    reach = factor * shape["radius"] * (1 + float(np.sum(shape["amp"]))) + PIXEL
    x0 = np.floor((shape["x"] - reach) / PIXEL) * PIXEL
    y1 = np.ceil((shape["y"] + reach) / PIXEL) * PIXEL
    n = int(np.ceil(2 * reach / PIXEL)) + 1
    px = x0 + (np.arange(n) + 0.5) * PIXEL
    py = y1 - (np.arange(n) + 0.5) * PIXEL
    gx, gy = np.meshgrid(px, py)
    return gx, gy, Affine(PIXEL, 0, x0, 0, -PIXEL, y1)


def _gauge_lot(table: pd.DataFrame, river: shapely.Geometry) -> pd.Series:
    """The lowest valid residential lot near the river (any valid lot if none is residential)."""
    lots = table[~table["invalid"]]
    homes = lots[lots["cls"] == 0] if (lots["cls"] == 0).any() else lots
    x, y = homes["cx"].to_numpy(), homes["cy"].to_numpy()
    far = shapely.distance(river, shapely.points(x, y))
    near = far <= far.min() + RIVER_REACH_M
    z = ground_cadastral(x[near], y[near])
    return homes.iloc[np.flatnonzero(near)[int(np.argmin(z))]]


def generate_hazard(parcels: Parcels, communes: pd.DataFrame, *, seed: int) -> Hazard:
    """Gauges, nested flood zones and readings for one city."""
    city = parcels.city
    rng = rng_for(seed, STREAM_FLOOD, city.index)
    table = parcels.table
    inner = communes.set_index("commune_code")["inner"]
    lines = dict(zip(RIVER_LINES, river_lines(CADASTRAL_EPSG), strict=True))
    gauges, shapes, zones = [], [], []
    for g, river in enumerate(RIVERS[city.slug], start=1):
        centre = _gauge_lot(table, lines[river])
        code = str(centre["MAXA"])
        lots = table[(table["MAXA"] == code) & ~table["invalid"]]
        extent = np.sqrt(lots["area"].sum() / 0.55 / np.pi)
        shape: dict[str, Any] = {
            "gauge_id": f"G-{city.abbr}-{g:02d}",
            "x": float(centre["cx"]),
            "y": float(centre["cy"]),
            "radius": float(np.clip(0.8 * extent, 300.0, 2000.0)),
            "amp": rng.uniform([0.08, 0.04, 0.02], [0.15, 0.1, 0.05]),
            "phase": rng.uniform(0, 2 * np.pi, 3),
            "depth": float(rng.uniform(1.6, 4.6)),
            "commune_code": code,
        }
        # The water level of the 100-year flood: the gauge's ground plus its depth there.
        ground = float(ground_cadastral(np.array([shape["x"]]), np.array([shape["y"]]))[0])
        shape["level"] = ground + shape["depth"]
        shapes.append(shape)
        alarm1 = round(float(rng.uniform(2.0, 3.5)), 2)
        alarm2 = round(alarm1 + float(rng.uniform(0.5, 1.0)), 2)
        alarm3 = round(alarm2 + float(rng.uniform(0.5, 1.0)), 2)
        gauges.append(
            {
                "gauge_id": shape["gauge_id"],
                "name": f"Trạm đo mực nước {river.removeprefix('Sông ')}",
                "river": river,
                "x": shape["x"],
                "y": shape["y"],
                "commune_code": code,
                "alarm_1": alarm1,
                "alarm_2": alarm2,
                "alarm_3": alarm3,
                "datum": DATUM,
            }
        )
        for rp in RETURN_PERIODS:
            level = ground + shape["depth"] * DEPTH_FACTOR[rp]
            low, mean_depth = _low_ground(shape, ZONE_FACTOR[rp], level)
            zones.append(
                {
                    "zone_id": f"FZ-{city.abbr}-{rp}-{g:02d}",
                    "return_period": rp,
                    "depth_class": _depth_class(mean_depth),
                    "gauge_id": shape["gauge_id"],
                    "commune_code": code,
                    "name": f"Vùng ngập lũ chu kỳ {rp} năm - {river}",
                    "geometry": shapely.intersection(low, inner[code]),
                }
            )
    zones_df = pd.DataFrame(zones)
    zones_df["geometry"] = _polygonal(zones_df["geometry"].to_numpy())
    zones_df["city"] = city.slug
    gauges_df = pd.DataFrame(gauges)
    gauges_df["city"] = city.slug
    readings = _readings(gauges_df, seed=seed, city_index=city.index)
    return Hazard(gauges_df, zones_df, pd.DataFrame(shapes), readings)


def _polygonal(geoms: np.ndarray) -> np.ndarray:
    """MultiPolygons of the polygonal parts (an intersection can add slivers of lines)."""
    parts, index = shapely.get_parts(geoms, return_index=True)
    keep = shapely.get_type_id(parts) == 3
    return shapely.multipolygons(parts[keep], indices=index[keep])


def _readings(gauges: pd.DataFrame, *, seed: int, city_index: int) -> pd.DataFrame:
    """Hourly water levels for the 7 days ending at the reference date, 00:00 +07:00."""
    end = REFERENCE_DATE.astype("datetime64[h]")
    hours = end - np.arange(READING_HOURS - 1, -1, -1).astype("timedelta64[h]")
    stamps = np.char.add(np.datetime_as_string(hours, unit="s").astype(str), "+07:00")
    t = np.arange(READING_HOURS, dtype=float)
    frames = []
    for g, row in enumerate(gauges.itertuples(index=False)):
        rng = rng_for(seed, STREAM_READINGS, city_index, g)
        base = row.alarm_1 - rng.uniform(0.8, 1.2)
        level = (
            base
            + 0.3 * np.sin(2 * np.pi * t / 12.42 + rng.uniform(0, 2 * np.pi))
            + 0.12 * np.sin(2 * np.pi * t / 24.84 + rng.uniform(0, 2 * np.pi))
            + rng.normal(0, 0.02, READING_HOURS)
        )
        if row.gauge_id == RISING_GAUGE:  # a flood wave: the last readings pass alarm II
            rise = 36
            ramp = np.clip((t - (READING_HOURS - rise)) / (rise - 1), 0, 1) ** 1.2
            target = row.alarm_2 + 0.4
            level = level * (1 - ramp) + ramp * (target + rng.normal(0, 0.02, READING_HOURS))
        frames.append(
            pd.DataFrame(
                {
                    "gauge_id": row.gauge_id,
                    "observed_at": stamps,
                    "water_level_m": np.round(level, 3),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def depth_raster(hazard: Hazard) -> tuple[np.ndarray, Affine]:
    """The 100-year flood depth (float32, metres, 0 outside the zones) and its transform."""
    zones = hazard.zones[hazard.zones["return_period"] == 100]
    xmin, ymin, xmax, ymax = shapely.total_bounds(zones["geometry"].to_numpy())
    x0 = np.floor((xmin - RASTER_MARGIN) / PIXEL) * PIXEL
    y1 = np.ceil((ymax + RASTER_MARGIN) / PIXEL) * PIXEL
    nx = int(np.ceil((xmax + RASTER_MARGIN - x0) / PIXEL))
    ny = int(np.ceil((y1 - (ymin - RASTER_MARGIN)) / PIXEL))
    depth = np.zeros((ny, nx), dtype=np.float32)
    for shape, zone in zip(hazard.shapes.itertuples(index=False), zones["geometry"], strict=True):
        bx0, by0, bx1, by1 = shapely.bounds(zone)
        c0, c1 = int((bx0 - x0) // PIXEL), int(np.ceil((bx1 - x0) / PIXEL))
        r0, r1 = int((y1 - by1) // PIXEL), int(np.ceil((y1 - by0) / PIXEL))
        px = x0 + (np.arange(c0, c1) + 0.5) * PIXEL
        py = y1 - (np.arange(r0, r1) + 0.5) * PIXEL
        gx, gy = np.meshgrid(px, py)
        d = np.maximum(shape.level - ground_cadastral(gx, gy), 0.05)
        d = np.where(shapely.contains_xy(zone, gx, gy), d, 0.0).astype(np.float32)
        window = depth[r0:r1, c0:c1]
        np.maximum(window, np.round(d, 3), out=window)
    return depth, Affine(PIXEL, 0, x0, 0, -PIXEL, y1)
