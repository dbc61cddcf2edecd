"""Terrain hazards: an elevation model, landslide susceptibility zones and storm-surge zones.

One province-wide terrain (coast, coastal plain, hills, landslide massifs, nested storm-surge
strips), so the four cities' rasters agree where they overlap: ``docs/sample-data.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import shapely
from affine import Affine
from rasterio.features import rasterize, shapes
from shapely.geometry import shape

from sdi.samples.common import (
    CADASTRAL_EPSG,
    STREAM_LANDSLIDE,
    UTM_EPSG,
    rng_for,
    transformer,
)
from sdi.samples.communes import CITIES, City
from sdi.samples.hazard import N_VERTICES, star_radius
from sdi.samples.relief import coast, inland_km_cadastral, relief
from sdi.samples.writers import reproject

DEM_PIXEL = 50.0
DEM_NODATA = -32768.0
DEM_MARGIN = 500.0
LANDSLIDE_MIN_KM = 6.0  # landslide sites lie at least this far inland

# Typhoon scenarios: (level on the Beaufort scale, surge height in metres, surge class).
SURGE_SCENARIOS = (
    ("8-9", 1.0, "0-1"),
    ("10-11", 2.0, "1-2"),
    ("12-13", 3.0, "2-3"),
    ("14-15", 4.5, ">3"),
)
SURGE_MIN_AREA_M2 = 10_000.0

LANDSLIDE_SITES = {"ha_long": 3, "uong_bi": 3, "cam_pha": 3, "mong_cai": 2}
MINING_CITIES = ("ha_long", "uong_bi", "cam_pha")  # coal basin of Quảng Ninh
# Susceptibility classes, most to least: (label as the institute writes it, outline factor,
# index range, mean slope range in degrees).
LANDSLIDE_CLASSES = (
    ("Rất cao", 0.3, (0.8, 0.95), (30.0, 40.0)),
    ("Cao", 0.55, (0.6, 0.8), (22.0, 30.0)),
    ("Trung bình", 0.8, (0.4, 0.6), (15.0, 22.0)),
    ("Thấp", 1.0, (0.2, 0.4), (8.0, 15.0)),
)


@dataclass
class Terrain:
    """Terrain hazards of the four cities."""

    sites: pd.DataFrame  # landslide sites: x, y (EPSG:3405), amplitude, sigma
    landslide: pd.DataFrame  # landslide zone columns, EPSG:5899 geometry, city
    surge: pd.DataFrame  # storm-surge zone columns, EPSG:5899 geometry, city
    dems: dict[str, tuple[np.ndarray, Affine]]  # per city slug: DEM and its transform


def elevation(x: np.ndarray, y: np.ndarray, sites: pd.DataFrame) -> np.ndarray:
    """Elevation in metres at EPSG:3405 land points (0 at the coastline), rounded to 0.1 m."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    massifs = np.zeros(np.broadcast(x, y).shape)
    for site in sites.itertuples(index=False):
        r2 = (x - site.x) ** 2 + (y - site.y) ** 2
        massifs = massifs + site.amplitude * np.exp(-r2 / (2.0 * site.sigma**2))
    dk = np.maximum(coast().distance_km(x, y), 0.0)
    return np.round(relief(x, y, dk, massifs), 1)


