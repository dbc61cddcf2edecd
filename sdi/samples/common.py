"""Shared constants and small helpers of the sample-data generator."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from pyproj import Transformer

CADASTRAL_EPSG = 5899  # VN-2000 / TM-3 107-45, the cadastral CRS of Quảng Ninh
WGS84_EPSG = 4326
UTM_EPSG = 3405  # VN-2000 / UTM 48N: national DEMs and the geology institute's maps
PROVINCE_CODE = "22"

# Reference instant of the sample: the last gauge reading, the "today" of permits and lamps.
REFERENCE_DATE = np.datetime64("2025-10-15")
REFERENCE_YEAR = 2025

# Stream identifiers: each generated layer draws from its own random stream, so that changing
# one layer (or the parcel file format) never changes another one.
STREAM_COMMUNES = 1
STREAM_PARCELS = 2
STREAM_ZONING = 3
STREAM_BUILDINGS = 4
STREAM_PERMITS = 5
STREAM_LAMPS = 6
STREAM_WIFI = 7
STREAM_CAMERAS = 8
STREAM_PIPES = 9
STREAM_SENSORS = 10
STREAM_FLOOD = 11
STREAM_READINGS = 12
STREAM_NAMES = 13
STREAM_SURVEY = 14
STREAM_LANDSLIDE = 15


def rng_for(seed: int, *keys: int) -> np.random.Generator:
    """A random generator for one (seed, stream, …) combination; independent of call order."""
    return np.random.default_rng([int(seed), *(int(k) for k in keys)])


@lru_cache(maxsize=4)
def transformer(src: int, dst: int) -> Transformer:
    """A cached lon/lat-ordered pyproj transformer between two EPSG codes."""
    return Transformer.from_crs(f"EPSG:{src}", f"EPSG:{dst}", always_xy=True)


def to_wgs84(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """EPSG:5899 easting/northing → WGS84 lon/lat."""
    lon, lat = transformer(CADASTRAL_EPSG, WGS84_EPSG).transform(x, y)
    return np.asarray(lon), np.asarray(lat)


def to_cadastral(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """WGS84 lon/lat → EPSG:5899 easting/northing."""
    x, y = transformer(WGS84_EPSG, CADASTRAL_EPSG).transform(lon, lat)
    return np.asarray(x), np.asarray(y)


@dataclass(frozen=True)
class Frame:
    """A local street frame: origin at a commune centroid, axes rotated by ``theta`` radians
    and bent by two shears, so that the streets curve.

    ``bend`` = (a1, l1, p1, a2, l2, p2): the streets along u wave across by
    ``a1 sin(2π u / l1 + p1)`` metres, then those along v by ``a2 sin(2π v / l2 + p2)``. Each
    shear keeps areas, so a lot's area is that of its (u, v) rectangle.
    """

    cx: float
    cy: float
    theta: float
    bend: tuple[float, float, float, float, float, float] = (0.0, 1.0, 0.0, 0.0, 1.0, 0.0)

    def to_xy(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Local (u, v) metres → EPSG:5899 (x, y)."""
        a1, l1, p1, a2, l2, p2 = self.bend
        v = v + a1 * np.sin(2 * np.pi * np.asarray(u) / l1 + p1)
        u = u + a2 * np.sin(2 * np.pi * v / l2 + p2)
        c, s = np.cos(self.theta), np.sin(self.theta)
        return self.cx + u * c - v * s, self.cy + u * s + v * c

    def to_uv(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """EPSG:5899 (x, y) → local (u, v) metres."""
        a1, l1, p1, a2, l2, p2 = self.bend
        c, s = np.cos(self.theta), np.sin(self.theta)
        dx, dy = x - self.cx, y - self.cy
        u, v = dx * c + dy * s, -dx * s + dy * c
        u = u - a2 * np.sin(2 * np.pi * v / l2 + p2)
        return u, v - a1 * np.sin(2 * np.pi * u / l1 + p1)


def allocate(total: int, weights: np.ndarray, minimum: int = 0) -> np.ndarray:
    """Split ``total`` into integer parts proportional to ``weights`` (largest remainder).

    >>> allocate(10, np.array([1.0, 1.0, 2.0])).tolist()
    [3, 2, 5]
    """
    weights = np.asarray(weights, dtype=float)
    base = np.full(len(weights), minimum, dtype=np.int64)
    rest = total - base.sum()
    if rest <= 0:
        return base
    share = weights / weights.sum() * rest
    parts = np.floor(share).astype(np.int64)
    remainder = rest - parts.sum()
    order = np.argsort(-(share - parts), kind="stable")
    parts[order[:remainder]] += 1
    return base + parts


def pick(rng: np.random.Generator, values: list | tuple, probs: list | tuple, n: int) -> np.ndarray:
    """Draw ``n`` values with the given (not necessarily normalised) probabilities."""
    p = np.asarray(probs, dtype=float)
    idx = rng.choice(len(values), size=n, p=p / p.sum())
    return np.asarray(values, dtype=object)[idx]


def dates_to_iso(days: np.ndarray) -> np.ndarray:
    """datetime64[D] array → 'YYYY-MM-DD' strings."""
    return np.datetime_as_string(np.asarray(days, dtype="datetime64[D]"), unit="D")


def dates_to_vn(days: np.ndarray) -> np.ndarray:
    """datetime64[D] array → 'dd/mm/yyyy' strings, the way Vietnamese offices write dates."""
    return np.array([f"{d[8:10]}/{d[5:7]}/{d[:4]}" for d in dates_to_iso(days)], dtype=object)
