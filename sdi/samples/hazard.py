"""Hazard data from the disaster-prevention committee: gauge stations with alarm levels I-III,
their hourly readings, nested flood zones per return period, and flood-depth rasters.

Each gauge watches one flood-prone spot of a commune. Its zones are homothetic copies of one
irregular star-shaped outline (10-year inside 50-year inside 100-year), clipped to the commune.
The depth raster is the 100-year depth: deepest at the gauge, 0 outside the 100-year zone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely
from affine import Affine

from sdi.samples.common import REFERENCE_DATE, STREAM_FLOOD, STREAM_READINGS, rng_for
from sdi.samples.land import Parcels, to_multi

GAUGES = {"ha_long": 3, "uong_bi": 2, "cam_pha": 3, "mong_cai": 2}
RIVERS = {
    "ha_long": ("Sông Diễn Vọng", "Sông Trới", "Sông Míp"),
    "uong_bi": ("Sông Uông", "Sông Vàng Danh"),
    "cam_pha": ("Sông Mông Dương", "Sông Voi Lớn", "Sông Thác Thầy"),
    "mong_cai": ("Sông Ka Long", "Sông Bắc Luân"),
}
RETURN_PERIODS = (10, 50, 100)
ZONE_FACTOR = {10: 0.45, 50: 0.7, 100: 1.0}  # outline scale of each return period
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


def generate_hazard(parcels: Parcels, communes: pd.DataFrame, *, seed: int) -> Hazard:
    """Gauges, nested flood zones and readings for one city."""
    city = parcels.city
    rng = rng_for(seed, STREAM_FLOOD, city.index)
    table = parcels.table
    n_g = GAUGES[city.slug]
    counts = table["MAXA"].value_counts().reindex(list(parcels.layouts))
    chosen = rng.choice(len(counts), n_g, replace=False, p=(counts / counts.sum()).to_numpy())
    inner = communes.set_index("commune_code")["inner"]
    gauges, shapes, zones = [], [], []
    for g, ci in enumerate(chosen, start=1):
        code = counts.index[ci]
        lots = table[(table["MAXA"] == code) & ~table["invalid"]]
        core = lots.iloc[: max(1, len(lots) // 2)]
        core = core[core["cls"] == 0] if (core["cls"] == 0).any() else core
        centre = core.iloc[int(rng.integers(len(core)))]
        extent = np.sqrt(lots["area"].sum() / 0.55 / np.pi)
        shape = {
            "gauge_id": f"G-{city.abbr}-{g:02d}",
            "x": float(centre["cx"]),
            "y": float(centre["cy"]),
            "radius": float(np.clip(0.5 * extent, 150.0, 1500.0)),
            "amp": rng.uniform([0.08, 0.04, 0.02], [0.15, 0.1, 0.05]),
            "phase": rng.uniform(0, 2 * np.pi, 3),
            "depth": float(rng.uniform(1.6, 4.6)),
            "commune_code": code,
        }
        shapes.append(shape)
        river = RIVERS[city.slug][g - 1]
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
        phi = np.linspace(0, 2 * np.pi, N_VERTICES, endpoint=False)
        r = star_radius(pd.Series(shape), phi)
        for rp in RETURN_PERIODS:
            f = ZONE_FACTOR[rp]
            ring = np.stack(
                [shape["x"] + f * r * np.cos(phi), shape["y"] + f * r * np.sin(phi)], axis=1
            )
            poly = shapely.intersection(shapely.polygons(ring), inner[code])
            zones.append(
                {
                    "zone_id": f"FZ-{city.abbr}-{rp}-{g:02d}",
                    "return_period": rp,
                    # the mean depth of a paraboloid over its footprint is half its peak
                    "depth_class": _depth_class(shape["depth"] * DEPTH_FACTOR[rp] / 2),
                    "gauge_id": shape["gauge_id"],
                    "commune_code": code,
                    "name": f"Vùng ngập lũ chu kỳ {rp} năm - {river}",
                    "geometry": poly,
                }
            )
    zones_df = pd.DataFrame(zones)
    zones_df["geometry"] = to_multi(zones_df["geometry"].to_numpy())
    zones_df["city"] = city.slug
    gauges_df = pd.DataFrame(gauges)
    gauges_df["city"] = city.slug
    readings = _readings(gauges_df, seed=seed, city_index=city.index)
    return Hazard(gauges_df, zones_df, pd.DataFrame(shapes), readings)


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
        dx, dy = gx - shape.x, gy - shape.y
        rho = np.hypot(dx, dy) / star_radius(pd.Series(shape._asdict()), np.arctan2(dy, dx))
        d = np.maximum(shape.depth * (1 - rho**2), 0.05)
        d = np.where(shapely.contains_xy(zone, gx, gy), d, 0.0).astype(np.float32)
        window = depth[r0:r1, c0:c1]
        np.maximum(window, np.round(d, 3), out=window)
    return depth, Affine(PIXEL, 0, x0, 0, -PIXEL, y1)