def dem_raster(
    communes: pd.DataFrame, city: City, sites: pd.DataFrame
) -> tuple[np.ndarray, Affine]:
    """The city's DEM (float32, EPSG:3405, 50 m, nodata at sea) and its transform.

    The grid covers the city's communes plus 500 m and is aligned to multiples of 50 m, so
    neighbouring cities' rasters share pixel centres (and values) where they overlap.
    """
    mine = communes.loc[communes["city"] == city.slug, "geometry"].to_numpy()
    xmin, ymin, xmax, ymax = shapely.total_bounds(reproject(mine, CADASTRAL_EPSG, UTM_EPSG))
    x0 = np.floor((xmin - DEM_MARGIN) / DEM_PIXEL) * DEM_PIXEL
    y1 = np.ceil((ymax + DEM_MARGIN) / DEM_PIXEL) * DEM_PIXEL
    nx = int(np.ceil((xmax + DEM_MARGIN - x0) / DEM_PIXEL))
    ny = int(np.ceil((y1 - (ymin - DEM_MARGIN)) / DEM_PIXEL))
    px = x0 + (np.arange(nx) + 0.5) * DEM_PIXEL
    py = y1 - (np.arange(ny) + 0.5) * DEM_PIXEL
    gx, gy = np.meshgrid(px, py)
    near = sites[
        (sites["x"] > px[0] - 5 * sites["sigma"])
        & (sites["x"] < px[-1] + 5 * sites["sigma"])
        & (sites["y"] > py[-1] - 5 * sites["sigma"])
        & (sites["y"] < py[0] + 5 * sites["sigma"])
    ]
    transform = Affine(DEM_PIXEL, 0, x0, 0, -DEM_PIXEL, y1)
    # Land: the province's (cells whose centre is inside the outline) and the neighbours'.
    on_land = rasterize([coast().land], out_shape=(ny, nx), transform=transform, dtype="uint8")
    land = (on_land > 0) | (coast().distance_km(gx, gy) > 0)
    dem = np.full((ny, nx), DEM_NODATA, dtype=np.float32)
    dem[land] = elevation(gx[land], gy[land], near)
    return dem, transform


def _landslides(communes: pd.DataFrame, city: City, seed: int) -> tuple[list, list]:
    """Landslide sites (EPSG:3405, for the DEM) and zones (EPSG:5899) of one city."""
    rng = rng_for(seed, STREAM_LANDSLIDE, city.index)
    mine = communes[communes["city"] == city.slug].reset_index(drop=True)
    xmin, ymin, xmax, ymax = shapely.total_bounds(mine["inner"].to_numpy())
    xs = rng.uniform(xmin, xmax, 4000)
    ys = rng.uniform(ymin, ymax, 4000)
    owner = np.full(xs.size, -1)
    for i, inner in enumerate(mine["inner"]):
        owner[(owner < 0) & shapely.contains_xy(inner, xs, ys)] = i
    inland = inland_km_cadastral(xs, ys)
    sites: list[dict[str, Any]] = []
    zones = []
    for k in np.flatnonzero((owner >= 0) & (inland >= LANDSLIDE_MIN_KM)):
        if len(sites) == LANDSLIDE_SITES[city.slug]:
            break
        if any(np.hypot(xs[k] - s["cx"], ys[k] - s["cy"]) < 4000 for s in sites):
            continue
        commune = mine.iloc[owner[k]]
        shape = {
            "radius": float(rng.uniform(500.0, 900.0)),
            "amp": rng.uniform([0.08, 0.04, 0.02], [0.15, 0.1, 0.05]),
            "phase": rng.uniform(0, 2 * np.pi, 3),
        }
        n = len(sites) + 1
        sites.append({"cx": xs[k], "cy": ys[k], "radius": shape["radius"]})
        phi = np.linspace(0, 2 * np.pi, N_VERTICES, endpoint=False)
        r = star_radius(shape, phi)
        mining = "Có" if city.slug in MINING_CITIES and n < LANDSLIDE_SITES[city.slug] else "Không"
        previous = None
        for rank, (label, factor, index, slope) in zip(
            range(4, 0, -1), LANDSLIDE_CLASSES, strict=True
        ):
            outline = shapely.polygons(
                np.stack([xs[k] + factor * r * np.cos(phi), ys[k] + factor * r * np.sin(phi)], 1)
            )
            ring = outline if previous is None else shapely.difference(outline, previous)
            previous = outline
            part = shapely.intersection(ring, commune["inner"])
            if shapely.area(part) < 100.0:
                continue
            zones.append(
                {
                    "MA_VUNG": f"LS-{city.abbr}-{n:02d}-{rank}",
                    "MUC_NGUY": label,
                    "CHI_SO": round(float(rng.uniform(*index)), 3),
                    "DO_DOC": round(float(rng.uniform(*slope)), 1),
                    "KHAI_THAC": mining,
                    "MA_XA": commune["commune_code"],
                    "geometry": part,
                    "city": city.slug,
                }
            )
    ux, uy = transformer(CADASTRAL_EPSG, UTM_EPSG).transform(
        np.array([s["cx"] for s in sites]), np.array([s["cy"] for s in sites])
    )
    utm = [
        {
            "x": float(x),
            "y": float(y),
            "amplitude": float(rng.uniform(150, 300)),
            "sigma": 0.8 * s["radius"],
        }
        for x, y, s in zip(np.atleast_1d(ux), np.atleast_1d(uy), sites, strict=True)
    ]
    return utm, zones


