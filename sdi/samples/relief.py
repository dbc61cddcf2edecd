"""The province's relief: where the sea is, and how far inland a point lies.

The coast is the part of the real province outline (``etl/reference/qn-province-outline``)
that faces the sea: the islands' shores, and the mainland's boundary south of
``WATER_LIMIT`` (the Gulf of Tonkin, Hạ Long and Bái Tử Long bays, and the Bạch Đằng and
Kinh Thầy estuaries towards Hải Phòng and Hải Dương). North of that line the mainland borders
land (Bắc Giang, Lạng Sơn, China), which is no coast. Distances to the coast are computed once
on a 250 m grid over the province (EPSG:3405, where the DEM lives) and interpolated
bilinearly, so every raster and zone sees the same, smooth, deterministic relief.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import shapely
from affine import Affine
from rasterio.features import rasterize

from sdi.samples.common import CADASTRAL_EPSG, UTM_EPSG, WGS84_EPSG, transformer
from sdi.samples.communes import load_outline
from sdi.samples.writers import reproject

# (lon, lat): outside the outline, water lies south of this line and land north of it.
WATER_LIMIT = np.array(
    [
        (106.00, 21.10),
        (107.00, 21.10),
        (107.30, 21.16),
        (107.50, 21.30),
        (107.70, 21.40),
        (107.90, 21.50),
        (108.40, 21.56),
    ]
)
# The rivers the gauges watch, (lon, lat) from upstream to the mouth, drawn after the map:
# each carves a valley into the hills and the plain, where the flood zones spread.
RIVERS: dict[str, tuple[tuple[float, float], ...]] = {
    "Sông Diễn Vọng": ((107.17, 21.13), (107.13, 21.07), (107.09, 21.03), (107.06, 21.0)),
    "Sông Trới": ((106.98, 21.15), (106.99, 21.08), (107.0, 21.03), (107.02, 20.995)),
    "Sông Míp": ((106.92, 21.13), (106.95, 21.06), (106.97, 21.0)),
    "Sông Uông": ((106.77, 21.13), (106.78, 21.05), (106.79, 21.0), (106.8, 20.965)),
    "Sông Vàng Danh": ((106.83, 21.14), (106.81, 21.09), (106.785, 21.055)),
    "Sông Mông Dương": ((107.29, 21.16), (107.32, 21.1), (107.34, 21.065)),
    "Sông Voi Lớn": ((107.39, 21.12), (107.38, 21.07), (107.37, 21.035)),
    "Sông Thác Thầy": ((107.21, 21.08), (107.22, 21.03), (107.23, 21.0)),
    "Sông Ka Long": ((107.83, 21.6), (107.9, 21.56), (107.96, 21.535), (108.02, 21.5)),
    "Sông Bắc Luân": ((107.99, 21.62), (107.97, 21.57), (107.96, 21.535)),
}
VALLEY_KM = 0.4  # half-width of a river valley
VALLEY_DEPTH = 0.8  # share of the surrounding relief a valley floor lies below it
GRID = 250.0  # metres, the distance grid
GRID_MARGIN = 5000.0
PLAIN_SLOPE = 2.5  # metres per km of the coastal plain
PLAIN_KM = 2.5  # the hills start this far inland (beyond the largest surge zone)


@dataclass(frozen=True)
class Coast:
    """Signed distance to the coast (km; > 0 on land, < 0 at sea) on a grid in EPSG:3405."""

    km: np.ndarray  # (rows, cols), north row first
    transform: Affine  # of the grid's cell corners; values are at cell centres
    land: shapely.Geometry  # the province's land in EPSG:3405 (prepared)
    river_km: np.ndarray  # distance to the nearest river (km, up to 2), same grid

    def distance_km(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Bilinear interpolation of the signed distance at EPSG:3405 points."""
        return self._interpolate(self.km, x, y)

    def river_distance_km(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Distance to the nearest river (km, capped at about 2) at EPSG:3405 points."""
        return self._interpolate(self.river_km, x, y)

    def _interpolate(self, k: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        t = self.transform
        fc = (np.asarray(x, dtype=float) - t.c) / t.a - 0.5
        fr = (np.asarray(y, dtype=float) - t.f) / t.e - 0.5
        rows, cols = k.shape
        c0 = np.clip(np.floor(fc).astype(np.int64), 0, cols - 2)
        r0 = np.clip(np.floor(fr).astype(np.int64), 0, rows - 2)
        wc = np.clip(fc - c0, 0.0, 1.0)
        wr = np.clip(fr - r0, 0.0, 1.0)
        top = k[r0, c0] * (1 - wc) + k[r0, c0 + 1] * wc
        bottom = k[r0 + 1, c0] * (1 - wc) + k[r0 + 1, c0 + 1] * wc
        return top * (1 - wr) + bottom * wr


@lru_cache(maxsize=1)
def _water_limit_utm() -> tuple[np.ndarray, np.ndarray]:
    lon = np.linspace(WATER_LIMIT[0, 0], WATER_LIMIT[-1, 0], 241)
    lat = np.interp(lon, WATER_LIMIT[:, 0], WATER_LIMIT[:, 1])
    x, y = transformer(WGS84_EPSG, UTM_EPSG).transform(lon, lat)
    return np.asarray(x), np.asarray(y)


def _south_of_limit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """EPSG:3405 points south of ``WATER_LIMIT``."""
    lx, ly = _water_limit_utm()
    return y < np.interp(x, lx, ly)


def coast_segments(land: shapely.Geometry) -> np.ndarray:
    """The segments of the land's boundary that face the sea (EPSG:3405 LineStrings)."""
    rings = shapely.get_rings(shapely.get_parts(land))
    coords, ring = shapely.get_coordinates(rings, return_index=True)
    same = ring[1:] == ring[:-1]
    a, b = coords[:-1][same], coords[1:][same]
    mid = (a + b) / 2
    sea = _south_of_limit(mid[:, 0], mid[:, 1])
    return shapely.linestrings(np.stack([a[sea], b[sea]], axis=1))


def _edt(target: np.ndarray, window: int) -> np.ndarray:
    """Distance (in cells) from each cell to the nearest ``target`` cell centre: exact when
    that cell is at most ``window`` columns away, an upper bound otherwise (separable: exact
    per column, then the best column within the window)."""
    ny, nx = target.shape
    big = 10**6
    idx = np.arange(ny)[:, None]
    last = np.maximum.accumulate(np.where(target, idx, -big), axis=0)
    nxt = np.minimum.accumulate(np.where(target, idx, 2 * big)[::-1], axis=0)[::-1]
    g = np.minimum(idx - last, nxt - idx).astype(np.float64)
    g2 = np.full((ny, nx + 2 * window), np.inf)
    g2[:, window : window + nx] = g * g
    d2 = g2[:, window : window + nx].copy()
    for k in range(1, window + 1):
        np.minimum(d2, g2[:, window + k : window + k + nx] + k * k, out=d2)
        np.minimum(d2, g2[:, window - k : window - k + nx] + k * k, out=d2)
    return np.sqrt(d2)


def _water(land: shapely.Geometry, transform: Affine, shape: tuple[int, int]) -> np.ndarray:
    """Cells (by their centre) of water: outside the outline and south of ``WATER_LIMIT``."""
    ny, nx = shape
    gx = transform.c + (np.arange(nx) + 0.5) * transform.a
    gy = transform.f + (np.arange(ny) + 0.5) * transform.e
    inside = rasterize([land], out_shape=shape, transform=transform, dtype="uint8") > 0
    return ~inside & _south_of_limit(gx[None, :], gy[:, None])


@lru_cache(maxsize=1)
def coast() -> Coast:
    """The province's coast and distance grid (computed once per process).

    A fine grid gives exact distances up to 8 km from the coast (the plain, the surge zones),
    a 1 km grid the distances further inland; the two blend between 6 and 8 km.
    """
    land = reproject(np.array([load_outline()]), CADASTRAL_EPSG, UTM_EPSG)[0]
    xmin, ymin, xmax, ymax = shapely.bounds(land)
    coarse = 4 * GRID
    x0 = np.floor((xmin - GRID_MARGIN) / coarse) * coarse
    y1 = np.ceil((ymax + GRID_MARGIN) / coarse) * coarse
    cx = int(np.ceil((xmax + GRID_MARGIN - x0) / coarse))
    cy = int(np.ceil((y1 - (ymin - GRID_MARGIN)) / coarse))
    nx, ny = 4 * cx, 4 * cy
    transform = Affine(GRID, 0, x0, 0, -GRID, y1)
    water = _water(land, transform, (ny, nx))
    # The coastline lies between the last land and the first water cell: half a cell off.
    near = np.maximum(_edt(water, 32) - 0.5, 0.0) * GRID / 1000.0
    offshore = np.maximum(_edt(~water, 8) - 0.5, 0.0) * GRID / 1000.0
    far_water = _water(land, Affine(coarse, 0, x0, 0, -coarse, y1), (cy, cx))
    far = np.maximum(_edt(far_water, 90) - 0.5, 0.0) * coarse / 1000.0
    far = np.repeat(np.repeat(far, 4, axis=0), 4, axis=1)  # (blocky, but only beyond 6 km)
    near = np.minimum(near, far)  # both bound the distance; ``near`` is exact up to 8 km
    w = np.clip((near - 6.0) / 2.0, 0.0, 1.0)
    km = np.where(water, -offshore, (1 - w) * near + w * far)
    lines = river_lines(UTM_EPSG)
    on_river = rasterize(lines, out_shape=(ny, nx), transform=transform, all_touched=True) > 0
    river_km = np.minimum(_edt(on_river, 8) * GRID / 1000.0, 2.0)
    shapely.prepare(land)
    return Coast(km, transform, land, river_km)


def river_lines(epsg: int) -> list[shapely.Geometry]:
    """The rivers of ``RIVERS`` as LineStrings in ``epsg``, in the order of ``RIVERS``."""
    tr = transformer(WGS84_EPSG, epsg)
    out = []
    for points in RIVERS.values():
        lon, lat = np.array(points).T
        x, y = tr.transform(lon, lat)
        out.append(shapely.linestrings(np.asarray(x), np.asarray(y)))
    return out


def inland_km_cadastral(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Signed distance to the coast (km) of EPSG:5899 points."""
    ux, uy = transformer(CADASTRAL_EPSG, UTM_EPSG).transform(x, y)
    return coast().distance_km(np.asarray(ux), np.asarray(uy))


def ground(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Elevation (m) of EPSG:3405 points without the landslide massifs; 0 at and below the
    coastline. A coastal plain rising ``PLAIN_SLOPE`` m per km, then rolling hills rising
    with the distance inland (hence northwards)."""
    dk = np.maximum(coast().distance_km(x, y), 0.0)
    return relief(x, y, dk, 0.0)


def relief(x: np.ndarray, y: np.ndarray, dk: np.ndarray, massifs: np.ndarray | float) -> np.ndarray:
    """Elevation (m) at EPSG:3405 points ``dk`` km inland, with extra ``massifs`` (m) on
    the hills."""
    t = np.clip((dk - PLAIN_KM) / 3.5, 0.0, 1.0)
    hills = 12.0 * np.maximum(dk - PLAIN_KM, 0.0) + 40.0 * (
        1.0 + np.sin(x / 2300.0 + 0.7) * np.cos(y / 1900.0 + 1.3)
    )
    smooth = t * t * (3.0 - 2.0 * t)
    valley = 1.0 - VALLEY_DEPTH * np.exp(-((coast().river_distance_km(x, y) / VALLEY_KM) ** 2))
    return (PLAIN_SLOPE * dk + smooth * hills) * valley + smooth * massifs


def ground_cadastral(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """:func:`ground` at EPSG:5899 points."""
    ux, uy = transformer(CADASTRAL_EPSG, UTM_EPSG).transform(x, y)
    return ground(np.asarray(ux), np.asarray(uy))