def _surge(communes: pd.DataFrame, city: City, dem: tuple[np.ndarray, Affine]) -> list[dict]:
    """Storm-surge zones of one city: per coastal commune, one zone per typhoon scenario.

    The zone of a surge of h metres is the union of the DEM's cells below h (so every cell
    centre inside it is below h), reprojected and cut by the commune.
    """
    mine = communes[communes["city"] == city.slug]
    z, transform = dem
    land = z != DEM_NODATA
    zones = []
    for number, (level, height, klass) in enumerate(SURGE_SCENARIOS, start=1):
        low = (land & (z < height)).astype(np.uint8)
        cells = [shape(g) for g, _v in shapes(low, mask=low > 0, transform=transform)]
        if not cells:
            continue
        band = shapely.coverage_union_all(np.asarray(cells, dtype=object))
        band = reproject(np.array([band]), UTM_EPSG, CADASTRAL_EPSG)[0]
        shapely.prepare(band)
        for commune in mine.itertuples(index=False):
            if not shapely.intersects(band, commune.inner):
                continue
            near = shapely.clip_by_rect(band, *shapely.bounds(commune.inner))
            part = shapely.intersection(near, commune.inner)
            if shapely.area(part) < SURGE_MIN_AREA_M2:
                continue
            zones.append(
                {
                    "ma_vung": f"SS-{city.abbr}-{commune.commune_code}-{number}",
                    "Name": f"Vùng nước dâng do bão cấp {level} - {commune.commune_name}",
                    "cap_bao": level,
                    "nuoc_dang_m": f"{height:.1f}",
                    "cap_nuoc_dang": klass,
                    "ma_xa": commune.commune_code,
                    "geometry": part,
                    "city": city.slug,
                }
            )
    return zones


def _multipolygons(geoms: list) -> np.ndarray:
    """MultiPolygons of the polygonal parts (an intersection can add slivers of lines)."""
    parts, index = shapely.get_parts(np.asarray(geoms, dtype=object), return_index=True)
    keep = shapely.get_type_id(parts) == 3
    return shapely.multipolygons(parts[keep], indices=index[keep])


def generate_terrain(communes: pd.DataFrame, *, seed: int) -> Terrain:
    """Landslide sites and zones, the cities' DEMs, and storm-surge zones."""
    sites, landslide, surge = [], [], []
    for city in CITIES:
        city_sites, city_zones = _landslides(communes, city, seed)
        sites += city_sites
        landslide += city_zones
    sites_df = pd.DataFrame(sites)
    dems = {city.slug: dem_raster(communes, city, sites_df) for city in CITIES}
    for city in CITIES:
        surge += _surge(communes, city, dems[city.slug])
    landslide_df = pd.DataFrame(landslide)
    landslide_df["geometry"] = _multipolygons(list(landslide_df["geometry"]))
    surge_df = pd.DataFrame(surge)
    surge_df["geometry"] = _multipolygons(list(surge_df["geometry"]))
    return Terrain(sites_df, landslide_df, surge_df, dems)
